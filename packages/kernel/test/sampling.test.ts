import test from 'node:test';
import assert from 'node:assert/strict';
import {
  KernelError,
  KernelErrorCode,
  PROB_UNITS,
  argmax,
  expNonPositive,
  isGridDistribution,
  processLogits,
  quantizeWeights,
  sampleFrom,
  validateSamplingParams,
} from '../src/index.js';
import type { SamplingParams } from '../src/index.js';
import { gaussian, mulberry32 } from './helpers.js';

const isCode = (code: KernelErrorCode) => (e: unknown) => e instanceof KernelError && e.code === code;
const units = (p: Float32Array) => Array.from(p, (x) => x * PROB_UNITS);
const T1: SamplingParams = { temperature: 1, topK: 0, topP: 1 };

/**
 * Straightforward reference of the documented processing: full sorts everywhere. processLogits must agree with it
 * bit for bit, which checks the bucketed partial selection and the O(|V|) largest-remainder step.
 */
function referenceProcess(logits: ArrayLike<number>, params: SamplingParams): Float32Array {
  const n = logits.length;
  const out = new Float32Array(n);
  let max = -Infinity;
  let arg = -1;
  for (let i = 0; i < n; i++) {
    if (logits[i] > max) {
      max = logits[i];
      arg = i;
    }
  }
  if (params.temperature === 0) {
    out[arg] = 1;
    return out;
  }
  const s = Array.from(logits, (l) => (l - max) / params.temperature);
  let keep = s.map((_, i) => i).filter((i) => s[i] > -Infinity);
  const order = (ids: number[]) => [...ids].sort((a, b) => s[b] - s[a] || a - b);
  if (params.topK > 0 && params.topK < keep.length) keep = order(keep).slice(0, params.topK);
  keep.sort((a, b) => a - b);
  const e = new Float64Array(n);
  for (const i of keep) e[i] = expNonPositive(s[i]);
  if (params.topP < 1 && keep.length > 1) {
    let z = 0;
    for (const i of keep) z += e[i];
    const sorted = order(keep);
    let cum = 0;
    let cut = sorted.length - 1;
    for (let k = 0; k < sorted.length; k++) {
      cum += e[sorted[k]] / z;
      if (cum >= params.topP) {
        cut = k;
        break;
      }
    }
    keep = sorted.slice(0, cut + 1).sort((a, b) => a - b);
  }
  let z = 0;
  for (const i of keep) z += e[i];
  const u = new Map<number, number>();
  const rem = new Map<number, number>();
  let total = 0;
  for (const i of keep) {
    const x = (e[i] / z) * PROB_UNITS;
    u.set(i, Math.floor(x));
    rem.set(i, x - Math.floor(x));
    total += Math.floor(x);
  }
  const missing = PROB_UNITS - total;
  assert.ok(missing >= 0 && missing <= keep.length, `reference: missing = ${missing}`);
  const byRem = [...keep].sort((a, b) => (rem.get(b) as number) - (rem.get(a) as number) || a - b);
  for (let k = 0; k < missing; k++) u.set(byRem[k], (u.get(byRem[k]) as number) + 1);
  for (const i of keep) out[i] = (u.get(i) as number) / PROB_UNITS;
  return out;
}

function randomLogits(
  n: number,
  seed: number,
  opts: { spread?: number; ties?: boolean; masked?: number } = {},
) {
  const rand = mulberry32(seed);
  const l = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = (opts.spread ?? 3) * gaussian(rand);
    if (opts.ties) v = Math.round(v * 2) / 2;
    if (opts.masked && rand() < opts.masked) v = -Infinity;
    l[i] = v;
  }
  return l;
}

test('processLogits output is on the 2^-24 grid and sums to exactly 1', () => {
  const params: SamplingParams[] = [
    T1,
    { temperature: 0.7, topK: 5, topP: 1 },
    { temperature: 1.3, topK: 0, topP: 0.8 },
    { temperature: 0.5, topK: 40, topP: 0.95 },
    { temperature: 0, topK: 0, topP: 1 },
  ];
  for (let seed = 0; seed < 20; seed++) {
    for (const p of params) {
      const out = processLogits(randomLogits(100 + seed * 37, seed, { masked: 0.1 }), p);
      let sum = 0;
      for (const x of out) {
        assert.ok(Number.isInteger(x * PROB_UNITS) && x >= 0);
        sum += x * PROB_UNITS;
      }
      assert.equal(sum, PROB_UNITS);
      assert.ok(isGridDistribution(out));
    }
  }
});

test('processLogits agrees bit for bit with a full-sort reference (sizes across the bucketing paths)', () => {
  const params: SamplingParams[] = [
    T1,
    { temperature: 0.8, topK: 7, topP: 1 },
    { temperature: 0.8, topK: 700, topP: 1 },
    { temperature: 1.1, topK: 0, topP: 0.9 },
    { temperature: 0.6, topK: 0, topP: 0.3 },
    { temperature: 1, topK: 900, topP: 0.97 },
    { temperature: 2.5, topK: 0, topP: 0.999 },
  ];
  const inputs: Array<[number, number, Parameters<typeof randomLogits>[2]]> = [
    [40, 1, {}],
    [511, 2, { ties: true }],
    [3000, 3, {}],
    [3000, 4, { ties: true, masked: 0.2 }],
    [20000, 5, { spread: 6 }],
  ];
  const logitSets = inputs.map(([n, seed, opts]) => randomLogits(n, seed, opts));
  // Degenerate ties: a flat vocabulary and a few repeated values (whole buckets of equal scores/remainders).
  logitSets.push(
    new Float32Array(5000),
    Float32Array.from({ length: 5000 }, (_, i) => (i % 7) * 0.5),
  );
  for (const logits of logitSets) {
    const n = logits.length;
    for (const p of params) {
      assert.deepEqual(processLogits(logits, p), referenceProcess(logits, p), `n=${n} ${JSON.stringify(p)}`);
    }
  }
});

test('a 152k-entry vocabulary is processed in O(|V|) and matches the reference', () => {
  const logits = randomLogits(151_936, 99, { spread: 2.5 });
  for (const p of [
    { temperature: 0.7, topK: 0, topP: 0.9 },
    { temperature: 1, topK: 50, topP: 1 },
  ]) {
    const out = processLogits(logits, p);
    assert.ok(isGridDistribution(out));
    assert.deepEqual(out, referenceProcess(logits, p));
  }
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) processLogits(logits, { temperature: 0.8, topK: 0, topP: 0.95 });
  const ms = (performance.now() - t0) / 5;
  console.log(`processLogits |V|=151936 temperature+top-p: ${ms.toFixed(1)} ms per call`);
});

test('temperature scales log-odds; greedy is one-hot at the lowest argmax', () => {
  const l = [0, Math.log(2), -1, -Infinity];
  for (const T of [0.5, 1, 3]) {
    const p = processLogits(l, { temperature: T, topK: 0, topP: 1 });
    assert.ok(Math.abs(p[1] / p[0] - 2 ** (1 / T)) < 1e-5, `T=${T}`);
    assert.equal(p[3], 0);
  }
  assert.deepEqual(
    Array.from(processLogits([1, 5, 5, -Infinity], { temperature: 0, topK: 0, topP: 1 })),
    [0, 1, 0, 0],
  );
  assert.deepEqual(
    Array.from(processLogits([-Infinity, -Infinity, 2], { temperature: 0, topK: 3, topP: 0.1 })),
    [0, 0, 1],
  );
  assert.equal(argmax([1, 5, 5]), 1);
  assert.equal(argmax([-Infinity]), -1);
});

test('top-k keeps exactly k tokens, ties broken by lower index', () => {
  assert.deepEqual(units(processLogits([1, 3, 3, 2], { temperature: 1, topK: 2, topP: 1 })), [
    0,
    2 ** 23,
    2 ** 23,
    0,
  ]);
  assert.deepEqual(units(processLogits([3, 1, 3, 3], { temperature: 1, topK: 2, topP: 1 })), [
    2 ** 23,
    0,
    2 ** 23,
    0,
  ]);
  assert.deepEqual(units(processLogits([0, 7, 0], { temperature: 1, topK: 1, topP: 1 })), [0, PROB_UNITS, 0]);
  // k >= number of unmasked tokens: off.
  const all = processLogits([0, 1, -Infinity], { temperature: 1, topK: 5, topP: 1 });
  assert.deepEqual(all, processLogits([0, 1, -Infinity], T1));
});

test('top-p keeps the smallest sorted prefix reaching topP, ties by lower index, at least one token', () => {
  const flat = [0, 0, 0, 0]; // p = 1/4 each, exact
  const kept = (topP: number, l: number[] = flat) =>
    Array.from(processLogits(l, { temperature: 1, topK: 0, topP }), (x) => (x > 0 ? 1 : 0));
  assert.deepEqual(kept(0.25), [1, 0, 0, 0]);
  assert.deepEqual(kept(0.3), [1, 1, 0, 0]);
  assert.deepEqual(kept(0.5), [1, 1, 0, 0]);
  assert.deepEqual(kept(0.51), [1, 1, 1, 0]);
  assert.deepEqual(kept(1), [1, 1, 1, 1]);
  const l = [Math.log(0.2), Math.log(0.5), Math.log(0.3)];
  assert.deepEqual(kept(0.45, l), [0, 1, 0]);
  assert.deepEqual(kept(0.75, l), [0, 1, 1]);
  assert.deepEqual(kept(0.85, l), [1, 1, 1]);
  assert.deepEqual(kept(1e-9, l), [0, 1, 0]);
  // top-p applies to the renormalised top-k survivors.
  assert.equal(kept(0.5, [0, 0, 0, 0, 0, 0]).filter((x) => x === 1).length, 3);
  assert.deepEqual(
    Array.from(processLogits([0, 0, 0, 0, 0, 0], { temperature: 1, topK: 2, topP: 0.5 }), (x) =>
      x > 0 ? 1 : 0,
    ),
    [1, 0, 0, 0, 0, 0],
  );
});

test('largest-remainder quantisation gives the missing units to the largest remainders, lower index first', () => {
  // 2^24 / 3 = 5592405.33…: one missing unit, three equal remainders → index 0 gets it.
  assert.deepEqual(units(processLogits([0, 0, 0], T1)), [5592406, 5592405, 5592405]);
  assert.deepEqual(units(quantizeWeights([1, 1, 1])), [5592406, 5592405, 5592405]);
  // Weights 1:2 → 5592405.33 and 11184810.67: the larger remainder (index 1) gets the unit.
  assert.deepEqual(units(quantizeWeights([1, 2])), [5592405, 11184811]);
  // A token far below 2^-24 rounds to 0; that is part of the defined processing.
  const tiny = processLogits([0, -30], T1);
  assert.deepEqual(units(tiny), [PROB_UNITS, 0]);
  assert.throws(() => quantizeWeights([0, 0]), isCode(KernelErrorCode.EmptyDistribution));
  assert.throws(() => quantizeWeights([1, -1]), isCode(KernelErrorCode.InvalidDistribution));
});

test('expNonPositive is within 5 ulps of Math.exp (normal results) and exact at 0', () => {
  const rand = mulberry32(5);
  let worst = 0;
  for (let i = 0; i < 200_000; i++) {
    const x = -rand() * [0.01, 1, 30, 708][i % 4];
    const a = expNonPositive(x);
    const b = Math.exp(x);
    worst = Math.max(worst, Math.abs(a - b) / b);
  }
  assert.ok(worst < 5 * 2 ** -52, `worst relative error ${worst}`);
  // Subnormal results lose relative precision but stay within one subnormal step of e^x.
  for (let x = -708; x > -745; x -= 0.37) assert.ok(Math.abs(expNonPositive(x) - Math.exp(x)) <= 2 ** -1074);
  assert.equal(expNonPositive(0), 1);
  assert.equal(expNonPositive(-Infinity), 0);
  assert.equal(expNonPositive(-800), 0);
  assert.throws(() => expNonPositive(1), isCode(KernelErrorCode.InvalidArgument));
});

test('invalid logits and sampling params throw typed errors', () => {
  const bad = isCode(KernelErrorCode.InvalidLogits);
  assert.throws(() => processLogits([], T1), bad);
  assert.throws(() => processLogits([0, NaN], T1), bad);
  assert.throws(() => processLogits([0, Infinity], T1), bad);
  assert.throws(() => processLogits([-Infinity, -Infinity], T1), bad);
  const badParams = isCode(KernelErrorCode.InvalidSamplingParams);
  for (const p of [
    { temperature: -1, topK: 0, topP: 1 },
    { temperature: NaN, topK: 0, topP: 1 },
    { temperature: Infinity, topK: 0, topP: 1 },
    { temperature: 1, topK: -1, topP: 1 },
    { temperature: 1, topK: 1.5, topP: 1 },
    { temperature: 1, topK: 0, topP: 0 },
    { temperature: 1, topK: 0, topP: 1.01 },
    { temperature: 1, topK: 0, topP: NaN },
  ]) {
    assert.throws(() => validateSamplingParams(p), badParams, JSON.stringify(p));
    assert.throws(() => processLogits([0, 1], p), badParams);
  }
  assert.throws(() => validateSamplingParams(null as unknown as SamplingParams), badParams);
});

test('sampleFrom: inverse CDF in index order, zero weights never returned', () => {
  const w = [0, 1, 0, 1, 0];
  assert.equal(sampleFrom(w, 0), 1);
  assert.equal(sampleFrom(w, 0.4999999), 1);
  assert.equal(sampleFrom(w, 0.5), 3);
  assert.equal(sampleFrom(w, 1 - 2 ** -53), 3);
  // The largest u returns the last positive-weight token.
  assert.equal(sampleFrom([1, 2, 0], 1 - 2 ** -53), 1);
  for (let k = 0; k < 1000; k++) {
    const u = k / 1000;
    assert.notEqual(w[sampleFrom(w, u)], 0);
  }
  assert.equal(sampleFrom(new Float32Array([0.25, 0.75]), 0.25), 1);
  assert.equal(sampleFrom(new Float32Array([0.25, 0.75]), 0.2499), 0);
  assert.throws(() => sampleFrom([0, 0], 0.5), isCode(KernelErrorCode.EmptyDistribution));
  assert.throws(() => sampleFrom([1, -0.5], 0.5), isCode(KernelErrorCode.InvalidDistribution));
  assert.throws(() => sampleFrom([1, NaN], 0.5), isCode(KernelErrorCode.InvalidDistribution));
  assert.throws(() => sampleFrom([1, Infinity], 0.5), isCode(KernelErrorCode.InvalidDistribution));
  assert.throws(() => sampleFrom([1], 1), isCode(KernelErrorCode.InvalidUniform));
  assert.throws(() => sampleFrom([1], -0.1), isCode(KernelErrorCode.InvalidUniform));
});
