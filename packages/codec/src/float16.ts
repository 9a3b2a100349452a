import { fail } from './errors.js';

/**
 * IEEE 754 binary16 conversion. Encoding rounds to nearest, ties to even, handles subnormals and overflows to
 * ±Inf; decoding is a lookup in a 65,536-entry table built on first use (256 KiB, so importing stays cheap).
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

let decodeTable: Float32Array | null = null;

/** The float32 value of every half, indexed by its bits. */
export function float16Table(): Float32Array {
  if (decodeTable) return decodeTable;
  const t = new Float32Array(65536);
  const bits = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0x1f) {
      bits[h] = sign | 0x7f800000 | (m << 13); // Inf, or NaN keeping its payload
    } else if (e !== 0) {
      bits[h] = sign | ((e + 112) << 23) | (m << 13);
    } else {
      t[h] = (sign ? -m : m) * 2 ** -24; // zero or subnormal: exact in float32
    }
  }
  decodeTable = t;
  return t;
}

// Encode tables indexed by the float32 exponent: the significand (with its implicit bit, or the rebiased
// exponent for normal halves) is shifted so one half ulp is its unit, and a branch-free round-half-to-even
// adds BIAS plus the kept LSB. Branch-free matters: real distributions mix normal, subnormal and zero halves.
const SHIFT = new Int32Array(256);
const HI = new Int32Array(256);
const MMASK = new Int32Array(256);
const BIAS = new Int32Array(256);
for (let e = 0; e < 256; e++) {
  if (e >= 143) {
    // ≥ 65536 (and Inf): pin to the Inf pattern; NaN is handled separately.
    SHIFT[e] = 13;
    HI[e] = 31 << 23;
  } else if (e >= 113) {
    // Normal half: rebias the exponent in place; a mantissa carry correctly bumps it (65520 → Inf).
    SHIFT[e] = 13;
    HI[e] = (e - 112) << 23;
    MMASK[e] = 0x7fffff;
  } else {
    // Subnormal half or zero: unit 2^-24; shifts ≥ 25 always give 0 (capped at 31 for JS shift semantics).
    SHIFT[e] = Math.min(126 - e, 31);
    HI[e] = 0x800000;
    MMASK[e] = 0x7fffff;
  }
  BIAS[e] = (1 << (SHIFT[e] - 1)) - 1;
}

/** Half bits for a float32 bit pattern given as a uint32 (round to nearest, ties to even; NaN → quiet NaN). */
export function float32BitsToFloat16Bits(x: number): number {
  const e = (x >>> 23) & 0xff;
  const s = SHIFT[e];
  const v = (x & MMASK[e]) | HI[e];
  let h = (v + BIAS[e] + ((v >>> s) & 1)) >>> s;
  if ((x & 0x7fffffff) > 0x7f800000) h = 0x7e00;
  return h | ((x >>> 16) & 0x8000);
}

/** Half bits (0..65535) nearest to `x` after rounding it to float32. */
export function float32ToFloat16Bits(x: number): number {
  scratchF32[0] = x;
  return float32BitsToFloat16Bits(scratchU32[0]);
}

/** The value of a half given by its bits. */
export function float16BitsToFloat32(h: number): number {
  return float16Table()[h & 0xffff];
}

/** Encodes `src` into half bits in `dst` (same length, or dst longer). */
export function encodeF16(src: Float32Array, dst: Uint16Array): void {
  const n = src.length;
  if (dst.length < n) fail('BadArgument', 'encodeF16: destination shorter than source');
  const u = new Uint32Array(src.buffer, src.byteOffset, n);
  const S = SHIFT;
  const H = HI;
  const M = MMASK;
  const B = BIAS;
  // float32BitsToFloat16Bits inlined by hand: measurably faster in V8 for the bulk path.
  for (let i = 0; i < n; i++) {
    const x = u[i];
    const e = (x >>> 23) & 0xff;
    const s = S[e];
    const v = (x & M[e]) | H[e];
    let h = (v + B[e] + ((v >>> s) & 1)) >>> s;
    if ((x & 0x7fffffff) > 0x7f800000) h = 0x7e00;
    dst[i] = h | ((x >>> 16) & 0x8000);
  }
}

/** Decodes half bits in `src` into `dst` (same length, or dst longer). */
export function decodeF16(src: Uint16Array, dst: Float32Array): void {
  const n = src.length;
  if (dst.length < n) fail('BadArgument', 'decodeF16: destination shorter than source');
  const t = float16Table();
  for (let i = 0; i < n; i++) dst[i] = t[src[i]];
}
