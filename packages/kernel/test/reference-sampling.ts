/**
 * The processLogits implementation as it stood before the real-scale rewrite (commit e076bf7), kept as the
 * reference the fast implementation must match bit for bit. Test-only: never imported by src. Changed since:
 * x = e·(2^24/z) (a multiplication; was (e/z)·2^24), and expNonPositive is table-driven (the processing's
 * defining exp since the kernel issue's second round).
 */
import {
  KernelError,
  KernelErrorCode,
  PROB_UNIT,
  PROB_UNITS,
  expNonPositive,
  validateSamplingParams,
} from '../src/index.js';
import type { SamplingParams } from '../src/index.js';

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
  const scale = PROB_UNITS / z;
  let total = 0;
  for (let k = 0; k < n; k++) {
    const x = e[ids[k]] * scale;
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
export function referenceProcessLogits(logits: ArrayLike<number>, params: SamplingParams): Float32Array {
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
