/**
 * processLogits at real vocabulary sizes (|V| ≈ 152k) in O(|V|) with a few light passes.
 *
 * The output is defined by the straightforward algorithm (see processLogits' doc and test/reference-sampling.ts):
 * scaled scores, top-k, top-p over a float64 running sum, softmax with expNonPositive (table-driven, basic IEEE
 * operations only), normaliser summed in index order, x = e·(2^24/z), largest-remainder quantisation onto the
 * 2^-24 grid. The fast path computes the same bits:
 *
 * - one pass for the exps and their index-order sum, one for the floors (collecting the tokens whose remainder
 *   may reach the boundary; the threshold adapts to the stream), a histogram of the collected remainders, and a
 *   sort of the boundary bucket only (≈ 40 entries).
 * - top-k selects while validating (a rising threshold, quickselect on the few candidates).
 * - top-p finds the crossing of the running sum with a histogram of masses; the kept prefix is exact as long as
 *   the sums on both sides of the crossing are farther from topP than the worst-case difference of summation
 *   orders, otherwise it is recomputed with a full sort.
 *
 * Anything unusual falls back to plain code, so the fast path can only ever cost time, never bits. Scratch
 * buffers are module-level and reused; none is ever returned (the output is a new array unless the caller passes
 * `out`), so a distribution a caller keeps is never overwritten by a later call.
 */
import { KernelError, KernelErrorCode } from './errors.js';
import { EXP_MIN, expInRange, expKernel } from './exp.js';

/** HF-style sampling parameters. temperature 0 = greedy, topK 0 = off, topP 1 = off. */
export interface SamplingParams {
  temperature: number;
  topK: number;
  topP: number;
}

/** Whether processLogits may take the one-pass small top-k path (temperature > 0, 0 < k <= FAST_TOP_K_MAX < n). */
function topKFast(params: SamplingParams, n: number): boolean {
  return params.temperature > 0 && params.topK > 0 && params.topK <= FAST_TOP_K_MAX && params.topK < n;
}

/** Options of processLogits. */
export interface ProcessOptions {
  /**
   * Write the distribution here (length |V|, every entry is written) instead of allocating a new array. The
   * buffer belongs to the caller: reuse it only once nothing holds the previous distribution (the device keeps
   * each Q_i until the round's verdict). It must not share memory with the logits.
   */
  out?: Float32Array;
}

/** Number of grid units in a whole distribution (probability 1). */
export const PROB_UNITS = 2 ** 24;
/** Value of one grid unit, 2^-24. */
export const PROB_UNIT = 2 ** -24;

/** Throws KernelError(InvalidSamplingParams) unless the parameters are in their documented domains. */
export function validateSamplingParams(params: SamplingParams): void {
  if (params === null || typeof params !== 'object') {
    throw new KernelError(KernelErrorCode.InvalidSamplingParams, 'sampling params must be an object');
  }
  const { temperature, topK, topP } = params;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    throw new KernelError(
      KernelErrorCode.InvalidSamplingParams,
      `temperature must be a finite number >= 0, got ${String(temperature)}`,
    );
  }
  if (!Number.isSafeInteger(topK) || topK < 0) {
    throw new KernelError(
      KernelErrorCode.InvalidSamplingParams,
      `topK must be an integer >= 0 (0 = off), got ${String(topK)}`,
    );
  }
  if (typeof topP !== 'number' || !Number.isFinite(topP) || !(topP > 0) || topP > 1) {
    throw new KernelError(
      KernelErrorCode.InvalidSamplingParams,
      `topP must be in (0, 1] (1 = off), got ${String(topP)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Constants.
// ---------------------------------------------------------------------------------------------------------------
/**
 * Margin around topP: the reference's running sum of k ≤ 2^18 rounded terms is within (k+1)·2^-53 ≈ 3e-11 of the
 * real sum, and ours (bucket sums in another order) within about as much; 2^-32 ≈ 2.3e-10 covers both.
 */
const TOP_P_MARGIN = 2 ** -32;
/** Histogram size for scores and remainders (remainder buckets are r·2^12, exact). */
const BUCKETS = 4096;
const NO_BUCKET = 0xffff;
/** At most this many survivors are handled by the plain exact code (sorts and exact exps are cheap there). */
const SPARSE_MAX = 4096;

// ---------------------------------------------------------------------------------------------------------------
// Scratch buffers, grown on demand and never handed out.
// ---------------------------------------------------------------------------------------------------------------
let W = new Float64Array(0); // per token: e, then x = e/z·2^24; -1 marks a token outside the support
let S = new Float64Array(0); // scaled scores (truncation paths only)
let BK = new Uint16Array(0); // score bucket per token
let IDX = new Int32Array(0); // collected token ids
let XS = new Float64Array(0); // remainders of the tokens collected by floorPass (aligned with IDX)
let KEPT = new Int32Array(0); // top-p: ids of the buckets before the crossing
let CAND = new Int32Array(0); // top-p: ids whose score is >= the guessed cut (expCandidates)
const HIST = new Int32Array(BUCKETS);
const MASS = new Float64Array(BUCKETS);
const MASS_ODD = new Float64Array(BUCKETS);

function ensureScratch(n: number): void {
  if (W.length >= n) return;
  W = new Float64Array(n);
  S = new Float64Array(n);
  BK = new Uint16Array(n);
  IDX = new Int32Array(n);
  XS = new Float64Array(n);
  KEPT = new Int32Array(n);
  CAND = new Int32Array(n);
}

// The untruncated path never writes S (a 1.2 MB store per call): exact code there reads a token's score from the
// logits through scoreOf, which computes the very same expression.
let scoreLogits: ArrayLike<number> | null = null;
let scoreMax = 0;
let scoreTemperature = 1;

/** Token i's scaled score: from S, or recomputed from the logits on the untruncated path. */
function scoreOf(i: number): number {
  const l = scoreLogits;
  if (l === null) return S[i];
  return scoreTemperature === 1 ? l[i] - scoreMax : (l[i] - scoreMax) / scoreTemperature;
}

/** Fills S on the untruncated path, for the rare exact fall-backs that read every score. */
function fillScores(n: number): void {
  if (scoreLogits === null) return;
  for (let i = 0; i < n; i++) S[i] = scoreOf(i);
  scoreLogits = null;
}

// ---------------------------------------------------------------------------------------------------------------
// Exact building blocks (small supports and fall-backs).
// ---------------------------------------------------------------------------------------------------------------

/** Sorts ids in place into the processing order: score descending, token id ascending. */
function sortByScore(ids: Int32Array, s: Float64Array): Int32Array {
  return ids.sort((a, b) => s[b] - s[a] || a - b);
}

/**
 * Largest-remainder quantisation of weights e (aligned with ids, ids ascending) onto `out`: floor of e·(2^24/z),
 * then the missing units one each to the largest remainders (ties: lower id). Handles the rounding corner cases
 * the way the original implementation did (more missing units than tokens: whole rounds; a surplus: units taken
 * back from the smallest remainders, higher id first, round robin). Plain sorts: for small supports and rare
 * fall-backs (and quantizeWeights).
 */
export function quantizeSupport(out: Float32Array, ids: Int32Array, e: Float64Array): void {
  const n = ids.length;
  let z = 0;
  for (let k = 0; k < n; k++) z += e[k];
  if (!(z > 0) || !Number.isFinite(z)) {
    throw new KernelError(KernelErrorCode.EmptyDistribution, 'no token has positive probability');
  }
  const units = new Float64Array(n);
  const rem = new Float64Array(n);
  const scale = PROB_UNITS / z;
  let total = 0;
  for (let k = 0; k < n; k++) {
    const x = e[k] * scale;
    const f = Math.floor(x);
    units[k] = f;
    rem[k] = x - f;
    total += f;
  }
  let missing = PROB_UNITS - total;
  if (missing > 0) {
    const rounds = Math.floor(missing / n);
    const extra = missing - rounds * n;
    const order = Int32Array.from({ length: n }, (_, k) => k).sort((a, b) => rem[b] - rem[a] || a - b);
    for (let k = 0; k < n; k++) units[k] += rounds;
    for (let t = 0; t < extra; t++) units[order[t]] += 1;
  } else if (missing < 0) {
    // Only reachable through float64 rounding of the e/z products.
    const order = Array.from({ length: n }, (_, k) => k)
      .filter((k) => units[k] > 0)
      .sort((a, b) => rem[a] - rem[b] || b - a);
    for (let t = 0; missing < 0; t = (t + 1) % order.length) {
      if (units[order[t]] > 0) {
        units[order[t]] -= 1;
        missing += 1;
      }
    }
  }
  for (let k = 0; k < n; k++) out[ids[k]] = units[k] * PROB_UNIT;
}

/** Exps of the scores of `ids`. */
function weightsOf(ids: Int32Array, s: Float64Array): Float64Array {
  const e = new Float64Array(ids.length);
  for (let k = 0; k < ids.length; k++) e[k] = expKernel(s[ids[k]]);
  return e;
}

/** The exps held in W of `ids`. */
function heldWeights(ids: Int32Array): Float64Array {
  const e = new Float64Array(ids.length);
  for (let k = 0; k < ids.length; k++) e[k] = W[ids[k]];
  return e;
}

/**
 * Top-p on a support (ids ascending, exact weights e): the smallest prefix of the processing order whose float64
 * running sum of e/z reaches topP, or null when the sum never does (everything is kept).
 */
function topPExact(ids: Int32Array, e: Float64Array, s: Float64Array, topP: number): Int32Array | null {
  let z = 0;
  for (let k = 0; k < ids.length; k++) z += e[k];
  // Positions into ids in processing order (ids ascending, so position order is id order on ties).
  const order = Int32Array.from({ length: ids.length }, (_, k) => k).sort(
    (a, b) => s[ids[b]] - s[ids[a]] || a - b,
  );
  let cum = 0;
  for (let k = 0; k < order.length; k++) {
    cum += e[order[k]] / z;
    if (cum >= topP) return Int32Array.from(order.subarray(0, k + 1), (q) => ids[q]).sort();
  }
  return null;
}

/** The whole processing on an explicit support (ids ascending) with plain sorts. */
function finishExact(out: Float32Array, ids: Int32Array, s: Float64Array, topP: number): void {
  let e = weightsOf(ids, s);
  if (topP < 1 && ids.length > 1) {
    const kept = topPExact(ids, e, s, topP);
    if (kept) {
      ids = kept;
      e = weightsOf(ids, s);
    }
  }
  quantizeSupport(out, ids, e);
}

// ---------------------------------------------------------------------------------------------------------------
// Fast dense path. Support = tokens with W[i] >= 0.
// ---------------------------------------------------------------------------------------------------------------

// Each hot loop is a function of its own: V8 optimises a long loop on-stack, and code after it that has not run yet
// would deoptimise the whole function on every call.

/** Masks every token but `kept` (ascending) in W; returns the index-order sum of the kept exps. */
function keepOnly(n: number, kept: Int32Array): number {
  const w = W;
  let cum = 0;
  for (let i = 0, p = 0; i < n; i++) {
    if (p < kept.length && kept[p] === i) {
      p++;
      cum += w[i];
    } else w[i] = -1;
  }
  return cum;
}

/** The index-order sum of the support's exps in W (entries >= 0). */
function supportSum(n: number): number {
  const w = W;
  let cum = 0;
  for (let i = 0; i < n; i++) {
    const e = w[i];
    if (e >= 0) cum += e;
  }
  return cum;
}

/** Fills W with the exps of the support (S[i] > -Infinity), -1 elsewhere. */
function expSupport(n: number): void {
  const w = W;
  const sc = S;
  for (let i = 0; i < n; i++) {
    const s = sc[i];
    w[i] = s > -Infinity ? expKernel(s) : -1;
  }
}

// The untruncated and top-p paths each have an exp pass of their own: they differ only in what they collect, and
// one loop serving both measured 10–18% slower on the untruncated path when the two alternate (both the same V8
// code, with a branch per token on the mode).

let precollected = 0; // second result of expScaled: tokens in IDX
let maskedCount = 0; // third result of expScaled: tokens outside the support

/**
 * The untruncated hot path in one pass: W = exps of (logits − max)/T over the support (-1 elsewhere); returns
 * their index-order sum z. Collects into IDX (precollected) every token whose x = e·2^24/z may be >= `from`, and
 * counts the masked ones (maskedCount). z is not known yet, but the running sum is a lower bound of it: a token
 * with e < from·2^-24·(sum so far) surely has x < from (the factor 1 − 2^-40 absorbs the roundings of x). Scores
 * are not stored (scoreOf recomputes one); a NaN logit sets sawNaN.
 */
function expScaled(
  logits: ArrayLike<number>,
  n: number,
  max: number,
  temperature: number,
  from: number,
): number {
  const cutScale = from * PROB_UNIT * (1 - 2 ** -40);
  const w = W;
  const idx = IDX;
  let cum = 0;
  let m = 0;
  let i = 0;
  maskedCount = 0;
  // Four tokens per iteration: their exps are independent, which the CPU overlaps; the additions stay in index
  // order. Collection without branches (always write the id, advance only when it is kept): on a flat
  // distribution a mispredicted branch per token would cost more than the exps.
  for (; i + 3 < n; i += 4) {
    // Dividing by 1 is exact, so skip it.
    const s0 = temperature === 1 ? logits[i] - max : (logits[i] - max) / temperature;
    const s1 = temperature === 1 ? logits[i + 1] - max : (logits[i + 1] - max) / temperature;
    const s2 = temperature === 1 ? logits[i + 2] - max : (logits[i + 2] - max) / temperature;
    const s3 = temperature === 1 ? logits[i + 3] - max : (logits[i + 3] - max) / temperature;
    const eCut = cum * cutScale;
    if (!(s0 >= EXP_MIN && s1 >= EXP_MIN && s2 >= EXP_MIN && s3 >= EXP_MIN)) {
      for (let j = i; j < i + 4; j++) {
        const s = temperature === 1 ? logits[j] - max : (logits[j] - max) / temperature;
        cum += expOne(j, s);
        if (W[j] >= eCut) idx[m++] = j;
      }
      continue;
    }
    const e0 = expInRange(s0);
    const e1 = expInRange(s1);
    const e2 = expInRange(s2);
    const e3 = expInRange(s3);
    w[i] = e0;
    w[i + 1] = e1;
    w[i + 2] = e2;
    w[i + 3] = e3;
    cum += e0;
    cum += e1;
    cum += e2;
    cum += e3;
    idx[m] = i;
    m += +(e0 >= eCut);
    idx[m] = i + 1;
    m += +(e1 >= eCut);
    idx[m] = i + 2;
    m += +(e2 >= eCut);
    idx[m] = i + 3;
    m += +(e3 >= eCut);
  }
  for (; i < n; i++) {
    const s = temperature === 1 ? logits[i] - max : (logits[i] - max) / temperature;
    const eCut = cum * cutScale;
    cum += expOne(i, s);
    if (W[i] >= eCut) idx[m++] = i;
  }
  precollected = m;
  return cum;
}

let sawNaN = false; // set by expOne: typedMax ignores NaN, so the exp pass is where it shows

/** One token of an exp pass off its fast path (masked, NaN, or below EXP_MIN); returns its exp (0 if masked). */
function expOne(i: number, s: number): number {
  if (!(s > -Infinity)) {
    if (s !== s) sawNaN = true;
    W[i] = -1;
    maskedCount++;
    return 0;
  }
  const e = expKernel(s);
  W[i] = e;
  return e;
}

let candidateCount = 0; // second result of expCandidates: top-p candidates in CAND
let candidateMass = 0; // third result: their total exp

/**
 * The top-p pass without top-k: W = exps of the support (-1 elsewhere), and the tokens with a score >= sCut into
 * CAND (candidateCount, candidateMass); returns the total mass. Scores are not stored (scoreOf recomputes one); a
 * NaN logit sets sawNaN.
 */
function expCandidates(
  logits: ArrayLike<number>,
  n: number,
  max: number,
  temperature: number,
  sCut: number,
): number {
  const w = W;
  const cand = CAND;
  let zt = 0;
  let mc = 0;
  let m = 0;
  let i = 0;
  // Four tokens per iteration and no branches, as in expScaled (×0 and ×1 are exact).
  for (; i + 3 < n; i += 4) {
    const s0 = temperature === 1 ? logits[i] - max : (logits[i] - max) / temperature;
    const s1 = temperature === 1 ? logits[i + 1] - max : (logits[i + 1] - max) / temperature;
    const s2 = temperature === 1 ? logits[i + 2] - max : (logits[i + 2] - max) / temperature;
    const s3 = temperature === 1 ? logits[i + 3] - max : (logits[i + 3] - max) / temperature;
    if (!(s0 >= EXP_MIN && s1 >= EXP_MIN && s2 >= EXP_MIN && s3 >= EXP_MIN)) {
      for (let j = i; j < i + 4; j++) {
        const s = temperature === 1 ? logits[j] - max : (logits[j] - max) / temperature;
        const e = expOne(j, s);
        zt += e;
        if (s >= sCut) {
          cand[m++] = j;
          mc += e;
        }
      }
      continue;
    }
    const e0 = expInRange(s0);
    const e1 = expInRange(s1);
    const e2 = expInRange(s2);
    const e3 = expInRange(s3);
    w[i] = e0;
    w[i + 1] = e1;
    w[i + 2] = e2;
    w[i + 3] = e3;
    zt += e0;
    zt += e1;
    zt += e2;
    zt += e3;
    const c0 = +(s0 >= sCut);
    const c1 = +(s1 >= sCut);
    const c2 = +(s2 >= sCut);
    const c3 = +(s3 >= sCut);
    mc += e0 * c0 + e1 * c1 + (e2 * c2 + e3 * c3);
    cand[m] = i;
    m += c0;
    cand[m] = i + 1;
    m += c1;
    cand[m] = i + 2;
    m += c2;
    cand[m] = i + 3;
    m += c3;
  }
  for (; i < n; i++) {
    const s = temperature === 1 ? logits[i] - max : (logits[i] - max) / temperature;
    const e = expOne(i, s);
    zt += e;
    if (s >= sCut) {
      cand[m++] = i;
      mc += e;
    }
  }
  candidateCount = m;
  candidateMass = mc;
  return zt;
}

/**
 * Score-bucket masses of the support in W into MASS (when the candidates do not decide top-p). Neighbouring
 * tokens of a flat distribution often share a bucket; alternating two tables keeps each addition from waiting
 * for the one before.
 */
function massPass(n: number, scale: number): void {
  const w = W;
  const bk = BK;
  const mass = MASS;
  const odd = MASS_ODD;
  mass.fill(0);
  odd.fill(0);
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const e0 = w[i];
    const e1 = w[i + 1];
    if (e0 >= 0) {
      const b0 = Math.min(BUCKETS - 1, Math.floor(-scoreOf(i) * scale));
      bk[i] = b0;
      mass[b0] += e0;
    } else bk[i] = NO_BUCKET;
    if (e1 >= 0) {
      const b1 = Math.min(BUCKETS - 1, Math.floor(-scoreOf(i + 1) * scale));
      bk[i + 1] = b1;
      odd[b1] += e1;
    } else bk[i + 1] = NO_BUCKET;
  }
  if (i < n) {
    if (w[i] >= 0) {
      const b = Math.min(BUCKETS - 1, Math.floor(-scoreOf(i) * scale));
      bk[i] = b;
      mass[b] += w[i];
    } else bk[i] = NO_BUCKET;
  }
  for (let b = 0; b < BUCKETS; b++) mass[b] += odd[b];
}

let supportSize = 0; // second result of floorPass
let collected = 0; // third result of floorPass: tokens in IDX/XS
let nearCount = 0; // tokens near the remainder boundary, at the front of IDX
/** floorPass collects the tokens whose remainder may be >= this; it adapts to the last boundary seen. */
let collectFrom = 0.25;

// The collecting loops below have no data-dependent branches: on a flat distribution most remainders are random
// against the threshold, and a mispredicted branch per token cost four times the loop (1.2 ms at |V| = 151,936).

/**
 * One pass over the support: writes floor(x)·2^-24 into `out` (x = e·(2^24/z); 0 outside the support) and
 * collects into IDX/XS every token whose remainder is >= `from`, with its remainder: the tail of small
 * remainders is touched once. Returns Σ floor(x) (exact); sets supportSize and collected.
 */
function floorPass(out: Float32Array, n: number, z: number, from: number): number {
  const w = W;
  const idx = IDX;
  const xs = XS;
  const scale = PROB_UNITS / z;
  let total = 0;
  let support = 0;
  let m = 0;
  for (let i = 0; i < n; i++) {
    const e = w[i];
    if (e < 0) {
      out[i] = 0;
      continue;
    }
    support++;
    const x = e * scale;
    const f = Math.floor(x);
    out[i] = f * PROB_UNIT;
    total += f;
    const r = x - f;
    idx[m] = i;
    xs[m] = r;
    m += +(r >= from);
  }
  supportSize = support;
  collected = m;
  return total;
}

/**
 * floorPass for the tokens expScaled collected (the first `m` of IDX; `out` is zero), given that every token it
 * left out has x < `from` (so floor 0 and a remainder below `from`): keeps in IDX/XS those whose remainder is
 * >= `from`, with it. Returns Σ floor(x); sets collected.
 */
function floorCollected(out: Float32Array, m: number, z: number, from: number): number {
  const w = W;
  const idx = IDX;
  const xs = XS;
  const scale = PROB_UNITS / z;
  let total = 0;
  let c = 0;
  for (let k = 0; k < m; k++) {
    const i = idx[k];
    const x = w[i] * scale;
    const f = Math.floor(x);
    out[i] = f * PROB_UNIT;
    total += f;
    const r = x - f;
    idx[c] = i; // c <= k: never overwrites an unread entry
    xs[c] = r;
    c += +(r >= from);
  }
  collected = c;
  return total;
}

/** The histogram of the `m` collected remainders in XS into HIST (bucket r·2^12, exact). */
function histogramCollected(m: number): void {
  const xs = XS;
  const hist = HIST;
  hist.fill(0);
  for (let k = 0; k < m; k++) {
    // Written out rather than hist[(r·4096) | 0]++, which V8 compiles to a much slower sequence.
    const b = Math.floor(xs[k] * BUCKETS);
    hist[b] = hist[b] + 1;
  }
}

/** The histogram of every support token's remainder into HIST (when the collected ones do not reach the cut). */
function histogramAll(n: number, z: number): void {
  const w = W;
  const hist = HIST;
  hist.fill(0);
  const scale = PROB_UNITS / z;
  for (let i = 0; i < n; i++) {
    const e = w[i];
    if (e < 0) continue;
    const x = e * scale;
    const b = Math.floor((x - Math.floor(x)) * BUCKETS);
    hist[b] = hist[b] + 1;
  }
}

/**
 * Adds a unit to every token among the `m` in IDX/XS whose remainder is >= hi; moves those whose remainder lies
 * in [lo, hi) to the front of IDX (nearCount). Returns the number of tokens above.
 */
function unitPass(out: Float32Array, m: number, lo: number, hi: number): number {
  const idx = IDX;
  const xs = XS;
  let sure = 0;
  let near = 0;
  for (let k = 0; k < m; k++) {
    const r = xs[k];
    const i = idx[k];
    const up = +(r >= hi);
    out[i] += up * PROB_UNIT;
    sure += up;
    idx[near] = i; // near <= k: never overwrites an unread entry
    near += +(r >= lo) - up; // 1 exactly when lo <= r < hi
  }
  nearCount = near;
  return sure;
}

/** Like floorPass then unitPass, over every token: for a boundary below floorPass's collection threshold. */
function writePass(out: Float32Array, n: number, z: number, lo: number, hi: number): number {
  const w = W;
  const idx = IDX;
  const scale = PROB_UNITS / z;
  let sure = 0;
  let near = 0;
  for (let i = 0; i < n; i++) {
    const e = w[i];
    if (e < 0) continue;
    const x = e * scale;
    const f = Math.floor(x);
    const r = x - f;
    const up = +(r >= hi);
    out[i] = (f + up) * PROB_UNIT;
    sure += up;
    if (r >= lo && up === 0) idx[near++] = i;
  }
  nearCount = near;
  return sure;
}

/**
 * The boundary bucket b of HIST: the `missing` largest remainders are all of buckets > b and some of bucket b
 * (with missing = 0 the boundary is above every remainder, BUCKETS, and nothing is added).
 */
function boundaryBucket(missing: number): number {
  let b = BUCKETS;
  let above = 0;
  while (above < missing && above + HIST[b - 1] < missing) above += HIST[--b];
  if (above < missing) b--;
  return b;
}

/**
 * Quantises the support held in W (exps; z = their index-order sum) onto `out`, every entry of which is written.
 * With `pre` >= 0, the first `pre` tokens of IDX hold every token with x >= collectFrom (expScaled collected
 * them; maskedCount is set), so only they are visited (`out` is cleared first unless `zeroed`); otherwise one
 * pass over all.
 */
function quantizeDense(out: Float32Array, n: number, z: number, pre = -1, zeroed = false): void {
  const from = collectFrom;
  let total: number;
  if (pre >= 0) {
    if (!zeroed) out.fill(0);
    total = floorCollected(out, pre, z, from);
    supportSize = n - maskedCount;
  } else total = floorPass(out, n, z, from);
  const missing = PROB_UNITS - total;
  if (missing < 0 || missing > supportSize) {
    quantizeDenseFallback(out, n);
    return;
  }
  // HIST holds the collected tokens only, so it is complete above bucket `partial` (every uncollected remainder
  // is below `from`).
  histogramCollected(collected);
  const partial = Math.floor(from * BUCKETS);
  let b = boundaryBucket(missing);
  const complete = b > partial;
  if (!complete) {
    histogramAll(n, z);
    b = boundaryBucket(missing);
  }
  const lo = b / BUCKETS;
  const hi = (b + 1) / BUCKETS;
  // Collect a little below this boundary next time (the distributions of one stream are alike).
  collectFrom = Math.max(0, Math.min(0.5, lo) - 0.125);
  // Above `partial`, every token above or in the boundary bucket was collected; otherwise scan them all.
  const sure = complete ? unitPass(out, collected, lo, hi) : writePass(out, n, z, lo, hi);
  if (missing === 0) return;
  // The boundary bucket's tokens by remainder (desc), then id (asc): the first `need` get a unit.
  const near = IDX.subarray(0, nearCount);
  const need = missing - sure;
  if (!(need >= 0 && need <= near.length)) {
    quantizeDenseFallback(out, n); // unreachable with a complete histogram; a guard, not a path
    return;
  }
  const scale = PROB_UNITS / z;
  const rem = new Float64Array(near.length);
  for (let k = 0; k < near.length; k++) {
    const x = W[near[k]] * scale;
    rem[k] = x - Math.floor(x);
  }
  const order = Int32Array.from({ length: near.length }, (_, k) => k).sort(
    (a, c) => rem[c] - rem[a] || near[a] - near[c],
  );
  for (let t = 0; t < need; t++) out[near[order[t]]] += PROB_UNIT;
}

/** Plain quantisation of the support marked in W (any entry >= 0), for the rare cases the fast path declines. */
function quantizeDenseFallback(out: Float32Array, n: number): void {
  const ids = supportIds(n, true);
  out.fill(0);
  quantizeSupport(out, ids, heldWeights(ids));
}

/** S = (logits − max)/T, score bucket of every survivor into BK (NO_BUCKET otherwise), counts into HIST. */
function bucketScaled(
  logits: ArrayLike<number>,
  n: number,
  max: number,
  temperature: number,
  scale: number,
): void {
  const sc = S;
  const bk = BK;
  const hist = HIST;
  hist.fill(0);
  for (let i = 0; i < n; i++) {
    const s = temperature === 1 ? logits[i] - max : (logits[i] - max) / temperature;
    sc[i] = s;
    if (s > -Infinity) {
      const b = Math.min(BUCKETS - 1, Math.floor(-s * scale));
      bk[i] = b;
      hist[b] = hist[b] + 1;
    } else bk[i] = NO_BUCKET;
  }
}

/** Ids in buckets below `boundary` into result (ascending), ids in `boundary` into IDX from `tieStart`. */
function collectTop(n: number, boundary: number, result: Int32Array, tieStart: number): number {
  const bk = BK;
  const idx = IDX;
  let p = 0;
  let t = 0;
  for (let i = 0; i < n; i++) {
    const b = bk[i];
    if (b < boundary) result[p++] = i;
    else if (b === boundary) idx[tieStart + t++] = i;
  }
  return t;
}

/** Sorts ids into processing order unless their scores are all equal (then id order already is). */
function orderZone(zone: Int32Array): void {
  const first = S[zone[0]];
  for (let q = 1; q < zone.length; q++) {
    if (S[zone[q]] !== first) {
      sortByScore(zone, S);
      return;
    }
  }
}

/**
 * Top-k (scores into S on the way): the k survivors first in (score desc, id asc) order, returned ascending.
 * Histogram on the score (bucket = ⌊−s·scale⌋), sort of the boundary bucket only.
 */
function selectTopK(
  logits: ArrayLike<number>,
  n: number,
  max: number,
  temperature: number,
  count: number,
  scale: number,
  k: number,
): Int32Array {
  bucketScaled(logits, n, max, temperature, scale);
  let boundary = 0;
  let before = 0;
  while (before + HIST[boundary] < k) before += HIST[boundary++];
  const result = new Int32Array(k);
  const tieStart = count - HIST[boundary];
  const ties = IDX.subarray(tieStart, tieStart + collectTop(n, boundary, result, tieStart));
  orderZone(ties);
  for (let p = before, q = 0; p < k; q++) result[p++] = ties[q];
  return result.sort();
}

let keptCount = 0; // second result of collectZone: tokens of buckets before the crossing, in KEPT

/**
 * Ids of bucket `cross` into IDX (ascending; returns the count), ids of earlier buckets into KEPT (keptCount).
 * Buckets are those massPass stored in BK.
 */
function collectZone(n: number, cross: number): number {
  const idx = IDX;
  const kept = KEPT;
  const bk = BK;
  let m = 0;
  let k = 0;
  // Without branches (see floorPass); masked tokens are in NO_BUCKET, above every crossing.
  for (let i = 0; i < n; i++) {
    const b = bk[i];
    kept[k] = i;
    k += +(b < cross);
    idx[m] = i;
    m += +(b === cross);
  }
  keptCount = k;
  return m;
}

/**
 * Top-p from the candidates of expCandidates alone, when they hold the crossing (their mass reaches topP with the
 * margin; every other token scores lower, so they come first in processing order): the kept tokens ascending,
 * null when the crossing cannot be certified, or undefined when the candidates do not decide it.
 */
function topPCandidates(zt: number, topP: number): Int32Array | null | undefined {
  const tLo = (topP - TOP_P_MARGIN) * zt;
  const tHi = (topP + TOP_P_MARGIN) * zt;
  if (candidateCount > SPARSE_MAX || !(candidateMass >= tHi)) return undefined;
  const ids = CAND.slice(0, candidateCount);
  for (let q = 0; q < ids.length; q++) S[ids[q]] = scoreOf(ids[q]);
  sortByScore(ids, S);
  let cum = 0;
  for (let q = 0; q < ids.length; q++) {
    cum += W[ids[q]];
    if (cum >= tLo) {
      if (cum < tHi) return null;
      topPCut = S[ids[q]] - TOP_P_CUT_MARGIN;
      return ids.slice(0, q + 1).sort();
    }
  }
  return undefined; // unreachable: the candidates' mass reaches tHi
}

/** Top-p candidates are the tokens scoring >= topPCut: this far below the last crossing score. */
const TOP_P_CUT_MARGIN = 2;
let topPCut = -4;

/**
 * Top-p on the dense support in W (exps, -1 elsewhere; MASS filled, zt the total mass): the
 * kept tokens in ascending order, or null when the crossing cannot be certified.
 */
function topPDense(n: number, zt: number, topP: number, scale: number): Int32Array | null {
  const tLo = (topP - TOP_P_MARGIN) * zt;
  const tHi = (topP + TOP_P_MARGIN) * zt;
  let cross = 0;
  let cum = 0;
  while (cross < BUCKETS && cum + MASS[cross] < tLo) cum += MASS[cross++];
  if (cross === BUCKETS) return null;
  const zone = IDX.subarray(0, collectZone(n, cross));
  if (zone.length > SPARSE_MAX) return null; // a crowded bucket: let the exact code sort it
  for (let q = 0; q < zone.length; q++) S[zone[q]] = scoreOf(zone[q]); // orderZone reads S
  orderZone(zone);
  for (let q = 0; q < zone.length; q++) {
    cum += W[zone[q]];
    if (cum >= tLo) {
      if (cum < tHi) return null; // too close to topP to know which side the reference's sum lands on
      topPCut = S[zone[q]] - TOP_P_CUT_MARGIN;
      // KEPT is ascending already: merge the few zone tokens in (sorting a large kept set took milliseconds).
      return mergeAscending(KEPT.subarray(0, keptCount), zone.slice(0, q + 1).sort());
    }
  }
  return null;
}

/** The union of two ascending id lists (disjoint), ascending. */
function mergeAscending(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i] < b[j] ? a[i++] : b[j++];
  while (i < a.length) out[k++] = a[i++];
  while (j < b.length) out[k++] = b[j++];
  return out;
}

let minScore = 0; // second result of scaleScores

/** S = (logits − max)/T; returns the number of finite scores and sets minScore to the lowest of them. */
function scaleScores(logits: ArrayLike<number>, n: number, max: number, temperature: number): number {
  const sc = S;
  let count = 0;
  let smin = 0;
  for (let i = 0; i < n; i++) {
    const s = temperature === 1 ? logits[i] - max : (logits[i] - max) / temperature;
    sc[i] = s;
    const finite = s > -Infinity;
    count += finite ? 1 : 0;
    smin = finite && s < smin ? s : smin;
  }
  minScore = smin;
  return count;
}

// ---------------------------------------------------------------------------------------------------------------
// Small top-k in one pass over typed-array logits (the common case: k ≤ 50 or so).
// ---------------------------------------------------------------------------------------------------------------
const FAST_TOP_K_MAX = 1024;
/** The largest finite float32. */
const F32_MAX = 3.4028234663852886e38;
let candidateIds = new Int32Array(0);
let candidateVals = new Float64Array(0);

/**
 * One pass over the logits computing what checkedMax does (max, finiteCount, finiteMin; for float32 logits a lower
 * bound of finiteMin) and collecting every token whose logit is >= a rising threshold, kept at the k-th largest
 * logit seen so far (ties included). So the collected tokens (ascending ids, count returned) hold the k largest
 * logits and everything tied with them, and `lastThreshold` is a logit every uncollected token is below. The
 * caller checks lastMax for NaN/+Infinity.
 */
let lastThreshold = -Infinity;
function collectTopLogits(logits: Float32Array | Float64Array, n: number, k: number): number {
  const cap = Math.max(4 * k, 512);
  if (candidateIds.length < 2 * cap) {
    candidateIds = new Int32Array(2 * cap);
    candidateVals = new Float64Array(2 * cap);
  }
  const ids = candidateIds;
  // -Number.MAX_VALUE, not -Infinity: masked tokens are never collected.
  let thr = -Number.MAX_VALUE;
  let m = 0;
  let max = -Infinity;
  // Every finite float32 is >= -F32_MAX, so for float32 logits the minimum starts there and the second test below
  // only catches masked tokens and NaNs; finiteMin is then a lower bound, which is all the caller needs (to rule
  // out scores overflowing to -Infinity).
  let min = logits instanceof Float32Array ? -F32_MAX : Infinity;
  let nans = 0;
  let masked = 0;
  // The common token is below the threshold and not below the minimum: two comparisons, both almost never taken
  // (Math.max's NaN handling and counting with conditional adds cost more than the rest of the loop).
  for (let i = 0; i < n; i++) {
    const v = logits[i];
    if (v >= thr) {
      if (v > max) max = v; // a new maximum is always >= thr
      if (v < min) min = v;
      ids[m++] = i;
      if (m === ids.length) {
        m = compactCandidates(logits, m, k);
        thr = lastThreshold;
      }
    } else if (!(v >= min)) {
      if (v !== v) nans++;
      else if (v === -Infinity) masked++;
      else min = v;
    }
  }
  finiteCount = n - masked - nans;
  finiteMin = min;
  lastMax = nans > 0 ? NaN : max; // NaN or +Infinity here sends the caller to the checked path
  lastThreshold = thr;
  return m;
}

/** Keeps the candidates whose logit is >= the k-th largest among them (sets lastThreshold); returns the count. */
function compactCandidates(logits: ArrayLike<number>, m: number, k: number): number {
  const ids = candidateIds;
  const thr = kthLargest(logits, m, k);
  let p = 0;
  for (let q = 0; q < m; q++) if (logits[ids[q]] >= thr) ids[p++] = ids[q];
  lastThreshold = thr;
  return p;
}
let lastMax = 0;

/** The k-th largest of the logits of candidateIds[0..m) (never NaN: collectTopLogits skips them). */
function kthLargest(logits: ArrayLike<number>, m: number, k: number): number {
  const vals = candidateVals;
  for (let q = 0; q < m; q++) vals[q] = logits[candidateIds[q]];
  return selectNth(vals, m, m - k);
}

/** The nth smallest (0-based) of a[0..len), by quickselect (Hoare partition); reorders a. O(len) expected. */
function selectNth(a: Float64Array, len: number, nth: number): number {
  let lo = 0;
  let hi = len - 1;
  while (hi > lo) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (nth <= j) hi = j;
    else if (nth >= i) lo = i;
    else break;
  }
  return a[nth];
}

/**
 * Top-k for a small k from the collected tokens: scores, order (score desc, id asc), the first k ascending; or
 * null when a token left out could tie the k-th score (scores can tie where logits differ, after rounding).
 */
function fastTopK(
  logits: Float32Array | Float64Array,
  m: number,
  max: number,
  temperature: number,
  k: number,
): Int32Array | null {
  if (m < k) return null;
  // Only the tokens scoring at least the k-th largest logit's score can be among the first k (scores are monotone
  // in the logits, and a lower logit can round to the same score, so the cut is on scores): sort just those.
  const vk = kthLargest(logits, m, k);
  const sCut = temperature === 1 ? vk - max : (vk - max) / temperature;
  let c = 0;
  for (let q = 0; q < m; q++) {
    const i = candidateIds[q];
    const l = logits[i];
    const sc = temperature === 1 ? l - max : (l - max) / temperature;
    if (sc >= sCut) {
      S[i] = sc;
      candidateIds[c++] = i; // c <= q: never overwrites an unread entry
    }
  }
  const ids = sortByScore(candidateIds.slice(0, c), S);
  const sk = S[ids[k - 1]];
  const left = temperature === 1 ? lastThreshold - max : (lastThreshold - max) / temperature;
  if (lastThreshold > -Infinity && !(left < sk)) return null;
  return ids.slice(0, k).sort();
}

/** The largest logit, for the untruncated path (no counts needed); validates like checkedMax. */
function plainMax(logits: ArrayLike<number>, n: number): number {
  if (!(logits instanceof Float32Array || logits instanceof Float64Array)) return checkedMax(logits, n);
  const max = typedMax(logits, n);
  // Only NaNs (or nothing but NaNs and −Infinity) leave −Infinity here: the checked pass says which it is.
  return max === Infinity || max === -Infinity ? checkedMax(logits, n) : max;
}

/**
 * Plain comparisons in two independent chains (Math.max's NaN and −0 handling costs a third of the pass): NaN is
 * skipped here and reported by the exp pass (sawNaN); which of ±0 wins cannot change any score's exp.
 */
function typedMax(logits: Float32Array | Float64Array, n: number): number {
  let m0 = -Infinity;
  let m1 = -Infinity;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a = logits[i];
    const b = logits[i + 1];
    if (a > m0) m0 = a;
    if (b > m1) m1 = b;
  }
  if (i < n && logits[i] > m0) m0 = logits[i];
  return m0 > m1 ? m0 : m1;
}

/**
 * The largest logit for top-p without top-k, which also needs finiteCount and finiteMin: typedMax's pass that
 * also tracks the smallest logit (a loop of its own: the untruncated path should not pay for it); if one is
 * masked, checkedMax counts them.
 */
function plainMaxMin(logits: ArrayLike<number>, n: number): number {
  if (!(logits instanceof Float32Array || logits instanceof Float64Array)) return checkedMax(logits, n);
  let m0 = -Infinity;
  let m1 = -Infinity;
  let l0 = Infinity;
  let l1 = Infinity;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a = logits[i];
    const b = logits[i + 1];
    if (a > m0) m0 = a;
    if (b > m1) m1 = b;
    if (a < l0) l0 = a;
    if (b < l1) l1 = b;
  }
  if (i < n) {
    if (logits[i] > m0) m0 = logits[i];
    if (logits[i] < l0) l0 = logits[i];
  }
  const max = m0 > m1 ? m0 : m1;
  finiteMin = l0 < l1 ? l0 : l1;
  if (max === Infinity || max === -Infinity || !(finiteMin > -Infinity)) return checkedMax(logits, n);
  finiteCount = n;
  return max;
}

let finiteCount = 0; // second and third results of checkedMax
let finiteMin = 0;

/**
 * The largest logit, the number of finite ones (finiteCount) and the smallest finite one (finiteMin); throws on
 * NaN, +Infinity or non-numbers. Typed arrays hold numbers only, so their loop checks NaN/+Infinity once at the
 * end (Math.max propagates NaN) and has no unpredictable branch.
 */
function checkedMax(logits: ArrayLike<number>, n: number): number {
  const max = maxCountMin(logits, n);
  if (badInput || max !== max || max === Infinity) throwBadLogit(logits, n);
  return max;
}

let badInput = false; // fourth result of maxCountMin

/** The loop of checkedMax (a function of its own so that the code after it cannot deoptimise it). */
function maxCountMin(logits: ArrayLike<number>, n: number): number {
  let max = -Infinity;
  let min = Infinity;
  let masked = 0;
  let nans = 0;
  let bad = false;
  // Branches that are almost never taken instead of Math.max and conditional adds (see collectTopLogits).
  for (let i = 0; i < n; i++) {
    const v = logits[i];
    bad = bad || typeof v !== 'number'; // folded away for typed arrays
    if (!(v > -Infinity)) {
      if (v === v) masked++;
      else nans++; // NaN, or a non-number (bad)
      continue;
    }
    if (v > max) max = v;
    if (v < min) min = v;
  }
  finiteCount = n - masked - nans;
  finiteMin = min;
  badInput = bad;
  return nans > 0 ? NaN : max;
}

/** Throws InvalidLogits naming the first NaN, +Infinity or non-number. */
function throwBadLogit(logits: ArrayLike<number>, n: number): never {
  for (let i = 0; i < n; i++) {
    const v = logits[i];
    if (typeof v !== 'number' || v !== v || v === Infinity) {
      throw new KernelError(KernelErrorCode.InvalidLogits, `logit ${i} is ${String(v)}`);
    }
  }
  throw new KernelError(KernelErrorCode.InvalidLogits, 'logits are not numbers');
}

/** Ids (ascending) of the tokens with W[i] >= 0 (fromW) or S[i] > -Infinity. */
function supportIds(n: number, fromW: boolean): Int32Array {
  let count = 0;
  for (let i = 0; i < n; i++) if (fromW ? W[i] >= 0 : S[i] > -Infinity) count++;
  const ids = new Int32Array(count);
  for (let i = 0, p = 0; i < n; i++) if (fromW ? W[i] >= 0 : S[i] > -Infinity) ids[p++] = i;
  return ids;
}

/** Marks every token outside `ids` as masked in S. */
function restrictScores(n: number, ids: Int32Array): void {
  const keep = new Uint8Array(n);
  for (let k = 0; k < ids.length; k++) keep[ids[k]] = 1;
  for (let i = 0; i < n; i++) if (!keep[i]) S[i] = -Infinity;
}

/** The lowest index holding `max`. */
function indexOfMax(logits: ArrayLike<number>, max: number): number {
  let arg = 0;
  while (!(logits[arg] === max)) arg++;
  return arg;
}

/**
 * Turns raw logits into the grid distribution sampled from, in HF's order: temperature, top-k, top-p, softmax
 * over the survivors, quantisation.
 *
 * - temperature 0: one-hot at the argmax (lowest index on ties); top-k/top-p cannot change it.
 * - scaled scores s_i = (l_i − max l)/T (max-subtraction first, so tiny T cannot overflow).
 * - top-k keeps exactly k tokens in (s desc, index asc) order (unlike HF, ties at the k-th score are not all
 *   kept, so |survivors| is always k).
 * - top-p: with p_i = e^{s_i}/Σe (sum in index order over the top-k survivors), keeps the smallest prefix of the
 *   (s desc, index asc) order whose running float64 sum reaches topP; at least one token is kept.
 * - softmax with expNonPositive, normaliser summed in index order; quantisation: floor of p·2^24, then the
 *   missing units one each to the largest remainders (ties: lower index first).
 * - −Infinity logits are masked tokens; NaN or +Infinity throw KernelError(InvalidLogits).
 *
 * Returns a new array owned by the caller, or `options.out` filled in.
 */
export function processLogits(
  logits: ArrayLike<number>,
  params: SamplingParams,
  options?: ProcessOptions,
): Float32Array {
  validateSamplingParams(params);
  scoreLogits = null; // S is the score store unless the untruncated path says otherwise
  const n = logits.length;
  if (n === 0) throw new KernelError(KernelErrorCode.InvalidLogits, 'logits are empty');
  let out: Float32Array;
  if (options?.out !== undefined) {
    out = options.out;
    if (!(out instanceof Float32Array) || out.length !== n) {
      throw new KernelError(KernelErrorCode.InvalidArgument, `out must be a Float32Array of length ${n}`);
    }
    if (ArrayBuffer.isView(logits) && (logits as unknown as Float32Array).buffer === out.buffer) {
      throw new KernelError(KernelErrorCode.InvalidArgument, 'out must not share memory with the logits');
    }
  } else out = new Float32Array(n);

  // Small top-k on typed arrays: one pass for validation, maximum and the candidates.
  let fastCandidates = -1;
  if (
    topKFast(params, n) &&
    (logits instanceof Float32Array || logits instanceof Float64Array) &&
    (fastCandidates = collectTopLogits(logits, n, params.topK)) >= 0 &&
    lastMax === lastMax &&
    lastMax !== Infinity
  ) {
    const max = lastMax;
    if (max === -Infinity) {
      throw new KernelError(KernelErrorCode.InvalidLogits, 'every token is masked (-Infinity)');
    }
    const smin = params.temperature === 1 ? finiteMin - max : (finiteMin - max) / params.temperature;
    if (params.topK < finiteCount && smin > -Infinity) {
      ensureScratch(n);
      const ids = fastTopK(logits, fastCandidates, max, params.temperature, params.topK);
      if (ids !== null) {
        if (options?.out !== undefined) out.fill(0);
        finishExact(out, ids, S, params.topP);
        return out;
      }
    }
  }
  const max =
    params.topK === 0 && params.temperature > 0
      ? params.topP === 1
        ? plainMax(logits, n)
        : plainMaxMin(logits, n)
      : checkedMax(logits, n);
  if (max === -Infinity)
    throw new KernelError(KernelErrorCode.InvalidLogits, 'every token is masked (-Infinity)');
  const { temperature, topK, topP } = params;
  if (temperature === 0) {
    if (options?.out !== undefined) out.fill(0);
    out[indexOfMax(logits, max)] = 1;
    return out;
  }

  ensureScratch(n);
  // Scores are monotone in the logits, so the lowest finite score is that of the lowest finite logit, unless
  // the division overflows it to -Infinity (a tiny temperature): then count and minimum need a pass of their own.
  let count = finiteCount;
  let smin = temperature === 1 ? finiteMin - max : (finiteMin - max) / temperature;
  if (!(smin > -Infinity)) {
    count = scaleScores(logits, n, max, temperature);
    smin = minScore;
  }
  const scale = smin === 0 ? 0 : (BUCKETS - 1) / -smin;
  if (topK > 0 && topK < count) {
    const ids = selectTopK(logits, n, max, temperature, count, scale, topK);
    if (ids.length <= SPARSE_MAX || topP < 1) {
      // Small supports, and the unusual large top-k followed by top-p: the exact code.
      if (options?.out !== undefined) out.fill(0);
      finishExact(out, ids, S, topP);
      return out;
    }
    // A large top-k alone: quantise densely on its support.
    restrictScores(n, ids);
    expSupport(n);
    quantizeDense(out, n, supportSum(n));
    return out;
  }
  if (!(topP < 1 && count > 1)) {
    scoreLogits = logits;
    scoreMax = max;
    scoreTemperature = temperature;
    sawNaN = false;
    // Tokens with x below collectFrom need no second look: floor 0, and a remainder too small to matter unless
    // the boundary drops below collectFrom, which quantizeDense handles.
    const z = expScaled(logits, n, max, temperature, collectFrom);
    if (sawNaN) throwBadLogit(logits, n);
    quantizeDense(out, n, z, precollected, options?.out === undefined);
    scoreLogits = null;
    return out;
  }

  // Top-p.
  scoreLogits = logits;
  scoreMax = max;
  scoreTemperature = temperature;
  sawNaN = false;
  const zt = expCandidates(logits, n, max, temperature, topPCut);
  if (sawNaN) throwBadLogit(logits, n);
  let kept = topPCandidates(zt, topP);
  if (kept === undefined) {
    massPass(n, scale);
    kept = topPDense(n, zt, topP, scale);
  }
  if (kept === null) {
    // Uncertified crossing: the plain computation on the whole support.
    fillScores(n);
    out.fill(0);
    finishExact(out, supportIds(n, false), S, topP);
    return out;
  }
  if (kept.length <= SPARSE_MAX) {
    if (options?.out !== undefined) out.fill(0);
    quantizeSupport(out, kept, heldWeights(kept));
    scoreLogits = null;
    return out;
  }
  // A large kept set: mask the rest in W and quantise densely.
  quantizeDense(out, n, keepOnly(n, kept));
  scoreLogits = null;
  return out;
}
