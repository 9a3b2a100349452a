/**
 * Exact proof of losslessness on toy models: the law of the first N emitted tokens of the speculative procedure
 * (enumerated in float64 over every draft/accept/reject branch, with the kernel's own law functions) equals the
 * target's sequential law to 1e-12, and planted bugs are caught.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { residualLaw } from '../src/index.js';
import { families, kernelRules, maxAbsDiff, mismatchedQCases, speculativeLaw, targetLaw } from './helpers.js';
import type { Rules, ToyPair } from './helpers.js';

/** (V, γ, N): small vocabularies, several rounds, γ from 1 to 3. */
const CONFIGS: Array<[number, number, number]> = [
  [2, 2, 5],
  [3, 3, 4],
  [5, 2, 3],
  [12, 1, 3],
];
const TOL = 1e-12;

function worstDiff(rules: Rules, configs = CONFIGS, seed = 7): { diff: number; where: string } {
  let worst = { diff: 0, where: '' };
  for (const [V, gamma, N] of configs) {
    for (const model of families(V, seed + V)) {
      const diff = maxAbsDiff(speculativeLaw(model, N, gamma, rules), targetLaw(model, N));
      if (diff >= worst.diff) worst = { diff, where: `${model.name} V=${V} γ=${gamma} N=${N}` };
    }
  }
  return worst;
}

function perFamily(rules: Rules, V: number, gamma: number, N: number, seed = 11): Map<string, number> {
  const out = new Map<string, number>();
  for (const model of families(V, seed)) {
    out.set(model.name, maxAbsDiff(speculativeLaw(model, N, gamma, rules), targetLaw(model, N)));
  }
  return out;
}

test('target law and speculative law are probability distributions', () => {
  const model = families(3, 1)[0];
  const t = targetLaw(model, 4);
  const s = speculativeLaw(model, 4, 2, kernelRules);
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum(t) - 1) < 1e-12);
  assert.ok(Math.abs(sum(s) - 1) < 1e-12);
  assert.equal(t.size, 81);
});

test('DSSD dense residual is lossless on every family (exact enumeration)', () => {
  const { diff, where } = worstDiff(kernelRules);
  assert.ok(diff <= TOL, `max |Δ| = ${diff} at ${where}`);
});

test('DSD baseline (edge holds the full Qs) is lossless on every family', () => {
  const { diff, where } = worstDiff({ ...kernelRules, mode: 'dsd' });
  assert.ok(diff <= TOL, `max |Δ| = ${diff} at ${where}`);
});

test('greedy: temperature 0 on both sides is lossless and equals argmax decoding', () => {
  for (const [V, gamma, N] of CONFIGS) {
    const model = families(V, 3).find((m) => m.name === 'greedy') as ToyPair;
    const law = speculativeLaw(model, N, gamma, kernelRules);
    const target = targetLaw(model, N);
    assert.equal(target.size, 1, 'greedy target law is a point mass');
    assert.ok(maxAbsDiff(law, target) <= TOL);
  }
});

test('candidate residual is lossless: closed-form success/fall-back mixture, K = 1, 2, 8', () => {
  for (const K of [1, 2, 8]) {
    const { diff, where } = worstDiff({ ...kernelRules, mode: 'candidate', K });
    assert.ok(diff <= TOL, `K=${K}: max |Δ| = ${diff} at ${where}`);
  }
});

test('candidate residual is lossless: exhaustive enumeration over the candidate draws, K = 1, 2', () => {
  const small: Array<[number, number, number]> = [
    [2, 2, 4],
    [3, 2, 3],
    [4, 1, 3],
  ];
  for (const K of [1, 2]) {
    const { diff, where } = worstDiff(
      { ...kernelRules, mode: 'candidate', K, exhaustiveCandidates: true },
      small,
    );
    assert.ok(diff <= TOL, `K=${K}: max |Δ| = ${diff} at ${where}`);
  }
});

// ------------------------------------------------------------------------------------------------------------
// Planted bugs: the harness must detect each of them (> 1e-3 in at least one family).
// ------------------------------------------------------------------------------------------------------------

const CAUGHT = 1e-3;

test('planted bug: the paper-printed ratio min(1, q/p) is caught', () => {
  const inverted: Rules = { ...kernelRules, accept: (p, q) => (p === 0 ? 1 : Math.min(1, q / p)) };
  const diffs = perFamily(inverted, 3, 2, 3);
  const worst = Math.max(...diffs.values());
  assert.ok(worst > CAUGHT, `inverted ratio undetected: ${JSON.stringify([...diffs])}`);
  // P = Q: both ratios are 1, so that family must stay exact even under the bug.
  assert.ok((diffs.get('identical') as number) <= TOL);
});

test('planted bug: residual without max(0, ·) is caught', () => {
  // Σ(P − Q) = 0, so the only normalisable reading of "P − Q without the clamp" is norm(|P − Q|).
  const noClamp: Rules = {
    ...kernelRules,
    residual: (P, Q) => {
      const w = Array.from(P, (p, i) => Math.abs(p - Q[i]));
      const s = w.reduce((a, b) => a + b, 0);
      return s > 0 ? w.map((x) => x / s) : residualLaw(P, Q);
    },
  };
  const worst = Math.max(...perFamily(noClamp, 3, 2, 3).values());
  assert.ok(worst > CAUGHT, `missing clamp undetected (max |Δ| = ${worst})`);
});

test('planted bug: verifying with a Q other than the one the draft was sampled from is caught', () => {
  for (const { what, model, verifyQ } of mismatchedQCases()) {
    const buggy: Rules = { ...kernelRules, verifyQ };
    const diff = maxAbsDiff(speculativeLaw(model, 3, 2, buggy), targetLaw(model, 3));
    assert.ok(diff > CAUGHT, `${what}: mismatched Q undetected (max |Δ| = ${diff})`);
    // Control: the same model verified with its own Q is exact.
    assert.ok(maxAbsDiff(speculativeLaw(model, 3, 2, kernelRules), targetLaw(model, 3)) <= TOL);
  }
});

test('planted bug: a lossy downlink channel (P rounded to multiples of 1/8) is caught', () => {
  const lossy: Rules = {
    ...kernelRules,
    channel: (P) => Array.from(P, (p) => Math.round(p * 8) / 8),
  };
  const worst = Math.max(...perFamily(lossy, 3, 2, 3).values());
  assert.ok(worst > CAUGHT, `lossy channel undetected (max |Δ| = ${worst})`);
});
