import test from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeF16,
  encodeF16,
  float16BitsToFloat32,
  float32BitsToFloat16Bits,
  float32ToFloat16Bits,
} from '../src/index.js';
import { Rng } from './helpers.js';

/** Independent reference: the binary16 value from its fields, in float64. */
function refDecode(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 31) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * Math.pow(2, -24);
  return s * (1 + m / 1024) * Math.pow(2, e - 15);
}

// Non-negative finite halves in increasing order; index = bits (0x0000..0x7bff), plus 65536 as the virtual
// next step past the largest finite half (where RNE overflows to Inf).
const POS = Array.from({ length: 0x7c00 }, (_, h) => refDecode(h));

/** Reference encode: nearest half by exact comparison (2x against the sum of neighbours), ties to even. */
function refEncode(x: number): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (POS[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (POS[lo] === a) return sign | lo;
  const next = lo + 1 < 0x7c00 ? POS[lo + 1] : 65536;
  const twice = 2 * a;
  const mid = POS[lo] + next;
  const h = twice < mid ? lo : twice > mid ? lo + 1 : lo & 1 ? lo + 1 : lo;
  return sign | h;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function fromBits(b: number): number {
  u32[0] = b;
  return f32[0];
}

function checkEncode(bits: number): void {
  const x = fromBits(bits);
  const got = float32BitsToFloat16Bits(bits);
  const want = refEncode(x);
  if (want < 0) {
    assert.ok(Number.isNaN(float16BitsToFloat32(got)), `NaN 0x${bits.toString(16)} must stay NaN`);
  } else if (got !== want) {
    assert.fail(
      `encode 0x${bits.toString(16)} (${x}): got 0x${got.toString(16)}, want 0x${want.toString(16)}`,
    );
  }
}

test('float16 decode: all 65,536 halves match the float64 formula', () => {
  for (let h = 0; h < 65536; h++) {
    const got = float16BitsToFloat32(h);
    const want = refDecode(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `0x${h.toString(16)}`);
    else assert.ok(Object.is(got, want), `0x${h.toString(16)}: ${got} vs ${want}`);
  }
});

test('float16 encode: every half round-trips (NaN stays NaN, ±0 keep their sign)', () => {
  for (let h = 0; h < 65536; h++) {
    const x = float16BitsToFloat32(h);
    const back = float32ToFloat16Bits(x);
    if (Number.isNaN(x)) assert.ok(Number.isNaN(float16BitsToFloat32(back)));
    else assert.equal(back, h, `0x${h.toString(16)}`);
  }
});

test('float16 encode: ≥1M floats (random, subnormal, boundary, ties) match the exact nearest-even reference', () => {
  const rng = new Rng(3);
  let n = 0;
  // Midpoints between neighbouring halves (ties), and one float32 ulp either side, both signs.
  for (let h = 0; h < 0x7c00; h++) {
    const next = h + 1 < 0x7c00 ? POS[h + 1] : 65536;
    f32[0] = (POS[h] + next) / 2;
    const m = u32[0];
    for (const b of [m - 1, m, m + 1]) {
      checkEncode(b);
      checkEncode((b | 0x80000000) >>> 0);
      n += 2;
    }
  }
  // Random bit patterns over the whole float32 space (NaN, Inf, float32 subnormals included).
  for (let i = 0; i < 320_000; i++, n++) checkEncode(rng.u32());
  // Random floats with exponents around the half range: half subnormals (2^-25..2^-14), normals, overflow.
  for (let i = 0; i < 520_000; i++, n++) {
    const e = 95 + rng.int(55);
    checkEncode((((rng.u32() & 1) << 31) | (e << 23) | (rng.u32() & 0x7fffff)) >>> 0);
  }
  // Boundaries: zero, min/max subnormal and normal, max half, overflow threshold, Inf, NaN, float32 extremes.
  for (const x of [
    0,
    -0,
    2 ** -25,
    2 ** -24,
    2 ** -14,
    65504,
    65519.996,
    65520,
    65536,
    Infinity,
    -Infinity,
    NaN,
  ]) {
    f32[0] = x;
    checkEncode(u32[0]);
    n++;
  }
  for (const b of [1, 0x007fffff, 0x00800000, 0x7f7fffff, 0x33000000, 0x33000001, 0x387fe000, 0x387ff000]) {
    checkEncode(b);
    n++;
  }
  assert.ok(n >= 1_000_000, `checked ${n}`);
  // Spot checks that do not depend on the reference.
  assert.equal(float32ToFloat16Bits(65519), 0x7bff);
  assert.equal(float32ToFloat16Bits(65520), 0x7c00);
  assert.equal(float32ToFloat16Bits(2 ** -25), 0); // tie between 0 and 2^-24 → even (0)
  assert.equal(float32ToFloat16Bits(1.5 * 2 ** -24), 2); // tie between 1 and 2 ulps → even (2)
  assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00); // tie → even mantissa 0
  assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even mantissa 2
  assert.equal(float32ToFloat16Bits(-0), 0x8000);
});

test('encodeF16/decodeF16 bulk helpers agree with the scalar conversions on any bit pattern', () => {
  const rng = new Rng(4);
  const n = 200_000;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = i < 65536 ? (i << 16) | (i & 0xffff) : rng.u32();
  const src = new Float32Array(bits.buffer);
  const h = new Uint16Array(n);
  encodeF16(src, h);
  const back = new Float32Array(n);
  decodeF16(h, back);
  for (let i = 0; i < n; i++) {
    const want = float32BitsToFloat16Bits(bits[i]);
    if (h[i] !== want)
      assert.fail(
        `bulk encode of 0x${bits[i].toString(16)}: 0x${h[i].toString(16)} vs 0x${want.toString(16)}`,
      );
    const x = float16BitsToFloat32(h[i]);
    if (!Object.is(back[i], x) && !(Number.isNaN(x) && Number.isNaN(back[i])))
      assert.fail(`bulk decode of ${h[i]}`);
  }
});
