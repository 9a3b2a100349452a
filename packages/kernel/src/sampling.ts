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
 * workers. The processing itself is in process.ts, the exps in exp.ts.
 */
import { KernelError, KernelErrorCode } from './errors.js';
import { PROB_UNITS, quantizeSupport } from './process.js';

export { expNonPositive } from './exp.js';
export { PROB_UNIT, PROB_UNITS, processLogits, validateSamplingParams } from './process.js';
export type { ProcessOptions, SamplingParams } from './process.js';

/** Throws KernelError(InvalidUniform) unless u is a number in [0, 1). */
export function assertUniform(u: number, what = 'uniform'): void {
  if (typeof u !== 'number' || !(u >= 0 && u < 1)) {
    throw new KernelError(KernelErrorCode.InvalidUniform, `${what} must be in [0, 1), got ${String(u)}`);
  }
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
  const w = new Float64Array(count);
  for (let i = 0, p = 0; i < n; i++) {
    if (e[i] > 0) {
      ids[p] = i;
      w[p++] = e[i];
    }
  }
  const out = new Float32Array(n);
  quantizeSupport(out, ids, w);
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
 * Inverse-CDF sampling: with S = Σw (float64, index order), returns the first index whose running sum exceeds
 * u·S. Zero-weight entries are never returned. Throws on negative/NaN/infinite weights, an all-zero vector or u
 * outside [0, 1).
 */
export function sampleFrom(weights: ArrayLike<number>, u: number): number {
  assertUniform(u);
  const total = checkedTotal(weights, 'weight');
  if (!(total > 0)) throw new KernelError(KernelErrorCode.EmptyDistribution, 'all weights are zero');
  if (total === Infinity) throw new KernelError(KernelErrorCode.InvalidDistribution, 'weights overflow');
  return firstAbove(weights, u * total);
}

// The two loops of sampleFrom are functions of their own: V8 optimises a long loop on-stack, and code after it
// that has not run yet would deoptimise the whole function on every call.

/** Σ weights in index order; throws InvalidDistribution on a negative, NaN or infinite entry. */
export function checkedTotal(weights: ArrayLike<number>, what: string): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    if (!(w >= 0) || w === Infinity) {
      throw new KernelError(KernelErrorCode.InvalidDistribution, `${what} ${i} is ${String(w)}`);
    }
    total += w;
  }
  return total;
}

/** The first index whose running sum of the positive weights exceeds `threshold` (else the last positive one). */
function firstAbove(weights: ArrayLike<number>, threshold: number): number {
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
