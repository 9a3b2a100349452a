/**
 * Test helpers: toy prefix-dependent models, the exact-law enumeration harness with pluggable rules, a real
 * speculative loop built from the kernel's samplers, and a chi-square test.
 */
import {
  acceptanceProbability,
  candidateAcceptanceProbability,
  candidateFallbackProbability,
  drawCandidates,
  processLogits,
  residualLaw,
  resolveCandidates,
  sampleFrom,
  sampleResidual,
  scanAcceptance,
  verifyDsd,
  verifyDssd,
} from '../src/index.js';
import type { RoundRng, SamplingParams, ScanResult, SessionRng } from '../src/index.js';

// ---------------------------------------------------------------------------------------------------------------
// Deterministic pseudo-randomness for building test inputs (not the kernel's RNG).
// ---------------------------------------------------------------------------------------------------------------

/** mulberry32: a tiny seeded generator of doubles in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal from a uniform source (Box–Muller). */
export function gaussian(rand: () => number): number {
  const u = 1 - rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

/** FNV-1a over a list of integers: the "hash of the prefix" that makes a toy model context-dependent. */
export function hashInts(values: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const v of values) {
    for (let s = 0; s < 32; s += 8) {
      h ^= (v >>> s) & 0xff;
      h = Math.imul(h, 0x01000193);
    }
  }
  return h >>> 0;
}

/** A random grid distribution over V tokens (some families of weights, always normalised exactly). */
export function randomGridDistribution(V: number, seed: number, spread = 1.5): Float32Array {
  const rand = mulberry32(seed);
  const logits = Array.from({ length: V }, () => spread * gaussian(rand));
  return processLogits(logits, { temperature: 1, topK: 0, topP: 1 });
}

// ---------------------------------------------------------------------------------------------------------------
// Toy models: P and Q depend on the whole prefix through a hash.
// ---------------------------------------------------------------------------------------------------------------

export type Dist = Float32Array;
export type Prefix = readonly number[];

/** A draft/target pair over a vocabulary of V tokens. */
export interface ToyPair {
  name: string;
  V: number;
  target(prefix: Prefix): Dist;
  draft(prefix: Prefix): Dist;
}

function memo(f: (prefix: Prefix) => Dist): (prefix: Prefix) => Dist {
  const cache = new Map<string, Dist>();
  return (prefix) => {
    const key = prefix.join(',');
    let d = cache.get(key);
    if (!d) {
      d = f(prefix);
      cache.set(key, d);
    }
    return d;
  };
}

/** Logits from a hash of (seed, role, prefix). */
export type LogitFn = (prefix: Prefix) => number[];

export function hashedLogits(V: number, seed: number, role: number, spread: number): LogitFn {
  return (prefix) => {
    const rand = mulberry32(hashInts([seed, role, prefix.length, ...prefix]));
    return Array.from({ length: V }, () => spread * gaussian(rand));
  };
}

export function toyPair(
  name: string,
  V: number,
  targetLogits: LogitFn,
  targetParams: SamplingParams,
  draftLogits: LogitFn,
  draftParams: SamplingParams,
): ToyPair {
  return {
    name,
    V,
    target: memo((p) => processLogits(targetLogits(p), targetParams)),
    draft: memo((p) => processLogits(draftLogits(p), draftParams)),
  };
}

const T1: SamplingParams = { temperature: 1, topK: 0, topP: 1 };
const GREEDY: SamplingParams = { temperature: 0, topK: 0, topP: 1 };

/** The families used by the exact tests. */
export function families(V: number, seed: number): ToyPair[] {
  const t = hashedLogits(V, seed, 1, 1.5);
  const d = hashedLogits(V, seed, 2, 1.5);
  const noisy: LogitFn = (p) => {
    const base = t(p);
    const noise = hashedLogits(V, seed, 3, 0.8)(p);
    return base.map((x, i) => x + noise[i]);
  };
  // Disjoint supports: a prefix hash assigns every token to the target's side or the draft's (both non-empty).
  const side = (p: Prefix): boolean[] => {
    const bits = hashInts([seed, 9, ...p]);
    const s = Array.from({ length: V }, (_, i) => ((bits >>> i) & 1) === 1);
    if (s.every((x) => x === s[0])) s[0] = !s[0];
    return s;
  };
  const disjointT: LogitFn = (p) => t(p).map((x, i) => (side(p)[i] ? x : -Infinity));
  const disjointD: LogitFn = (p) => d(p).map((x, i) => (side(p)[i] ? -Infinity : x));
  const fams: ToyPair[] = [
    toyPair('random', V, t, T1, d, T1),
    toyPair('correlated', V, t, T1, noisy, { temperature: 0.8, topK: 0, topP: 1 }),
    toyPair('identical', V, t, T1, t, T1),
    toyPair('disjoint', V, disjointT, T1, disjointD, T1),
    toyPair('onehot-target', V, t, GREEDY, d, T1),
    toyPair('onehot-draft', V, t, T1, d, GREEDY),
    toyPair('near-uniform', V, hashedLogits(V, seed, 4, 0.01), T1, hashedLogits(V, seed, 5, 0.01), T1),
    toyPair('heavy-tail', V, hashedLogits(V, seed, 6, 9), T1, hashedLogits(V, seed, 7, 9), T1),
    toyPair('topk-topp', V, t, { temperature: 0.9, topK: Math.max(2, V - 2), topP: 0.9 }, noisy, {
      temperature: 1.3,
      topK: Math.max(2, V - 1),
      topP: 0.8,
    }),
    toyPair('greedy', V, t, GREEDY, noisy, GREEDY),
  ];
  return fams;
}

/** A model whose drafts are sampled with one Q, and the other Q a buggy verifier would use for q and the residual. */
export interface MismatchedQ {
  what: string;
  model: ToyPair;
  verifyQ: (prefix: Prefix) => Dist;
}

/** The planted "verified with another Q" bug: a different temperature, and a top-k the verifier ignores. */
export function mismatchedQCases(): MismatchedQ[] {
  const V = 4;
  const t = hashedLogits(V, 21, 1, 1.5);
  const d = hashedLogits(V, 21, 2, 1.5);
  const cases: Array<[string, SamplingParams, SamplingParams]> = [
    // [what, params the draft is sampled with, params of the Q used for q and the residual]
    ['different temperature', T1, { temperature: 0.6, topK: 0, topP: 1 }],
    ['different top-k', { temperature: 1, topK: 2, topP: 1 }, T1],
  ];
  return cases.map(([what, sampled, verified]) => ({
    what,
    model: toyPair('mismatch', V, t, T1, d, sampled),
    verifyQ: (prefix: Prefix) => processLogits(d(prefix), verified),
  }));
}

// ---------------------------------------------------------------------------------------------------------------
// Exact laws.
// ---------------------------------------------------------------------------------------------------------------

/** Rule functions of the speculative procedure; the defaults are the kernel's own. Tests plant bugs here. */
export interface Rules {
  /** Probability of accepting a draft with target prob p and draft prob q. */
  accept: (p: number, q: number) => number;
  /** The law sampled after a rejection, given the (possibly channelled) P and Q. */
  residual: (P: ArrayLike<number>, Q: ArrayLike<number>) => ArrayLike<number>;
  /** What the receiver gets when a distribution crosses the network (identity by default). */
  channel: (P: Float32Array) => ArrayLike<number>;
  /** The Q used for the q scalar and the residual; by default the Q the draft was sampled from. */
  verifyQ?: (prefix: Prefix) => Dist;
  /**
   * dssd: q scalars uplinked exactly, P_j through the channel; dsd: every Q through the channel, P exact;
   * candidate: K candidates drawn from the exact P_j, fall-back P_j through the channel.
   */
  mode: 'dssd' | 'dsd' | 'candidate';
  /** Candidate count (mode candidate). */
  K?: number;
  /** Enumerate the K candidate draws instead of using the closed-form success/fall-back mixture. */
  exhaustiveCandidates?: boolean;
}

export const kernelRules: Rules = {
  accept: acceptanceProbability,
  residual: residualLaw,
  channel: (P) => P,
  mode: 'dssd',
};

type Law = Map<string, number>;

function addTo(law: Law, key: string, mass: number): void {
  law.set(key, (law.get(key) ?? 0) + mass);
}

/** The target's own sequential law of the first N tokens. */
export function targetLaw(model: ToyPair, N: number): Law {
  const law: Law = new Map();
  const rec = (prefix: number[], w: number) => {
    if (prefix.length === N) {
      addTo(law, prefix.join(','), w);
      return;
    }
    const P = model.target(prefix);
    for (let y = 0; y < model.V; y++) if (P[y] > 0) rec([...prefix, y], w * P[y]);
  };
  rec([], 1);
  return law;
}

/** Law of the token emitted at a rejection (everything after "position j was rejected"). */
function rejectionLaw(P: Dist, Qv: ArrayLike<number>, rules: Rules): ArrayLike<number> {
  if (rules.mode === 'dsd') return rules.residual(P, Qv);
  if (rules.mode === 'dssd') return rules.residual(rules.channel(P), Qv);
  const K = rules.K ?? 1;
  const fallbackLaw = rules.residual(rules.channel(P), Qv);
  const V = P.length;
  const law = new Float64Array(V);
  if (!rules.exhaustiveCandidates) {
    // Closed form: success w.p. 1 − (1 − TV)^K, then exactly the residual; otherwise the full-P fall-back.
    const f = candidateFallbackProbability(P, Qv, K);
    const res = residualLaw(P, Qv);
    for (let y = 0; y < V; y++) law[y] = (1 - f) * res[y] + f * fallbackLaw[y];
    return law;
  }
  const rec = (k: number, w: number) => {
    if (k === K) {
      for (let y = 0; y < V; y++) law[y] += w * fallbackLaw[y];
      return;
    }
    for (let y = 0; y < V; y++) {
      if (!(P[y] > 0)) continue;
      const a = candidateAcceptanceProbability(P[y], Qv[y]);
      law[y] += w * P[y] * a;
      if (a < 1) rec(k + 1, w * P[y] * (1 - a));
    }
  };
  rec(0, 1);
  return law;
}

/** Exact law of the first N emitted tokens of the speculative procedure with draft length γ. */
export function speculativeLaw(model: ToyPair, N: number, gamma: number, rules: Rules): Law {
  const final: Law = new Map();
  const pending: Map<string, number>[] = Array.from({ length: N }, () => new Map());
  pending[0].set('', 1);
  const V = model.V;
  for (let len = 0; len < N; len++) {
    for (const [key, mass] of pending[len]) {
      const start = key === '' ? [] : key.split(',').map(Number);
      const emit = (tokens: number[], w: number) => {
        const next = [...start, ...tokens].slice(0, N);
        if (next.length >= N) addTo(final, next.join(','), mass * w);
        else addTo(pending[next.length], next.join(','), mass * w);
      };
      const rec = (drafts: number[], w: number) => {
        const ctx = [...start, ...drafts];
        if (ctx.length >= N) {
          emit(drafts, w); // the first N tokens are fixed; later branches only sum to w
          return;
        }
        const P = model.target(ctx);
        if (drafts.length === gamma) {
          for (let y = 0; y < V; y++) if (P[y] > 0) emit([...drafts, y], w * P[y]);
          return;
        }
        const Qs = model.draft(ctx);
        const Qtrue = rules.verifyQ ? rules.verifyQ(ctx) : Qs;
        const Qv = rules.mode === 'dsd' ? rules.channel(Qtrue) : Qtrue;
        let rejectMass = 0;
        for (let x = 0; x < V; x++) {
          if (!(Qs[x] > 0)) continue;
          const a = rules.accept(P[x], Qv[x]);
          if (a > 0) rec([...drafts, x], w * Qs[x] * a);
          rejectMass += Qs[x] * (1 - a);
        }
        if (rejectMass > 0) {
          const law = rejectionLaw(P, Qv, rules);
          for (let y = 0; y < V; y++) if (law[y] !== 0) emit([...drafts, y], w * rejectMass * law[y]);
        }
      };
      rec([], 1);
    }
  }
  return final;
}

/** max over sequences of |a − b| (keys missing on one side count as 0). */
export function maxAbsDiff(a: Law, b: Law): number {
  let m = 0;
  for (const [k, v] of a) m = Math.max(m, Math.abs(v - (b.get(k) ?? 0)));
  for (const [k, v] of b) if (!a.has(k)) m = Math.max(m, Math.abs(v));
  return m;
}

/** Total-variation distance between two laws. */
export function lawTv(a: Law, b: Law): number {
  let s = 0;
  for (const [k, v] of a) s += Math.abs(v - (b.get(k) ?? 0));
  for (const [k, v] of b) if (!a.has(k)) s += Math.abs(v);
  return s / 2;
}

// ---------------------------------------------------------------------------------------------------------------
// The real speculative loop, built from the kernel's samplers and the SessionRng key schedule.
// ---------------------------------------------------------------------------------------------------------------

export interface LoopOptions {
  mode: 'dssd' | 'dsd' | 'candidate';
  K?: number;
  /** Replaces the edge's scan (planted bugs). */
  scan?: (p: ArrayLike<number>, q: ArrayLike<number>, r: ArrayLike<number>) => ScanResult;
  channel?: (P: Float32Array) => ArrayLike<number>;
}

/** Runs turn `turn` of a session until N tokens are emitted; returns the first N. */
export function runLoop(
  model: ToyPair,
  N: number,
  gamma: number,
  rng: SessionRng,
  turn: number,
  opts: LoopOptions,
) {
  const out: number[] = [];
  const channel = opts.channel ?? ((P: Float32Array) => P);
  for (let round = 0; out.length < N; round++) {
    const r: RoundRng = rng.round(turn, round);
    const drafts: number[] = [];
    const Qs: Dist[] = [];
    const q: number[] = [];
    for (let i = 1; i <= gamma; i++) {
      const Q = model.draft([...out, ...drafts]);
      const x = sampleFrom(Q, r.draft(i));
      drafts.push(x);
      Qs.push(Q);
      q.push(Q[x]);
    }
    const P = Array.from({ length: gamma + 1 }, (_, i) => model.target([...out, ...drafts.slice(0, i)]));
    if (opts.mode === 'dsd') {
      const res = verifyDsd(P, Qs, drafts, r);
      out.push(...drafts.slice(0, res.accepted), res.token);
      continue;
    }
    let scan: ScanResult & { bonus: number | null };
    if (opts.scan) {
      const s = opts.scan(
        drafts.map((x, i) => P[i][x]),
        q,
        r.acceptUniforms(gamma),
      );
      scan = { ...s, bonus: s.rejectedAt === null ? sampleFrom(P[gamma], r.bonus(gamma)) : null };
    } else {
      scan = verifyDssd(P, drafts, q, r);
    }
    out.push(...drafts.slice(0, scan.accepted));
    if (scan.rejectedAt === null) {
      out.push(scan.bonus as number);
      continue;
    }
    const j = scan.rejectedAt;
    if (opts.mode === 'candidate') {
      const K = opts.K ?? 4;
      const c = drawCandidates(P[j - 1], K, r.candidateUniforms(j, K));
      const res = resolveCandidates(c.ids, c.probs, Qs[j - 1], r.candidateAcceptUniforms(j, K));
      if (!res.fallback) {
        out.push(res.token);
        continue;
      }
    }
    out.push(sampleResidual(channel(P[j - 1]), Qs[j - 1], r.residual(j)));
  }
  return out.slice(0, N);
}

// ---------------------------------------------------------------------------------------------------------------
// Chi-square goodness of fit.
// ---------------------------------------------------------------------------------------------------------------

function logGamma(x: number): number {
  // Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0.
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularised upper incomplete gamma Q(a, x). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 1000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return 1 - sum * Math.exp(-x + a * Math.log(x) - logGamma(a));
  }
  // Lentz continued fraction.
  let b = x + 1 - a;
  let c = 1e300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
}

/** Survival function of the chi-square distribution with `df` degrees of freedom. */
export function chiSquareSurvival(stat: number, df: number): number {
  return gammaQ(df / 2, stat / 2);
}

/**
 * Pearson chi-square p-value of observed counts against expected probabilities. Categories with expected count
 * below 5 are pooled; observations in a category of probability 0 give p = 0.
 */
export function chiSquareTest(
  counts: ArrayLike<number>,
  probs: ArrayLike<number>,
): { stat: number; df: number; p: number } {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i];
  let stat = 0;
  let bins = 0;
  let pooledObs = 0;
  let pooledExp = 0;
  for (let i = 0; i < counts.length; i++) {
    const e = n * probs[i];
    if (e === 0) {
      if (counts[i] > 0) return { stat: Infinity, df: 0, p: 0 };
      continue;
    }
    if (e < 5) {
      pooledObs += counts[i];
      pooledExp += e;
      continue;
    }
    stat += (counts[i] - e) ** 2 / e;
    bins++;
  }
  if (pooledExp > 0) {
    stat += (pooledObs - pooledExp) ** 2 / pooledExp;
    bins++;
  }
  const df = Math.max(1, bins - 1);
  return { stat, df, p: chiSquareSurvival(stat, df) };
}
