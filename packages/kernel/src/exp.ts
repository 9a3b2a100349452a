/**
 * Exponentials for the probability path, using basic IEEE-754 operations only (Math.exp is implementation-defined
 * in the last bit), so every platform computes the same bits.
 *
 * expNonPositive is the defining exp of the processing: processLogits' output is a function of its bits.
 * fastExpNonPositive is a cheaper table-driven approximation of the same function; processLogits uses it only
 * where it can prove the result would not change (see process.ts), and otherwise falls back to expNonPositive.
 */
import { KernelError, KernelErrorCode } from './errors.js';

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
const [C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12] = EXP_COEFFS;
const POW2_NEG: Float64Array = (() => {
  // POW2_NEG[m] = 2^-m, built by exact halving down to the smallest subnormal.
  const t = new Float64Array(1080);
  let v = 1;
  for (let m = 0; m < t.length; m++, v /= 2) t[m] = v;
  return t;
})();

/**
 * expNonPositive without the argument check, for x <= 0 or -Infinity. The Horner steps are written out (same
 * operations in the same order as the loop they replace) so the JIT keeps them in registers.
 */
export function expExact(x: number): number {
  if (x < -746) return 0; // below half the smallest subnormal
  const k = Math.floor(x * INV_LN2 + 0.5); // k <= 0
  const r = x - k * LN2_HI - k * LN2_LO;
  let p = C0 * r + C1;
  p = p * r + C2;
  p = p * r + C3;
  p = p * r + C4;
  p = p * r + C5;
  p = p * r + C6;
  p = p * r + C7;
  p = p * r + C8;
  p = p * r + C9;
  p = p * r + C10;
  p = p * r + C11;
  p = p * r + C12;
  const er = 1 + r * p;
  return er * POW2_NEG[-k];
}

/** e^x for x <= 0 (or -Infinity), computed with basic IEEE operations only; bit-identical on every platform. */
export function expNonPositive(x: number): number {
  if (!(x <= 0)) {
    throw new KernelError(KernelErrorCode.InvalidArgument, `expNonPositive needs x <= 0, got ${String(x)}`);
  }
  return expExact(x);
}

// ---------------------------------------------------------------------------------------------------------------
// Table-driven exp: x = (k/256)·ln2 + r with |r| <= ln2/512, e^x = 2^-⌊-k/256⌋ · 2^-((-k) mod 256)/256 · e^r, e^r
// by a degree-4 Taylor polynomial (truncation < 4e-17, a fifth of an ulp). Four multiply-adds instead of thirteen. The table is
// built with expNonPositive, so it is the same on every platform too.
// ---------------------------------------------------------------------------------------------------------------
const TABLE_BITS = 8;
const TABLE_SIZE = 1 << TABLE_BITS;
const TABLE_MASK = TABLE_SIZE - 1;
const INV_STEP = TABLE_SIZE * INV_LN2;
const STEP_HI = LN2_HI / TABLE_SIZE; // still 21 significant bits: k·STEP_HI is exact for |k| < 2^32
const STEP_LO = LN2_LO / TABLE_SIZE;
const POW2_FRAC: Float64Array = (() => {
  // POW2_FRAC[j] = 2^(-j/256).
  const t = new Float64Array(TABLE_SIZE);
  for (let j = 0; j < TABLE_SIZE; j++) t[j] = expExact(-j * STEP_HI - j * STEP_LO);
  return t;
})();

/** Lower end of fastExpNonPositive's domain: results stay normal numbers, so its relative error bound holds. */
export const FAST_EXP_MIN = -600;

/**
 * |fastExpNonPositive(x) − expNonPositive(x)| <= FAST_EXP_REL_ERR · fastExpNonPositive(x) on [FAST_EXP_MIN, 0].
 * Both are within a few ulps of e^x (measured worst difference ≈ 2^-50.9 over 10^7 points; process.test.ts checks
 * 4·10^5 of them); the bound has a 7× margin over that.
 */
export const FAST_EXP_REL_ERR = 2 ** -48;

/** Approximate e^x for FAST_EXP_MIN <= x <= 0; no argument check. */
export function fastExpNonPositive(x: number): number {
  const k = Math.floor(x * INV_STEP + 0.5); // k <= 0
  const r = x - k * STEP_HI - k * STEP_LO;
  const q = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24))));
  const m = -k;
  return POW2_FRAC[m & TABLE_MASK] * q * POW2_NEG[m >> TABLE_BITS];
}
