/**
 * The exact enumeration with every downlink P_j (and, for DSD, every uplinked Q_i) sent through @dssd/codec:
 * the exact encodings keep the output law equal to the target's; f16 is measured.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { decodeCandidates, decodeDistribution, encodeCandidates, encodeDistribution } from '@dssd/codec';
import type { DistributionEncodingOption } from '@dssd/codec';
import { SessionRng, drawCandidates } from '../src/index.js';
import {
  families,
  kernelRules,
  lawTv,
  maxAbsDiff,
  randomGridDistribution,
  speculativeLaw,
  targetLaw,
} from './helpers.js';
import type { Rules, ToyPair } from './helpers.js';

const CONFIGS: Array<[number, number, number]> = [
  [2, 2, 5],
  [3, 3, 4],
  [5, 2, 3],
  [12, 1, 3],
];

const through =
  (encoding: DistributionEncodingOption) =>
  (P: Float32Array): Float32Array =>
    decodeDistribution(encodeDistribution(P, encoding), P.length);

function check(rules: Rules, pick: (m: ToyPair) => boolean = () => true): { diff: number; tv: number } {
  let diff = 0;
  let tv = 0;
  for (const [V, gamma, N] of CONFIGS) {
    for (const model of families(V, 31 + V).filter(pick)) {
      const spec = speculativeLaw(model, N, gamma, rules);
      const target = targetLaw(model, N);
      diff = Math.max(diff, maxAbsDiff(spec, target));
      tv = Math.max(tv, lawTv(spec, target));
    }
  }
  return { diff, tv };
}

test('exact encodings (f32, sparse, auto) through the codec keep DSSD, DSD and the candidate fall-back lossless', () => {
  for (const encoding of ['f32', 'sparse', 'auto'] as const) {
    const channel = through(encoding);
    for (const rules of [
      { ...kernelRules, channel },
      { ...kernelRules, channel, mode: 'dsd' as const },
      { ...kernelRules, channel, mode: 'candidate' as const, K: 1 },
    ]) {
      const { diff } = check(rules);
      assert.ok(diff <= 1e-12, `${encoding} ${rules.mode}: max |Δ| = ${diff}`);
    }
  }
});

test("'token' encoding is exact when every P_j is one-hot", () => {
  const oneHotTarget = (m: ToyPair) => m.name === 'greedy' || m.name === 'onehot-target';
  const { diff } = check({ ...kernelRules, channel: through('token') }, oneHotTarget);
  assert.ok(diff <= 1e-12, `max |Δ| = ${diff}`);
});

test('f16 downlink: total-variation error of the output law is small (measured)', () => {
  const dssd = check({ ...kernelRules, channel: through('f16') });
  const dsd = check({ ...kernelRules, channel: through('f16'), mode: 'dsd' });
  console.log(`f16 P_j downlink (DSSD): max TV of the N-token law = ${dssd.tv.toExponential(2)}`);
  console.log(`f16 Q_i uplink (DSD):    max TV of the N-token law = ${dsd.tv.toExponential(2)}`);
  assert.ok(dssd.tv < 1e-3 && dsd.tv < 1e-3);
});

test('candidate lists survive encodeCandidates/decodeCandidates bit for bit', () => {
  const r = new SessionRng(3).round(0, 0);
  const P = randomGridDistribution(5000, 8, 3);
  const c = drawCandidates(P, 64, r.candidateUniforms(1, 64));
  const back = decodeCandidates(encodeCandidates(c, P.length), P.length);
  assert.deepEqual(back.ids, c.ids);
  assert.deepEqual(back.probs, c.probs);
});
