import test from 'node:test';
import assert from 'node:assert/strict';
import { KernelErrorCode, Purpose, SessionRng, philox4x32, uniform } from '../src/index.js';
import { chiSquareTest } from './helpers.js';

const hex = (a: Uint32Array) => Array.from(a, (x) => x.toString(16).padStart(8, '0')).join(' ');

test('philox4x32-10 matches the Random123 known-answer vectors', () => {
  assert.equal(hex(philox4x32([0, 0, 0, 0], [0, 0])), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  const ones = 0xffffffff;
  assert.equal(
    hex(philox4x32([ones, ones, ones, ones], [ones, ones])),
    '408f276d 41c83b0e a20bc7c6 6d5451fd',
  );
  assert.equal(
    hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])),
    'd16cfe09 94fdcceb 5001e420 24126ea1',
  );
});

test('uniform() is built from the documented counter, key and 53 output bits', () => {
  const seed = 0x12345_6789abcd; // hi = 0x12345, lo = 0x6789abcd
  const out = philox4x32([3, 4, 5, (Purpose.Candidate << 24) | 17], [0x6789abcd, 0x12345]);
  const expected = ((out[0] >>> 5) * 2 ** 26 + (out[1] >>> 6)) / 2 ** 53;
  assert.equal(uniform(seed, 3, 4, 5, Purpose.Candidate, 17), expected);
});

test('SessionRng and RoundRng follow the key schedule', () => {
  const seed = 987654321;
  const rng = new SessionRng(seed);
  const r = rng.round(2, 5);
  const gamma = 4;
  assert.equal(r.draft(3), uniform(seed, 2, 5, 3, Purpose.Draft));
  assert.equal(rng.draft(2, 5, 3), r.draft(3));
  assert.equal(r.accept(1), uniform(seed, 2, 5, 1, Purpose.Accept));
  assert.equal(rng.accept(2, 5, 1), r.accept(1));
  assert.deepEqual(
    Array.from(r.acceptUniforms(gamma)),
    [1, 2, 3, 4].map((i) => r.accept(i)),
  );
  assert.equal(r.residual(2), uniform(seed, 2, 5, 2, Purpose.Residual));
  assert.equal(rng.residual(2, 5, 2), r.residual(2));
  assert.equal(r.bonus(gamma), uniform(seed, 2, 5, gamma + 1, Purpose.Bonus));
  assert.equal(rng.bonus(2, 5, gamma), r.bonus(gamma));
  assert.equal(r.candidate(2, 7), uniform(seed, 2, 5, 2, Purpose.Candidate, 7));
  assert.equal(rng.candidate(2, 5, 2, 7), r.candidate(2, 7));
  assert.deepEqual(
    Array.from(r.candidateUniforms(2, 3)),
    [0, 1, 2].map((k) => r.candidate(2, k)),
  );
  assert.equal(r.candidateAccept(2, 7), uniform(seed, 2, 5, 2, Purpose.CandidateAccept, 7));
  assert.equal(rng.candidateAccept(2, 5, 2, 7), r.candidateAccept(2, 7));
  assert.deepEqual(
    Array.from(r.candidateAcceptUniforms(2, 3)),
    [0, 1, 2].map((k) => r.candidateAccept(2, k)),
  );
  assert.equal(rng.ar(2, 9), uniform(seed, 2, 9, 0, Purpose.Ar));
});

test('uniform() stays in [0, 1) and distinct counters give distinct values', () => {
  const seen = new Set<number>();
  let min = 1;
  let max = 0;
  const seeds = [0, 1, 2 ** 32, 2 ** 53 - 1];
  for (const seed of seeds) {
    for (let t = 0; t < 3; t++) {
      for (let r = 0; r < 3; r++) {
        for (let pos = 0; pos < 4; pos++) {
          for (const purpose of [1, 2, 3, 4, 5, 6, 7]) {
            for (let idx = 0; idx < 3; idx++) {
              const u = uniform(seed, t, r, pos, purpose, idx);
              min = Math.min(min, u);
              max = Math.max(max, u);
              seen.add(u);
            }
          }
        }
      }
    }
  }
  assert.ok(min >= 0 && max < 1);
  assert.equal(seen.size, seeds.length * 3 * 3 * 4 * 7 * 3, 'every counter/seed gives its own value');
  // The largest counter words are accepted.
  const u = uniform(2 ** 53 - 1, 2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1, 255 as Purpose, 2 ** 24 - 1);
  assert.ok(u >= 0 && u < 1);
});

test('uniform() is equidistributed (chi-square over 100 bins and over pairs)', () => {
  const n = 100_000;
  const bins = new Float64Array(100);
  const pairs = new Float64Array(100);
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const u = uniform(42, i % 7, Math.floor(i / 7), 1, Purpose.Draft);
    bins[Math.floor(u * 100)]++;
    if (i % 2 === 1) pairs[Math.floor(prev * 10) * 10 + Math.floor(u * 10)]++;
    prev = u;
  }
  const even = new Float64Array(100).fill(0.01);
  assert.ok(chiSquareTest(bins, even).p > 1e-6);
  assert.ok(chiSquareTest(pairs, even).p > 1e-6);
  // The test has power: a generator with a 2% bias towards the lowest bin is rejected.
  const biased = Float64Array.from(bins);
  biased[0] += 0.02 * n;
  assert.ok(chiSquareTest(biased, even).p < 1e-6);
});

test('invalid seeds and counter words throw typed errors', () => {
  const bad: Array<() => unknown> = [
    () => new SessionRng(-1),
    () => new SessionRng(1.5),
    () => new SessionRng(2 ** 53),
    () => uniform(1, -1, 0, 0, Purpose.Draft),
    () => uniform(1, 0, 2 ** 32, 0, Purpose.Draft),
    () => uniform(1, 0, 0, 0.5, Purpose.Draft),
    () => uniform(1, 0, 0, 0, 256 as Purpose),
    () => uniform(1, 0, 0, 0, Purpose.Candidate, 2 ** 24),
    () => philox4x32([0, 0, 0], [0, 0]),
    () => philox4x32([0, 0, 0, 2 ** 32], [0, 0]),
  ];
  for (const f of bad)
    assert.throws(f, (e: unknown) => (e as { code?: string }).code === KernelErrorCode.InvalidRngInput);
});
