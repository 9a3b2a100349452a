/**
 * Exact proof of losslessness for the code production runs: the law of the first N emitted tokens is enumerated
 * by driving verifyDssdRound / resampleRejected / the candidates pair / verifyDsdRound with a scripted RoundRng
 * whose breakpoints are found from the functions' behaviour (round-enum.ts), and compared to the target's
 * sequential law to 1e-12. Planted bugs in the RoundRules the rounds are built from must be caught (> 1e-3).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { EXACT_RULES, sampleFrom, scanAcceptance, sampleResidual } from '../src/index.js';
import type { RoundRules } from '../src/index.js';
import { families, maxAbsDiff, mismatchedQCases, randomGridDistribution, targetLaw } from './helpers.js';
import { productionLaw, roundLaw } from './round-enum.js';
import type { ProductionMode } from './round-enum.js';

type Config = [V: number, gamma: number, N: number];

/**
 * lossless.test.ts's configs, with (12, 1, 3) cut to (12, 1, 2): every bonus of a |V| = 12 round costs 11
 * bisections of 53 runs, and (12, 1, 3) alone takes ~5 s per mode. (2,2,5), (3,3,4) and (5,2,3) keep several
 * rounds and γ ≥ 2.
 */
const CONFIGS: Config[] = [
  [2, 2, 5],
  [3, 3, 4],
  [5, 2, 3],
  [12, 1, 2],
];
/** The candidates codec without |V| = 12 (its enumeration grows as |V|^K per rejection). */
const CANDIDATE_CONFIGS: Config[] = CONFIGS.slice(0, 3);
/** K = 8 branches 2^8 ways per rejection even at |V| = 2. */
const K8_CONFIGS: Config[] = [[2, 2, 4]];
const TOL = 1e-12;
const CAUGHT = 1e-3;

function worstDiff(mode: ProductionMode, configs: Config[], seed = 7): { diff: number; where: string } {
  let worst = { diff: 0, where: '' };
  for (const [V, gamma, N] of configs) {
    for (const model of families(V, seed + V)) {
      const diff = maxAbsDiff(productionLaw(model, N, gamma, mode), targetLaw(model, N));
      if (diff >= worst.diff) worst = { diff, where: `${model.name} V=${V} γ=${gamma} N=${N}` };
    }
  }
  return worst;
}

function perFamily(mode: ProductionMode, V = 3, gamma = 2, N = 3, seed = 11): Map<string, number> {
  const out = new Map<string, number>();
  for (const model of families(V, seed)) {
    out.set(model.name, maxAbsDiff(productionLaw(model, N, gamma, mode), targetLaw(model, N)));
  }
  return out;
}

test('enumerator: recovers a sampling law and an acceptance probability from behaviour alone', () => {
  const P = randomGridDistribution(7, 3);
  const { law } = roundLaw((rng) => String(sampleFrom(P, rng.bonus(1))));
  // Grid distributions split [0, 1) at multiples of 2^-24, so the piece lengths are P exactly.
  for (let y = 0; y < P.length; y++) assert.equal(law.get(String(y)) ?? 0, P[y]);
  const [p, q] = [0.3, 0.7];
  const acc = roundLaw((rng) => String(scanAcceptance([p], [q], [rng.accept(1)]).accepted)).law;
  assert.ok(Math.abs((acc.get('1') ?? 0) - p / q) <= 2 ** -52, `accept mass ${acc.get('1')}`);
  // A later stage reusing an earlier stage's uniform is refused rather than enumerated as independent.
  assert.throws(
    () => roundLaw((rng) => String(rng.accept(1)), {}, new Map(), new Set(['accept:1'])),
    /reused/,
  );
});

test('production DSSD round, dense residual: exact law equals the target law', () => {
  const { diff, where } = worstDiff({ kind: 'dssd' }, CONFIGS);
  assert.ok(diff <= TOL, `max |Δ| = ${diff} at ${where}`);
});

test('production DSSD round, candidates codec (fall-back to resampleRejected): K = 1, 2, 8', () => {
  for (const K of [1, 2, 8]) {
    const { diff, where } = worstDiff({ kind: 'candidates', K }, K === 8 ? K8_CONFIGS : CANDIDATE_CONFIGS);
    assert.ok(diff <= TOL, `K=${K}: max |Δ| = ${diff} at ${where}`);
  }
});

test('production DSD round (verifyDsdRound): exact law equals the target law', () => {
  const { diff, where } = worstDiff({ kind: 'dsd' }, CONFIGS);
  assert.ok(diff <= TOL, `max |Δ| = ${diff} at ${where}`);
});

test('pipelined: bonus off, a fully accepted block emits its γ drafts and the next round goes on', () => {
  const { diff, where } = worstDiff({ kind: 'dssd', bonus: false }, CONFIGS);
  assert.ok(diff <= TOL, `max |Δ| = ${diff} at ${where}`);
});

// ------------------------------------------------------------------------------------------------------------
// Planted bugs, through the RoundRules the production rounds are built from.
// ------------------------------------------------------------------------------------------------------------

/** The paper-printed ratio: accept with min(1, q/p) (p = 0 made tiny so the swapped call stays valid). */
const INVERTED: RoundRules = {
  ...EXACT_RULES,
  scanAcceptance: (p, q, u) =>
    scanAcceptance(
      q,
      Array.from(p, (x) => x || 1e-30),
      u,
    ),
};

/** The residual without max(0, ·): Σ(P − Q) = 0, so the normalisable reading is a draw from |P − Q|. */
const NO_CLAMP: RoundRules = {
  ...EXACT_RULES,
  sampleResidual: (P, Q, u) => {
    const w = Array.from(P, (p, i) => Math.abs(p - Q[i]));
    return w.some((x) => x > 0) ? sampleFrom(w, u) : sampleResidual(P, Q, u);
  },
};

for (const kind of ['dssd', 'dsd'] as const) {
  test(`planted bug (${kind}): the inverted ratio min(1, q/p) is caught`, () => {
    const diffs = perFamily({ kind, rules: INVERTED });
    const worst = Math.max(...diffs.values());
    assert.ok(worst > CAUGHT, `inverted ratio undetected: ${JSON.stringify([...diffs])}`);
    // P = Q: both ratios are 1, so that family stays exact even under the bug.
    assert.ok((diffs.get('identical') as number) <= TOL);
  });

  test(`planted bug (${kind}): the residual without max(0, ·) is caught`, () => {
    const worst = Math.max(...perFamily({ kind, rules: NO_CLAMP }).values());
    assert.ok(worst > CAUGHT, `missing clamp undetected (max |Δ| = ${worst})`);
  });
}

test('planted bug: verifying with a Q other than the one the draft was sampled from is caught', () => {
  for (const { what, model, verifyQ } of mismatchedQCases()) {
    const diff = maxAbsDiff(productionLaw(model, 3, 2, { kind: 'dssd', verifyQ }), targetLaw(model, 3));
    assert.ok(diff > CAUGHT, `${what}: mismatched Q undetected (max |Δ| = ${diff})`);
    // Control: the same model verified with its own Q is exact.
    assert.ok(maxAbsDiff(productionLaw(model, 3, 2, { kind: 'dssd' }), targetLaw(model, 3)) <= TOL);
  }
});
