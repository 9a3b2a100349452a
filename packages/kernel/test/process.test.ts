import test from 'node:test';
import assert from 'node:assert/strict';
import { KernelError, KernelErrorCode, PROB_UNITS, isGridDistribution, processLogits } from '../src/index.js';
import type { SamplingParams } from '../src/index.js';
import { gaussian, mulberry32 } from './helpers.js';
import { referenceProcessLogits } from './reference-sampling.js';
import { NODE_DIGEST, processDigest } from './digest.js';

const isCode = (code: KernelErrorCode) => (e: unknown) => e instanceof KernelError && e.code === code;

/** Bitwise equality of two float32 vectors, reporting the first difference. */
function assertSameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, what);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i])
      assert.fail(`${what}: token ${i}: ${a[i] * PROB_UNITS} vs ${b[i] * PROB_UNITS} units`);
  }
}

/** Zipf-like logits −a·ln(rank) with a random rank→id permutation and a little noise. */
function zipfLogits(n: number, a: number, rand: () => number): Float32Array {
  const perm = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const l = new Float32Array(n);
  for (let r = 0; r < n; r++) l[perm[r]] = -a * Math.log(r + 1) + 0.3 * gaussian(rand);
  return l;
}

function gaussianLogits(n: number, rand: () => number, spread: number, ties: boolean, masked: number) {
  const l = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = spread * gaussian(rand);
    if (ties) v = Math.round(v * 2) / 2;
    if (masked > 0 && rand() < masked) v = -Infinity;
    l[i] = v;
  }
  if (l.every((v) => v === -Infinity)) l[0] = 0;
  return l;
}

const PARAMS: SamplingParams[] = [
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 1, topK: 50, topP: 1 },
  { temperature: 1, topK: 0, topP: 0.9 },
  { temperature: 0.7, topK: 0, topP: 0.95 },
  { temperature: 1.3, topK: 40, topP: 0.8 },
  { temperature: 1, topK: 1, topP: 1 },
  { temperature: 1, topK: 0, topP: 1e-9 },
  { temperature: 0.05, topK: 0, topP: 1 },
  { temperature: 1e-4, topK: 0, topP: 0.9 },
  { temperature: 50, topK: 0, topP: 0.999 },
  { temperature: 1e6, topK: 0, topP: 1 },
  { temperature: 1, topK: 6000, topP: 1 }, // large top-k: the dense path on a truncated support
  { temperature: 0.9, topK: 6000, topP: 0.97 },
  { temperature: 0, topK: 0, topP: 1 },
];

test('processLogits is bit-identical to the original implementation on random inputs', () => {
  const rand = mulberry32(20261129);
  let cases = 0;
  for (const n of [1, 2, 3, 17, 600, 5000, 9000]) {
    for (let rep = 0; rep < 6; rep++) {
      const kind = rep % 3;
      const logits =
        kind === 0
          ? zipfLogits(n, 1 + 2 * rand(), rand)
          : gaussianLogits(n, rand, [0.5, 3, 12][rep % 3], kind === 2, rep % 2 ? 0.2 : 0);
      for (const p of PARAMS) {
        assertSameBits(
          processLogits(logits, p),
          referenceProcessLogits(logits, p),
          `n=${n} ${JSON.stringify(p)}`,
        );
        cases++;
      }
    }
  }
  assert.ok(cases > 500);
});

test('bit-identical at |V| = 151,936 (Zipf-like and Gaussian logits, ties, masks, extreme temperatures)', () => {
  const rand = mulberry32(7);
  const n = 151_936;
  const inputs = [
    zipfLogits(n, 1, rand),
    zipfLogits(n, 2.2, rand),
    gaussianLogits(n, rand, 2.5, false, 0),
    gaussianLogits(n, rand, 3, true, 0.3),
  ];
  for (const logits of inputs) {
    for (const p of PARAMS) {
      assertSameBits(processLogits(logits, p), referenceProcessLogits(logits, p), JSON.stringify(p));
    }
  }
});

test('bits do not depend on the calls before (the dense and top-p paths adapt to the stream)', () => {
  // The untruncated path collects remainders above a threshold set by the last boundary, during the exp pass,
  // using half the last normaliser as a bound of this one; top-p collects candidates above a score set by the last
  // crossing. A peaked stream moves them up; a flat one then has its boundary or crossing below them (and a
  // normaliser far above the guess, then far below), so the full-scan branches run; alternating them exercises
  // every branch and the switches between them.
  const rand = mulberry32(11);
  const n = 151_936;
  const peaked = zipfLogits(n, 2.5, rand);
  const flat = gaussianLogits(n, rand, 0.05, false, 0);
  const mid = gaussianLogits(n, rand, 3, false, 0.1);
  for (const p of [
    { temperature: 1, topK: 0, topP: 1 },
    { temperature: 1, topK: 0, topP: 0.9 },
    { temperature: 0.7, topK: 0, topP: 0.5 },
  ]) {
    const want = [peaked, flat, mid].map((l) => referenceProcessLogits(l, p));
    for (const order of [
      [0, 1, 0, 2, 1, 1, 0],
      [1, 2, 0, 0, 1, 2],
    ]) {
      for (const k of order) {
        assertSameBits(processLogits([peaked, flat, mid][k], p), want[k], `input ${k} ${JSON.stringify(p)}`);
      }
    }
  }
});

test('degenerate inputs: all-equal logits, two levels, one survivor, float64 and plain-array input', () => {
  const n = 7000;
  const flat = new Float32Array(n);
  const twoLevels = Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 1 : -2));
  const oneLeft = Float32Array.from({ length: n }, (_, i) => (i === 4321 ? 0.5 : -Infinity));
  const wide = Float64Array.from({ length: n }, (_, i) => (i % 2 ? -1e300 : 1e300 * ((i % 5) / 5)));
  const plain = Array.from({ length: 3000 }, (_, i) => Math.sin(i) * 4);
  for (const logits of [flat, twoLevels, oneLeft, wide, plain]) {
    for (const p of [
      ...PARAMS,
      { temperature: 1, topK: 0, topP: 0.5 },
      { temperature: 1, topK: 4999, topP: 1 },
      { temperature: 1, topK: 5000, topP: 0.3 },
    ]) {
      const got = processLogits(logits, p);
      assert.ok(isGridDistribution(got));
      assertSameBits(got, referenceProcessLogits(logits, p), JSON.stringify(p));
    }
  }
});

test('every call returns a fresh array the caller owns; `out` is written in full and checked', () => {
  const rand = mulberry32(11);
  const a = zipfLogits(20_000, 1.2, rand);
  const b = zipfLogits(20_000, 1.2, rand);
  const p = { temperature: 1, topK: 0, topP: 1 };
  const qa = processLogits(a, p);
  const snapshot = qa.slice();
  const qb = processLogits(b, p);
  assert.notEqual(qa.buffer, qb.buffer);
  assertSameBits(qa, snapshot, 'a kept distribution is not touched by a later call');
  // A caller buffer with stale contents is overwritten everywhere (also on the sparse top-k path).
  for (const params of [p, { temperature: 1, topK: 5, topP: 1 }, { temperature: 0, topK: 0, topP: 1 }]) {
    const out = new Float32Array(20_000).fill(0.5);
    assert.equal(processLogits(b, params, { out }), out);
    assertSameBits(out, referenceProcessLogits(b, params), JSON.stringify(params));
  }
  assert.throws(
    () => processLogits(a, p, { out: new Float32Array(10) }),
    isCode(KernelErrorCode.InvalidArgument),
  );
  assert.throws(() => processLogits(a, p, { out: a }), isCode(KernelErrorCode.InvalidArgument));
  const shared = new Float32Array(40_000);
  assert.throws(
    () => processLogits(shared.subarray(0, 20_000), p, { out: shared.subarray(20_000) }),
    isCode(KernelErrorCode.InvalidArgument),
  );
});

test('the cross-platform digest matches the reference implementation and the pinned value', () => {
  const digest = processDigest();
  assert.equal(digest, processDigest(referenceProcessLogits));
  // If this changes, processLogits' output changed: a protocol-visible change (bump the wire version).
  assert.equal(digest, NODE_DIGEST);
});
