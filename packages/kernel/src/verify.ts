/**
 * Verification: the edge's acceptance scan and bonus, the residual the device (DSSD) or edge (DSD) samples after
 * a rejection, the exact candidate residual, and the DSD baseline built from the same pieces.
 *
 * Rule (Leviathan et al. 2023 / Chen et al. 2023): accept draft x_i iff r_i < min(1, P_i(x_i)/Q_i(x_i)); at the
 * first rejection j sample from norm(max(0, P_j − Q_j)); if all γ are accepted sample a bonus from P_{γ+1}.
 * (The DSSD paper prints the ratio as q/p; that is wrong and is not what this module does.)
 *
 * Positions are 1-based, as in the paper and the RNG key schedule: `rejectedAt` is j, and `accepted` = j − 1.
 */
import { KernelError, KernelErrorCode } from './errors.js';
import { assertUniform, checkedTotal, sampleFrom } from './sampling.js';

function checkQ(q: number, position: number): void {
  if (typeof q !== 'number' || !(q > 0 && q <= 1)) {
    throw new KernelError(
      KernelErrorCode.InvalidProbability,
      `q at position ${position} must be in (0, 1], got ${String(q)}`,
    );
  }
}

function checkP(p: number, position: number): void {
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
    throw new KernelError(
      KernelErrorCode.InvalidProbability,
      `p at position ${position} must be in [0, 1], got ${String(p)}`,
    );
  }
}

function checkSameLength(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) {
    throw new KernelError(
      KernelErrorCode.LengthMismatch,
      `${what}: lengths ${a.length} and ${b.length} differ`,
    );
  }
}

function checkToken(id: number, vocabSize: number, what: string): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new KernelError(
      KernelErrorCode.TokenOutOfRange,
      `${what} ${id} is not a token id in [0, ${vocabSize})`,
    );
  }
}

// --------------------------------------------------------------------------------------------------------------
// Edge side
// --------------------------------------------------------------------------------------------------------------

/** min(1, p/q): the probability of accepting a draft with target prob p and draft prob q (q in (0, 1]). */
export function acceptanceProbability(p: number, q: number): number {
  checkQ(q, 0);
  checkP(p, 0);
  return p >= q ? 1 : p / q;
}

/** Result of the edge's sequential scan. */
export interface ScanResult {
  /** Number of leading drafts accepted (j − 1). */
  accepted: number;
  /** 1-based first rejected position j, or null when all drafts were accepted. */
  rejectedAt: number | null;
}

/**
 * Accepts position i iff r_i·q_i < p_i (≡ r_i < min(1, p_i/q_i) without a division) and stops at the first
 * rejection. pAtDraft[i] = P_i(x_i), q[i] = Q_i(x_i) as sent uplink, uniforms[i] = r_i from RoundRng.accept(i+1).
 */
export function scanAcceptance(
  pAtDraft: ArrayLike<number>,
  q: ArrayLike<number>,
  uniforms: ArrayLike<number>,
): ScanResult {
  checkSameLength(pAtDraft, q, 'scanAcceptance p/q');
  if (uniforms.length < q.length) {
    throw new KernelError(
      KernelErrorCode.LengthMismatch,
      `scanAcceptance needs ${q.length} uniforms, got ${uniforms.length}`,
    );
  }
  for (let i = 0; i < q.length; i++) {
    checkQ(q[i], i + 1);
    checkP(pAtDraft[i], i + 1);
  }
  for (let i = 0; i < q.length; i++) {
    const r = uniforms[i];
    assertUniform(r, `uniform for position ${i + 1}`);
    if (!(r * q[i] < pAtDraft[i])) return { accepted: i, rejectedAt: i + 1 };
  }
  return { accepted: q.length, rejectedAt: null };
}

/** The bonus token after γ acceptances: a draw from P_{γ+1} with u = RoundRng.bonus(γ). */
export function sampleBonus(P: ArrayLike<number>, u: number): number {
  return sampleFrom(P, u);
}

// --------------------------------------------------------------------------------------------------------------
// Residual (device in DSSD, edge in DSD)
// --------------------------------------------------------------------------------------------------------------

/** max(0, P − Q) elementwise. Exact in float64 for grid distributions. */
export function residualWeights(P: ArrayLike<number>, Q: ArrayLike<number>): Float64Array {
  checkSameLength(P, Q, 'residual P/Q');
  const w = new Float64Array(P.length);
  for (let i = 0; i < P.length; i++) {
    const d = P[i] - Q[i];
    w[i] = d > 0 ? d : 0;
  }
  return w;
}

/** Σ max(0, P − Q) = TV(P, Q) for normalised P, Q: the rejection probability of one speculative step. */
export function totalVariation(P: ArrayLike<number>, Q: ArrayLike<number>): number {
  checkSameLength(P, Q, 'totalVariation P/Q');
  let tv = 0;
  for (let i = 0; i < P.length; i++) {
    const d = P[i] - Q[i];
    if (d > 0) tv += d;
  }
  return tv;
}

/**
 * Samples ∝ max(0, P − Q) with u = RoundRng.residual(j). If the residual mass is 0 (P ≤ Q everywhere, i.e. P == Q
 * for exact distributions, or a lossy P) the rejection had probability 0 under exact arithmetic, so any law is
 * correct; we fall back to P, which is the right law when the rejection came from a lossy copy of P.
 */
export function sampleResidual(P: ArrayLike<number>, Q: ArrayLike<number>, u: number): number {
  checkSameLength(P, Q, 'residual P/Q');
  assertUniform(u);
  // Two passes instead of materialising max(0, P − Q) (a |V|-sized allocation per call); the sums and the
  // comparisons are those sampleFrom would make on the materialised weights.
  const mass = residualMass(P, Q);
  if (!(mass > 0)) return sampleFrom(P, u);
  if (mass === Infinity) return sampleFrom(residualWeights(P, Q), u); // throws the weights' error
  return firstResidualAbove(P, Q, u * mass);
}

/** Σ max(0, P − Q) in index order. */
function residualMass(P: ArrayLike<number>, Q: ArrayLike<number>): number {
  let mass = 0;
  for (let i = 0; i < P.length; i++) {
    const d = P[i] - Q[i];
    if (d > 0) mass += d;
  }
  return mass;
}

/** The first index whose running sum of max(0, P − Q) exceeds `threshold` (else the last positive one). */
function firstResidualAbove(P: ArrayLike<number>, Q: ArrayLike<number>, threshold: number): number {
  let cum = 0;
  let last = -1;
  for (let i = 0; i < P.length; i++) {
    const d = P[i] - Q[i];
    if (d > 0) {
      cum += d;
      if (cum > threshold) return i;
      last = i;
    }
  }
  return last;
}

/** The normalised law sampleResidual draws from (including its fall-back to P); used by exact tests. */
export function residualLaw(P: ArrayLike<number>, Q: ArrayLike<number>): Float64Array {
  let w = residualWeights(P, Q);
  let mass = 0;
  for (let i = 0; i < w.length; i++) mass += w[i];
  if (!(mass > 0)) {
    w = Float64Array.from(P);
    mass = 0;
    for (let i = 0; i < w.length; i++) mass += w[i];
    if (!(mass > 0)) throw new KernelError(KernelErrorCode.EmptyDistribution, 'P is all zero');
  }
  for (let i = 0; i < w.length; i++) w[i] /= mass;
  return w;
}

// --------------------------------------------------------------------------------------------------------------
// Exact candidate residual: the edge sends K i.i.d. draws from P_j (ids + exact float32 probs) instead of P_j.
// A trial accepts candidate y with probability (P(y) − Q(y))⁺/P(y), so it succeeds with probability
// Σ_y P(y)·(P(y) − Q(y))⁺/P(y) = TV(P, Q) and, given success, y ∝ (P − Q)⁺: exactly the residual. If all K trials
// fail the device requests P_j in full and samples the residual itself (RoundRng.residual(j)).
// --------------------------------------------------------------------------------------------------------------

/** K candidate tokens with their probabilities P(y) (exact in float32 for grid distributions). */
export interface CandidateDraws {
  ids: Uint32Array;
  probs: Float32Array;
}

/**
 * K i.i.d. draws from P in draw order (duplicates kept), using uniforms[k] = RoundRng.candidate(j, k). Gives the
 * same index as sampleFrom for every u, in O(|V| + K log K) without allocating O(|V|).
 */
export function drawCandidates(P: ArrayLike<number>, K: number, uniforms: ArrayLike<number>): CandidateDraws {
  if (!Number.isSafeInteger(K) || K < 0) {
    throw new KernelError(
      KernelErrorCode.InvalidArgument,
      `candidate count must be an integer >= 0, got ${K}`,
    );
  }
  if (uniforms.length < K) {
    throw new KernelError(
      KernelErrorCode.LengthMismatch,
      `drawCandidates needs ${K} uniforms, got ${uniforms.length}`,
    );
  }
  const cum = checkedTotal(P, 'P entry');
  if (!(cum > 0)) throw new KernelError(KernelErrorCode.EmptyDistribution, 'P is all zero');
  for (let k = 0; k < K; k++) assertUniform(uniforms[k], `candidate uniform ${k}`);
  // One sweep over P with the draws in increasing order of u·Σ: each gets the first index whose running sum
  // exceeds it, the same running sums (and so the same index) as sampleFrom, without a |V|-sized CDF.
  const order = Int32Array.from({ length: K }, (_, k) => k).sort((a, b) => uniforms[a] - uniforms[b]);
  const thresholds = Float64Array.from(order, (k) => uniforms[k] * cum);
  const hits = sweepCdf(P, thresholds);
  const ids = new Uint32Array(K);
  const probs = new Float32Array(K);
  for (let q = 0; q < K; q++) {
    ids[order[q]] = hits[q];
    probs[order[q]] = P[hits[q]];
  }
  return { ids, probs };
}

/**
 * For ascending thresholds t_q: the first index whose running sum of P exceeds t_q (the last positive index if
 * none does, which IEEE arithmetic rules out for t = u·Σ, u < 1). A loop of its own so the JIT keeps it tight.
 */
function sweepCdf(P: ArrayLike<number>, thresholds: Float64Array): Int32Array {
  const K = thresholds.length;
  const hits = new Int32Array(K);
  const n = P.length;
  let next = 0;
  let run = 0;
  let last = -1;
  let t = K > 0 ? thresholds[0] : Infinity;
  for (let i = 0; i < n; i++) {
    const w = P[i];
    if (!(w > 0)) continue;
    run += w;
    last = i;
    while (run > t) {
      hits[next++] = i;
      t = next < K ? thresholds[next] : Infinity;
    }
    if (next === K) return hits;
  }
  for (; next < K; next++) hits[next] = last;
  return hits;
}

/** (P(y) − Q(y))⁺/P(y): the device-side acceptance probability of one candidate. */
export function candidateAcceptanceProbability(p: number, q: number): number {
  if (typeof p !== 'number' || !(p > 0 && p <= 1)) {
    throw new KernelError(
      KernelErrorCode.InvalidProbability,
      `candidate prob must be in (0, 1], got ${String(p)}`,
    );
  }
  checkP(q, 0);
  return p > q ? (p - q) / p : 0;
}

/** Outcome of the device's candidate trials. */
export type CandidateResolution = { fallback: false; token: number; index: number } | { fallback: true };

/**
 * Tries the candidates in order: candidate k = y is accepted iff u_k·P(y) < P(y) − Q(y), with u_k =
 * RoundRng.candidateAccept(j, k). Returns the first accepted token, or { fallback: true } when all fail.
 */
export function resolveCandidates(
  ids: ArrayLike<number>,
  probs: ArrayLike<number>,
  Q: ArrayLike<number>,
  uniforms: ArrayLike<number>,
): CandidateResolution {
  checkSameLength(ids, probs, 'resolveCandidates ids/probs');
  if (uniforms.length < ids.length) {
    throw new KernelError(
      KernelErrorCode.LengthMismatch,
      `resolveCandidates needs ${ids.length} uniforms, got ${uniforms.length}`,
    );
  }
  for (let k = 0; k < ids.length; k++) {
    checkToken(ids[k], Q.length, `candidate ${k}`);
    const p = probs[k];
    if (typeof p !== 'number' || !(p > 0 && p <= 1)) {
      throw new KernelError(
        KernelErrorCode.InvalidProbability,
        `candidate ${k} prob must be in (0, 1], got ${p}`,
      );
    }
  }
  for (let k = 0; k < ids.length; k++) {
    const u = uniforms[k];
    assertUniform(u, `candidate trial uniform ${k}`);
    const p = probs[k];
    if (u * p < p - Q[ids[k]]) return { fallback: false, token: ids[k], index: k };
  }
  return { fallback: true };
}

/** P(at least one of K candidates is accepted) = 1 − (1 − TV)^K. */
export function candidateSuccessProbability(P: ArrayLike<number>, Q: ArrayLike<number>, K: number): number {
  return 1 - candidateFallbackProbability(P, Q, K);
}

/** P(all K candidates fail, so P_j must be sent in full) = (1 − TV)^K. */
export function candidateFallbackProbability(P: ArrayLike<number>, Q: ArrayLike<number>, K: number): number {
  if (!Number.isSafeInteger(K) || K < 0) {
    throw new KernelError(
      KernelErrorCode.InvalidArgument,
      `candidate count must be an integer >= 0, got ${K}`,
    );
  }
  const tv = Math.min(1, totalVariation(P, Q));
  return (1 - tv) ** K;
}

/**
 * Adaptive K: the smallest K >= min with (1 − tv)^K <= target, capped at max. estimatedTv is the expected
 * rejection-time TV (e.g. a running mean of observed TV at rejected positions).
 */
export function chooseCandidateCount(estimatedTv: number, target = 1e-3, min = 32, max = 256): number {
  if (!(estimatedTv >= 0 && estimatedTv <= 1)) {
    throw new KernelError(
      KernelErrorCode.InvalidArgument,
      `estimatedTv must be in [0, 1], got ${estimatedTv}`,
    );
  }
  if (!(target > 0 && target < 1)) {
    throw new KernelError(KernelErrorCode.InvalidArgument, `target must be in (0, 1), got ${target}`);
  }
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < 1 || max < min) {
    throw new KernelError(
      KernelErrorCode.InvalidArgument,
      `need integers 1 <= min <= max, got ${min}, ${max}`,
    );
  }
  if (estimatedTv === 1) return min;
  if (estimatedTv === 0) return max;
  let k = Math.max(min, Math.ceil(Math.log(target) / Math.log1p(-estimatedTv)));
  // Guard against log rounding in both directions.
  while (k > min && (1 - estimatedTv) ** (k - 1) <= target) k--;
  while (k < max && (1 - estimatedTv) ** k > target) k++;
  return Math.min(k, max);
}
