/**
 * Logit processing and sampling, identical on every platform.
 *
 * Distributions live on a 2^-24 grid: every probability is an integer number of units of 2^-24 and the units of
 * one distribution sum to exactly 2^24. Such values are exact in float32 (so the q scalars sent uplink equal the
 * Q kept on the device bit for bit) and their sums and differences are exact in float64 (so P−Q, residual sums
 * and acceptance tests involve no rounding at all).
 *
 * Only IEEE-754 basic operations are used on the probability path (Math.exp is implementation-defined in the
 * last bit, so a portable exp is included), which makes processLogits bit-identical in Node, browsers and
 * workers.
 */
import { KernelError, KernelErrorCode } from './errors.js';

/** HF-style sampling parameters. temperature 0 = greedy, topK 0 = off, topP 1 = off. */
export interface SamplingParams {
  temperature: number;
  topK: number;
  topP: number;
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

/** Throws KernelError(InvalidUniform) unless u is a number in [0, 1). */
export function assertUniform(u: number, what = 'uniform'): void {
  if (typeof u !== 'number' || !(u >= 0 && u < 1)) {
    throw new KernelError(KernelErrorCode.InvalidUniform, `${what} must be in [0, 1), got ${String(u)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Portable exp for x <= 0: Cody–Waite reduction x = k·ln2 + r, Taylor series for e^r on |r| <= ln2/2 (truncation
// error < 1e-17), scale by an exact power of two. Relative error is a couple of ulps; what matters is that the
// result depends only on IEEE +,−,×,÷, so every platform computes the same bits.
// ---------------------------------------------------------------------------------------------------------------
const LN2_HI = 6.9314718036912381649e-1; // ln2 with the low 32 bits zero, so k·LN2_HI is exact
const LN2_LO = 1.90821492927058770002e-10;
const INV_LN2 = 1.442695040888963387;
const EXP_COEFFS: number[] = []; // 1/n! for n = 13..1 (Horner order)
for (let n = 13, f = 6227020800; n >= 1; f /= n, n--) EXP_COEFFS.push(1 / f);
const POW2_NEG: Float64Array = (() => {
  // POW2_NEG[m] = 2^-m, built by exact halving down to the smallest subnormal.
  const t = new Float64Array(1080);
  let v = 1;
  for (let m = 0; m < t.length; m++, v /= 2) t[m] = v;
  return t;
})();

/** e^x for x <= 0 (or -Infinity), computed with basic IEEE operations only; bit-identical on every platform. */
export function expNonPositive(x: number): number {
  if (!(x <= 0)) {
    throw new KernelError(KernelErrorCode.InvalidArgument, `expNonPositive needs x <= 0, got ${String(x)}`);
  }
  if (x < -746) return 0; // below half the smallest subnormal
  const k = Math.floor(x * INV_LN2 + 0.5); // k <= 0
  const r = x - k * LN2_HI - k * LN2_LO;
  let p = EXP_COEFFS[0];
  for (let i = 1; i < EXP_COEFFS.length; i++) p = p * r + EXP_COEFFS[i];
  const er = 1 + r * p;
  return er * POW2_NEG[-k];
}

// ---------------------------------------------------------------------------------------------------------------
// Ordering helpers. The total order used by top-k and top-p is (scaled logit desc, token index asc).
// ---------------------------------------------------------------------------------------------------------------
const SMALL = 512;
const BUCKETS = 4096;

function sortByScore(s: Float64Array, ids: Int32Array): Int32Array {
  return Int32Array.from(ids).sort((a, b) => s[b] - s[a] || a - b);
}

/**
 * A prefix of `ids` (ascending token ids) in (s desc, index asc) order that holds at least `count` entries, or,
 * when `w` is given, whose weight reaches `mass` (with slack for summation order). s is bucketed linearly and only
 * the buckets down to the boundary are kept; ids are placed into their bucket in index order, so a bucket whose
 * scores are all equal is already ordered and only buckets with distinct scores are sorted. O(|ids|) plus the
 * sorts, instead of a full sort of |V| entries. Equal scores share a bucket, so the result is always an exact
 * prefix of the full order.
 */
function orderedPrefix(
  s: Float64Array,
  ids: Int32Array,
  count: number,
  w: Float64Array | null,
  mass: number,
): Int32Array {
  const n = ids.length;
  if (n <= SMALL) return sortByScore(s, ids);
  let hi = -Infinity;
  let lo = Infinity;
  for (let k = 0; k < n; k++) {
    const v = s[ids[k]];
    if (v > hi) hi = v;
    if (v < lo) lo = v;
  }
  const range = hi - lo;
  if (range === 0) return Int32Array.from(ids); // all scores equal: index order is the order
  if (!Number.isFinite(range)) return sortByScore(s, ids);
  const scale = (BUCKETS - 1) / range;
  const bucketOf = new Uint16Array(n);
  const counts = new Int32Array(BUCKETS + 1);
  const masses = new Float64Array(BUCKETS);
  for (let k = 0; k < n; k++) {
    const id = ids[k];
    const b = Math.min(BUCKETS - 1, Math.floor((hi - s[id]) * scale));
    bucketOf[k] = b;
    counts[b] += 1;
    if (w) masses[b] += w[id];
  }
  let boundary = BUCKETS - 1;
  let c = 0;
  let m = 0;
  for (let b = 0; b < BUCKETS; b++) {
    c += counts[b];
    m += masses[b];
    if (w ? m >= mass + 1e-9 : c >= count) {
      boundary = b;
      break;
    }
  }
  // Counting-sort placement of the kept ids into their buckets (stable, so each bucket is in index order).
  const start = new Int32Array(boundary + 2);
  for (let b = 0; b <= boundary; b++) start[b + 1] = start[b] + counts[b];
  const fill = start.slice(0, boundary + 1);
  const picked = new Int32Array(c);
  for (let k = 0; k < n; k++) {
    const b = bucketOf[k];
    if (b <= boundary) picked[fill[b]++] = ids[k];
  }
  for (let b = 0; b <= boundary; b++) {
    const seg = picked.subarray(start[b], start[b + 1]);
    if (seg.length < 2) continue;
    const first = s[seg[0]];
    let allEqual = true;
    for (let k = 1; k < seg.length && allEqual; k++) allEqual = s[seg[k]] === first;
    if (!allEqual) seg.sort((a, b2) => s[b2] - s[a] || a - b2);
  }
  return picked;
}

/** Index of the first entry of `order` at which the running sum of w reaches `target`, or -1. */
function crossing(order: Int32Array, w: Float64Array, target: number): number {
  let cum = 0;
  for (let k = 0; k < order.length; k++) {
    cum += w[order[k]];
    if (cum >= target) return k;
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Quantisation to the 2^-24 grid ("largest remainder").
// ---------------------------------------------------------------------------------------------------------------

/**
 * Writes onto `out` (zero-filled) the grid distribution ∝ e over the token ids `ids` (ascending): floor of
 * p·2^24, then the D missing units go one each to the D ids with the largest fractional remainder (ties: lower
 * index first). The remainders are bucketed so that only the boundary bucket is sorted: O(|ids|).
 *
 * Tokens with probability below 2^-24 (≈6e-8) get a unit only through their remainder, so those below ≈3e-8
 * usually round to 0. That is part of the defined processing: the AR baseline applies the same processLogits, so
 * speculative decoding stays lossless relative to it.
 */
function quantizeInto(out: Float32Array, ids: Int32Array, e: Float64Array): void {
  const n = ids.length;
  let z = 0;
  for (let k = 0; k < n; k++) z += e[ids[k]];
  if (!(z > 0) || !Number.isFinite(z)) {
    throw new KernelError(KernelErrorCode.EmptyDistribution, 'no token has positive probability');
  }
  const units = new Float64Array(n);
  const rem = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    const x = (e[ids[k]] / z) * PROB_UNITS;
    const f = Math.floor(x);
    units[k] = f;
    rem[k] = x - f;
    total += f;
  }
  let missing = PROB_UNITS - total;
  if (missing > 0) {
    // Normally missing <= n (the remainders sum to about `missing`); loop just in case rounding says otherwise.
    while (missing > 0) {
      const take = Math.min(missing, n);
      for (const k of largestRemainders(rem, take)) units[k] += 1;
      missing -= take;
    }
  } else if (missing < 0) {
    // Only reachable through float64 rounding of the e/z products: take units back from the smallest remainders.
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

/** Positions k of the `take` largest rem[k] (ties: lower k first). O(n) via a histogram of the remainders. */
function largestRemainders(rem: Float64Array, take: number): Int32Array {
  const n = rem.length;
  const result = new Int32Array(take);
  if (take === 0) return result;
  if (take === n) {
    for (let k = 0; k < n; k++) result[k] = k;
    return result;
  }
  const bucketOf = (r: number) => Math.min(BUCKETS - 1, Math.floor((1 - r) * BUCKETS)); // 0 = largest
  const counts = new Int32Array(BUCKETS);
  for (let k = 0; k < n; k++) counts[bucketOf(rem[k])]++;
  let boundary = 0;
  let above = 0; // entries in buckets strictly before the boundary
  while (above + counts[boundary] < take) above += counts[boundary++];
  const tie: number[] = [];
  let p = 0;
  for (let k = 0; k < n; k++) {
    const b = bucketOf(rem[k]);
    if (b < boundary) result[p++] = k;
    else if (b === boundary) tie.push(k);
  }
  // Equal remainders (e.g. a flat distribution) are already in index order; sort only when they differ.
  if (tie.some((k) => rem[k] !== rem[tie[0]])) tie.sort((a, b) => rem[b] - rem[a] || a - b);
  for (let t = 0; p < take; t++) result[p++] = tie[t];
  return result;
}

/**
 * Normalises non-negative weights (sum in float64, index order) and quantises them onto the 2^-24 grid with the
 * same largest-remainder rule as processLogits.
 */
export function quantizeWeights(weights: ArrayLike<number>): Float32Array {
  const n = weights.length;
  const e = new Float64Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const w = weights[i];
    if (!(w >= 0) || w === Infinity) {
      throw new KernelError(KernelErrorCode.InvalidDistribution, `weight ${i} is ${String(w)}`);
    }
    e[i] = w;
    if (w > 0) count++;
  }
  const ids = new Int32Array(count);
  for (let i = 0, p = 0; i < n; i++) if (e[i] > 0) ids[p++] = i;
  const out = new Float32Array(n);
  quantizeInto(out, ids, e);
  return out;
}

/** True when every entry is a non-negative multiple of 2^-24 and the units sum to exactly 2^24. */
export function isGridDistribution(p: ArrayLike<number>): boolean {
  let units = 0;
  for (let i = 0; i < p.length; i++) {
    const u = p[i] * PROB_UNITS;
    if (!(u >= 0) || !Number.isInteger(u)) return false;
    units += u;
  }
  return units === PROB_UNITS;
}

/** Index of the largest value (lowest index on ties); -1 if every entry is -Infinity. NaN entries are ignored. */
export function argmax(values: ArrayLike<number>): number {
  let best = -1;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] > max) {
      max = values[i];
      best = i;
    }
  }
  return best;
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
 * - −Infinity logits are masked tokens; NaN or +Infinity throw KernelError(InvalidLogits).
 */
export function processLogits(logits: ArrayLike<number>, params: SamplingParams): Float32Array {
  validateSamplingParams(params);
  const n = logits.length;
  if (n === 0) throw new KernelError(KernelErrorCode.InvalidLogits, 'logits are empty');
  let max = -Infinity;
  let arg = -1;
  for (let i = 0; i < n; i++) {
    const v = logits[i];
    if (typeof v !== 'number' || v !== v || v === Infinity) {
      throw new KernelError(KernelErrorCode.InvalidLogits, `logit ${i} is ${String(v)}`);
    }
    if (v > max) {
      max = v;
      arg = i;
    }
  }
  if (arg < 0) throw new KernelError(KernelErrorCode.InvalidLogits, 'every token is masked (-Infinity)');
  const out = new Float32Array(n);
  const { temperature, topK, topP } = params;
  if (temperature === 0) {
    out[arg] = 1;
    return out;
  }

  const s = new Float64Array(n);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const v = (logits[i] - max) / temperature;
    s[i] = v;
    if (v > -Infinity) count++;
  }
  let ids = new Int32Array(count);
  for (let i = 0, p = 0; i < n; i++) if (s[i] > -Infinity) ids[p++] = i;

  if (topK > 0 && topK < count) {
    ids = orderedPrefix(s, ids, topK, null, 0).slice(0, topK).sort();
  }

  const e = new Float64Array(n);
  for (let k = 0; k < ids.length; k++) e[ids[k]] = expNonPositive(s[ids[k]]);

  if (topP < 1 && ids.length > 1) {
    let z = 0;
    for (let k = 0; k < ids.length; k++) z += e[ids[k]];
    const w = new Float64Array(n);
    for (let k = 0; k < ids.length; k++) w[ids[k]] = e[ids[k]] / z;
    let order = orderedPrefix(s, ids, 0, w, topP);
    let cut = crossing(order, w, topP);
    if (cut < 0 && order.length < ids.length) {
      // The bucketed mass estimate was off by more than its slack: fall back to the full order.
      order = sortByScore(s, ids);
      cut = crossing(order, w, topP);
    }
    if (cut >= 0) ids = order.slice(0, cut + 1).sort();
  }

  quantizeInto(out, ids, e);
  return out;
}

/**
 * Inverse-CDF sampling: with S = Σw (float64, index order), returns the first index whose running sum exceeds
 * u·S. Zero-weight entries are never returned. Throws on negative/NaN/infinite weights, an all-zero vector or u
 * outside [0, 1).
 */
export function sampleFrom(weights: ArrayLike<number>, u: number): number {
  assertUniform(u);
  let total = 0;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    if (!(w >= 0) || w === Infinity) {
      throw new KernelError(KernelErrorCode.InvalidDistribution, `weight ${i} is ${String(w)}`);
    }
    total += w;
  }
  if (!(total > 0)) throw new KernelError(KernelErrorCode.EmptyDistribution, 'all weights are zero');
  if (total === Infinity) throw new KernelError(KernelErrorCode.InvalidDistribution, 'weights overflow');
  const threshold = u * total;
  let cum = 0;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    if (w > 0) {
      cum += w;
      if (cum > threshold) return i;
      last = i;
    }
  }
  // Unreachable in IEEE arithmetic (u < 1 gives u·S < S, and the running sum ends at exactly S); kept so a
  // positive-weight token is returned whatever happens.
  return last;
}
