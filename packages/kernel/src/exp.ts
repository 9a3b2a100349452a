/**
 * The exponential of the probability path, using basic IEEE-754 operations only (Math.exp is implementation-defined
 * in the last bit), so every platform computes the same bits.
 *
 * expNonPositive is the defining exp of the processing: processLogits' output is a function of its bits. It is
 * table-driven (one table lookup pair and three multiply-adds) because processLogits evaluates it |V| times per
 * distribution; its table is built once with a longer series (taylorExp), also from basic operations only.
 */
import { KernelError, KernelErrorCode } from './errors.js';

// ---------------------------------------------------------------------------------------------------------------
// Table construction: Cody–Waite reduction x = k·ln2 + r, Taylor series for e^r on |r| <= ln2/2 (truncation error
// < 1e-17), scale by an exact power of two.
// ---------------------------------------------------------------------------------------------------------------
const LN2_HI = 6.9314718036912381649e-1; // ln2 with the low 32 bits zero, so k·LN2_HI is exact
const LN2_LO = 1.90821492927058770002e-10;
const INV_LN2 = 1.442695040888963387;
const POW2_NEG: Float64Array = (() => {
  // POW2_NEG[m] = 2^-m, built by exact halving down to the smallest subnormal.
  const t = new Float64Array(1080);
  let v = 1;
  for (let m = 0; m < t.length; m++, v /= 2) t[m] = v;
  return t;
})();

function taylorExp(x: number): number {
  const k = Math.floor(x * INV_LN2 + 0.5); // k <= 0
  const r = x - k * LN2_HI - k * LN2_LO;
  let p = 0;
  for (let n = 13; n >= 1; n--) p = (p + 1) * (r / n);
  return (1 + p) * POW2_NEG[-k];
}

// ---------------------------------------------------------------------------------------------------------------
// The defining exp: x = (k/2048)·ln2 + r with |r| <= ln2/4096, e^x = 2^-⌊-k/2048⌋ · 2^-((-k) mod 2048)/2048 · e^r,
// e^r by a degree-3 Taylor polynomial (truncation < 3.5e-17, a sixth of an ulp). A few ulps from e^x (relative) for
// normal results (sampling.test.ts measures it against Math.exp). The table is 16 KiB: it stays in L1.
// ---------------------------------------------------------------------------------------------------------------
const TABLE_BITS = 11;
const TABLE_SIZE = 1 << TABLE_BITS;
const TABLE_MASK = TABLE_SIZE - 1;
const INV_STEP = TABLE_SIZE * INV_LN2;
const STEP_HI = LN2_HI / TABLE_SIZE; // still 21 significant bits: k·STEP_HI is exact for |k| < 2^32
const STEP_LO = LN2_LO / TABLE_SIZE;
const POW2_FRAC: Float64Array = (() => {
  // POW2_FRAC[j] = 2^(-j/2048).
  const t = new Float64Array(TABLE_SIZE);
  for (let j = 0; j < TABLE_SIZE; j++) t[j] = taylorExp(-j * STEP_HI - j * STEP_LO);
  return t;
})();

/** Below this, expNonPositive is 0 (e^x is under half the smallest subnormal). */
export const EXP_MIN = -746;

/** expNonPositive without the argument check: x <= 0 or -Infinity (then 0). */
export function expKernel(x: number): number {
  return x < EXP_MIN ? 0 : expInRange(x);
}

/** expNonPositive for EXP_MIN <= x <= 0, no check at all (hot loops that have checked the range already). */
export function expInRange(x: number): number {
  const k = Math.floor(x * INV_STEP + 0.5); // k <= 0
  const r = x - k * STEP_HI - k * STEP_LO;
  const q = 1 + r * (1 + r * (0.5 + r * (1 / 6)));
  const m = -k;
  return POW2_FRAC[m & TABLE_MASK] * q * POW2_NEG[m >> TABLE_BITS];
}

/** e^x for x <= 0 (or -Infinity), computed with basic IEEE operations only; bit-identical on every platform. */
export function expNonPositive(x: number): number {
  if (!(x <= 0)) {
    throw new KernelError(KernelErrorCode.InvalidArgument, `expNonPositive needs x <= 0, got ${String(x)}`);
  }
  return expKernel(x);
}
