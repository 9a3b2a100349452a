import test from 'node:test';
import assert from 'node:assert/strict';
import { KernelError, KernelErrorCode, SpecStats } from '../src/index.js';

test('SpecStats follows the vLLM definitions', () => {
  const s = new SpecStats();
  s.recordRound(4, 4); // bonus
  s.recordRound(4, 1, { fullRequest: true }); // resampled at position 2
  s.recordRound(2, 0, { fallback: true, fullRequest: true }); // adaptive γ = 2, rejected at position 1
  s.recordRound(0, 0, { resampled: false, bonus: false }); // an AR step: not a draft
  assert.equal(s.rounds, 4);
  assert.equal(s.drafts, 3);
  assert.equal(s.draftedTokens, 10);
  assert.equal(s.acceptedTokens, 5);
  assert.equal(s.meanAcceptanceLength, 1 + 5 / 3);
  assert.equal(s.acceptanceRate, 0.5);
  // position 1: accepted in rounds 1, 2 of 3 drafting ≥ 1; position 2: round 1 of 3; positions 3, 4: 1 of 2.
  assert.deepEqual(s.acceptancePerPosition, [2 / 3, 1 / 3, 1 / 2, 1 / 2]);
  assert.equal(s.bonusTokens, 1);
  assert.equal(s.resampledTokens, 2);
  assert.equal(s.fallbacks, 1);
  assert.equal(s.fullRequests, 2);
});

test('SpecStats merge, toJSON and fromJSON', () => {
  const a = new SpecStats();
  a.recordRound(3, 3);
  const b = new SpecStats();
  b.recordRound(5, 2);
  b.recordRound(5, 5);
  const merged = new SpecStats().merge(a).merge(b);
  const direct = new SpecStats();
  direct.recordRound(3, 3);
  direct.recordRound(5, 2);
  direct.recordRound(5, 5);
  assert.deepEqual(merged.toJSON(), direct.toJSON());
  const json = JSON.parse(JSON.stringify(merged));
  assert.equal(json.meanAcceptanceLength, 1 + 10 / 3);
  assert.deepEqual(json.acceptancePerPosition, [1, 1, 2 / 3, 0.5, 0.5]);
  assert.deepEqual(SpecStats.fromJSON(json).toJSON(), merged.toJSON());
  const empty = new SpecStats();
  assert.equal(empty.meanAcceptanceLength, 1);
  assert.equal(empty.acceptanceRate, 0);
  assert.deepEqual(empty.acceptancePerPosition, []);
});

test('SpecStats rejects impossible rounds', () => {
  const s = new SpecStats();
  const bad = (e: unknown) => e instanceof KernelError && e.code === KernelErrorCode.InvalidArgument;
  assert.throws(() => s.recordRound(2, 3), bad);
  assert.throws(() => s.recordRound(-1, 0), bad);
  assert.throws(() => s.recordRound(1.5, 0), bad);
  assert.equal(s.rounds, 0);
});
