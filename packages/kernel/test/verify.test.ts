import test from 'node:test';
import assert from 'node:assert/strict';
import {
  KernelError,
  KernelErrorCode,
  SessionRng,
  acceptanceProbability,
  candidateAcceptanceProbability,
  candidateFallbackProbability,
  candidateSuccessProbability,
  chooseCandidateCount,
  drawCandidates,
  residualLaw,
  residualWeights,
  resolveCandidates,
  sampleBonus,
  sampleFrom,
  sampleResidual,
  scanAcceptance,
  totalVariation,
  verifyDsd,
  verifyDssd,
} from '../src/index.js';
import { mulberry32, randomGridDistribution } from './helpers.js';

const isCode = (code: KernelErrorCode) => (e: unknown) => e instanceof KernelError && e.code === code;

test('acceptanceProbability is min(1, p/q) and rejects q outside (0, 1]', () => {
  assert.equal(acceptanceProbability(0.3, 0.6), 0.5);
  assert.equal(acceptanceProbability(0.6, 0.3), 1);
  assert.equal(acceptanceProbability(0, 0.3), 0);
  assert.equal(acceptanceProbability(0.5, 0.5), 1);
  assert.throws(() => acceptanceProbability(0.5, 0), isCode(KernelErrorCode.InvalidProbability));
  assert.throws(() => acceptanceProbability(0.5, 1.5), isCode(KernelErrorCode.InvalidProbability));
  assert.throws(() => acceptanceProbability(NaN, 0.5), isCode(KernelErrorCode.InvalidProbability));
});

test('scanAcceptance accepts iff r·q < p and stops at the first rejection (1-based j)', () => {
  assert.deepEqual(scanAcceptance([0.25], [0.5], [0.4999]), { accepted: 1, rejectedAt: null });
  assert.deepEqual(scanAcceptance([0.25], [0.5], [0.5]), { accepted: 0, rejectedAt: 1 });
  // p >= q: always accepted, even for r just below 1.
  assert.deepEqual(scanAcceptance([0.5, 0.9], [0.5, 0.1], [0.999999, 0.999999]), {
    accepted: 2,
    rejectedAt: null,
  });
  // p = 0: always rejected, even for r = 0.
  assert.deepEqual(scanAcceptance([0.5, 0, 0.5], [0.5, 0.2, 0.5], [0, 0, 0]), { accepted: 1, rejectedAt: 2 });
  assert.deepEqual(scanAcceptance([], [], []), { accepted: 0, rejectedAt: null });
  assert.throws(
    () => scanAcceptance([0.1, 0.1], [0.5, 0], [0, 0]),
    (e: unknown) => isCode(KernelErrorCode.InvalidProbability)(e) && /position 2/.test((e as Error).message),
  );
  assert.throws(() => scanAcceptance([0.1], [0.5, 0.5], [0, 0]), isCode(KernelErrorCode.LengthMismatch));
  assert.throws(() => scanAcceptance([0.1], [0.5], []), isCode(KernelErrorCode.LengthMismatch));
  assert.throws(() => scanAcceptance([0.1], [0.5], [1]), isCode(KernelErrorCode.InvalidUniform));
});

test('residual: max(0, P − Q), its law, and the fall-back to P when P <= Q everywhere', () => {
  const P = [0.5, 0.25, 0.25, 0];
  const Q = [0.25, 0.5, 0, 0.25];
  assert.deepEqual(Array.from(residualWeights(P, Q)), [0.25, 0, 0.25, 0]);
  assert.deepEqual(Array.from(residualLaw(P, Q)), [0.5, 0, 0.5, 0]);
  assert.equal(totalVariation(P, Q), 0.5);
  assert.equal(sampleResidual(P, Q, 0.49), 0);
  assert.equal(sampleResidual(P, Q, 0.5), 2);
  // Q with support outside P's: those tokens simply get no residual weight.
  assert.deepEqual(Array.from(residualLaw([1, 0], [0, 1])), [1, 0]);
  // P == Q: the rejection had probability 0; sample from P.
  assert.deepEqual(Array.from(residualLaw(P, P)), P);
  assert.equal(sampleResidual(P, P, 0.6), 1);
  assert.throws(() => residualWeights([1], [0.5, 0.5]), isCode(KernelErrorCode.LengthMismatch));
  assert.throws(() => sampleResidual([1], [0.5, 0.5], 0.1), isCode(KernelErrorCode.LengthMismatch));
});

test('sampleBonus draws from P_{γ+1} with the given uniform', () => {
  assert.equal(sampleBonus([0.25, 0.75], 0.2), 0);
  assert.equal(sampleBonus([0.25, 0.75], 0.3), 1);
});

test('drawCandidates returns exactly what sampleFrom returns for each uniform, with exact float32 probs', () => {
  const P = randomGridDistribution(1000, 3, 2.5);
  const us = [0, 1e-12, 0.1, 0.5, 0.999, 1 - 2 ** -53];
  for (let k = 0; k < 300; k++) us.push((k * 0.618033988749895) % 1);
  const c = drawCandidates(P, us.length, us);
  for (let k = 0; k < us.length; k++) {
    assert.equal(c.ids[k], sampleFrom(P, us[k]));
    assert.equal(c.probs[k], P[c.ids[k]]);
    assert.ok(c.probs[k] > 0);
  }
  assert.throws(() => drawCandidates(P, 3, [0.1]), isCode(KernelErrorCode.LengthMismatch));
  assert.throws(() => drawCandidates([0, 0], 1, [0.1]), isCode(KernelErrorCode.EmptyDistribution));
});

test('resolveCandidates accepts y iff u·P(y) < P(y) − Q(y), in order, else falls back', () => {
  const Q = [0.5, 0.25, 0.25];
  // P(0) = 0.75: accept iff u < (0.75 − 0.5)/0.75 = 1/3.
  assert.deepEqual(resolveCandidates([0], [0.75], Q, [0.33]), { fallback: false, token: 0, index: 0 });
  assert.deepEqual(resolveCandidates([0], [0.75], Q, [0.34]), { fallback: true });
  // Candidate with P <= Q never accepted; the second one is.
  assert.deepEqual(resolveCandidates([1, 0, 0], [0.25, 0.75, 0.75], Q, [0, 0.1, 0]), {
    fallback: false,
    token: 0,
    index: 1,
  });
  assert.deepEqual(resolveCandidates([], [], Q, []), { fallback: true });
  assert.throws(() => resolveCandidates([3], [0.5], Q, [0]), isCode(KernelErrorCode.TokenOutOfRange));
  assert.throws(() => resolveCandidates([0], [0], Q, [0]), isCode(KernelErrorCode.InvalidProbability));
  assert.throws(() => resolveCandidates([0], [1.5], Q, [0]), isCode(KernelErrorCode.InvalidProbability));
  assert.throws(() => resolveCandidates([0, 1], [0.5], Q, [0, 0]), isCode(KernelErrorCode.LengthMismatch));
  assert.equal(candidateAcceptanceProbability(0.75, 0.5), 1 / 3);
  assert.equal(candidateAcceptanceProbability(0.25, 0.5), 0);
});

test('candidate success/fall-back probabilities and the adaptive K', () => {
  const P = [0.5, 0.25, 0.25, 0];
  const Q = [0.25, 0.5, 0, 0.25];
  assert.equal(candidateFallbackProbability(P, Q, 3), 0.125);
  assert.equal(candidateSuccessProbability(P, Q, 3), 0.875);
  assert.equal(candidateFallbackProbability(P, P, 5), 1);
  assert.equal(chooseCandidateCount(0.1), 66); // 0.9^66 ≈ 9.6e-4 <= 1e-3 < 0.9^65
  assert.ok(0.9 ** 66 <= 1e-3 && 0.9 ** 65 > 1e-3);
  assert.equal(chooseCandidateCount(0.5), 32);
  assert.equal(chooseCandidateCount(0.01), 256);
  assert.equal(chooseCandidateCount(0), 256);
  assert.equal(chooseCandidateCount(1), 32);
  assert.equal(chooseCandidateCount(0.5, 1e-3, 1, 64), 10);
  assert.equal(chooseCandidateCount(0.3, 1e-6, 1, 1000), 39); // 0.7^39 ≈ 9.1e-7
  assert.throws(() => chooseCandidateCount(1.5), isCode(KernelErrorCode.InvalidArgument));
  assert.throws(() => chooseCandidateCount(0.5, 0), isCode(KernelErrorCode.InvalidArgument));
  assert.throws(() => chooseCandidateCount(0.5, 1e-3, 10, 5), isCode(KernelErrorCode.InvalidArgument));
});

test('verifyDsd and the DSSD split (edge scan + device residual) emit identical tokens for a seed', () => {
  const rng = new SessionRng(2024);
  const V = 6;
  let rejections = 0;
  let bonuses = 0;
  for (let trial = 0; trial < 400; trial++) {
    const gamma = 1 + (trial % 4);
    const r = rng.round(trial, trial % 3);
    const P = Array.from({ length: gamma + 1 }, (_, i) => randomGridDistribution(V, trial * 10 + i));
    const Q = Array.from({ length: gamma }, (_, i) => randomGridDistribution(V, 5000 + trial * 10 + i));
    const drafts = Q.map((Qi, i) => sampleFrom(Qi, r.draft(i + 1)));
    const dsd = verifyDsd(P, Q, drafts, r);
    const edge = verifyDssd(
      P,
      drafts,
      drafts.map((x, i) => Q[i][x]),
      r,
    );
    assert.equal(edge.accepted, dsd.accepted);
    assert.equal(edge.rejectedAt, dsd.rejectedAt);
    if (edge.rejectedAt === null) {
      bonuses++;
      assert.equal(edge.bonus, dsd.token);
    } else {
      rejections++;
      const j = edge.rejectedAt;
      assert.equal(edge.bonus, null);
      assert.equal(sampleResidual(P[j - 1], Q[j - 1], r.residual(j)), dsd.token);
    }
  }
  assert.ok(rejections > 50 && bonuses > 20, `${rejections} rejections, ${bonuses} bonuses`);
  assert.throws(() => verifyDsd([[1]], [[1]], [0], rng.round(0, 0)), isCode(KernelErrorCode.LengthMismatch));
  assert.throws(
    () => verifyDssd([[1], [1]], [1], [1], rng.round(0, 0)),
    isCode(KernelErrorCode.TokenOutOfRange),
  );
});

test('sampleResidual and drawCandidates at |V| = 151,936 return what sampleFrom returns on the materialised weights', () => {
  const V = 151_936;
  const P = randomGridDistribution(V, 41, 2);
  const Q = randomGridDistribution(V, 42, 2);
  const w = residualWeights(P, Q);
  const rand = mulberry32(43);
  const us = Float64Array.from({ length: 300 }, (_, k) => (k < 2 ? [0, 1 - 2 ** -53][k] : rand()));
  for (const u of us) assert.equal(sampleResidual(P, Q, u), sampleFrom(w, u));
  const c = drawCandidates(P, us.length, us);
  for (let k = 0; k < us.length; k++) {
    assert.equal(c.ids[k], sampleFrom(P, us[k]));
    assert.equal(c.probs[k], P[c.ids[k]]);
  }
  // P <= Q everywhere: the residual falls back to P.
  assert.equal(sampleResidual(P, P, 0.5), sampleFrom(P, 0.5));
});
