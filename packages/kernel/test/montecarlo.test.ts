/**
 * Monte Carlo checks of the sampling code itself (fixed seeds via SessionRng, chi-square, accept when p > 1e-6),
 * each paired with a planted bug that the same check must reject (p < 1e-6).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  SessionRng,
  drawCandidates,
  residualLaw,
  resolveCandidates,
  sampleFrom,
  sampleResidual,
  totalVariation,
} from '../src/index.js';
import type { ScanResult } from '../src/index.js';
import { chiSquareTest, families, randomGridDistribution, runLoop, targetLaw } from './helpers.js';
import type { ToyPair } from './helpers.js';

const ALPHA = 1e-6;

function histogram(n: number, bins: number, draw: (k: number) => number): Float64Array {
  const h = new Float64Array(bins);
  for (let k = 0; k < n; k++) h[draw(k)]++;
  return h;
}

test('sampleFrom matches its weights; a sampler that drops the last weight from Σ is rejected', (t) => {
  const rng = new SessionRng(11);
  const P = randomGridDistribution(10, 4);
  const n = 100_000;
  const ok = chiSquareTest(
    histogram(n, 10, (k) => sampleFrom(P, rng.ar(0, k))),
    P,
  );
  assert.ok(ok.p > ALPHA, `p = ${ok.p}`);
  const buggy = (w: Float32Array, u: number) => {
    let total = 0;
    for (let i = 0; i < w.length - 1; i++) total += w[i];
    let cum = 0;
    for (let i = 0; i < w.length; i++) {
      cum += w[i];
      if (cum > u * total) return i;
    }
    return w.length - 1;
  };
  const bad = chiSquareTest(
    histogram(n, 10, (k) => buggy(P, rng.ar(0, k))),
    P,
  );
  assert.ok(bad.p < ALPHA, `planted bug not detected, p = ${bad.p}`);
  t.diagnostic(`kernel p = ${ok.p.toPrecision(3)}, planted bug p = ${bad.p.toExponential(1)}`);
});

test('sampleResidual matches residualLaw; sampling norm(|P − Q|) is rejected', (t) => {
  const rng = new SessionRng(12);
  const P = randomGridDistribution(8, 5);
  const Q = randomGridDistribution(8, 6);
  const law = residualLaw(P, Q);
  const n = 100_000;
  const ok = chiSquareTest(
    histogram(n, 8, (k) => sampleResidual(P, Q, rng.residual(0, k, 1))),
    law,
  );
  assert.ok(ok.p > ALPHA, `p = ${ok.p}`);
  const abs = Array.from(P, (p, i) => Math.abs(p - Q[i]));
  const bad = chiSquareTest(
    histogram(n, 8, (k) => sampleFrom(abs, rng.residual(0, k, 1))),
    law,
  );
  assert.ok(bad.p < ALPHA, `planted bug not detected, p = ${bad.p}`);
  t.diagnostic(`kernel p = ${ok.p.toPrecision(3)}, planted bug p = ${bad.p.toExponential(1)}`);
});

test('candidate residual: outcome law incl. the fall-back rate; accepting w.p. (P−Q)⁺ instead of (P−Q)⁺/P is rejected', (t) => {
  const rng = new SessionRng(13);
  const V = 8;
  const P = randomGridDistribution(V, 7);
  const Q = randomGridDistribution(V, 8);
  const K = 3;
  const tv = totalVariation(P, Q);
  const fallback = (1 - tv) ** K;
  assert.ok(fallback > 0.05 && fallback < 0.9, `TV = ${tv}`);
  const res = residualLaw(P, Q);
  const expected = [...Array.from(res, (r) => (1 - fallback) * r), fallback]; // last bin = fall-back
  const n = 60_000;
  const run = (accept: (u: number, p: number, q: number) => boolean) =>
    histogram(n, V + 1, (k) => {
      const r = rng.round(1, k);
      const c = drawCandidates(P, K, r.candidateUniforms(1, K));
      const us = r.candidateAcceptUniforms(1, K);
      for (let i = 0; i < K; i++) if (accept(us[i], c.probs[i], Q[c.ids[i]])) return c.ids[i];
      return V;
    });
  const kernel = histogram(n, V + 1, (k) => {
    const r = rng.round(1, k);
    const c = drawCandidates(P, K, r.candidateUniforms(1, K));
    const out = resolveCandidates(c.ids, c.probs, Q, r.candidateAcceptUniforms(1, K));
    return out.fallback ? V : out.token;
  });
  const ok = chiSquareTest(kernel, expected);
  assert.ok(ok.p > ALPHA, `p = ${ok.p}`);
  assert.ok(Math.abs(kernel[V] / n - fallback) < 0.01, `fall-back rate ${kernel[V] / n} vs ${fallback}`);
  const bad = chiSquareTest(
    run((u, p, q) => u < Math.max(0, p - q)),
    expected,
  );
  assert.ok(bad.p < ALPHA, `planted bug not detected, p = ${bad.p}`);
  t.diagnostic(
    `TV = ${tv.toFixed(3)}, fall-back ${(kernel[V] / n).toFixed(4)} vs ${fallback.toFixed(4)}; kernel p = ${ok.p.toPrecision(3)}, planted bug p = ${bad.p.toExponential(1)}`,
  );
});

const invertedScan = (p: ArrayLike<number>, q: ArrayLike<number>, r: ArrayLike<number>): ScanResult => {
  for (let i = 0; i < q.length; i++) {
    if (!(r[i] < Math.min(1, p[i] === 0 ? Infinity : q[i] / p[i]))) return { accepted: i, rejectedAt: i + 1 };
  }
  return { accepted: q.length, rejectedAt: null };
};

function loopHistogram(model: ToyPair, N: number, gamma: number, n: number, run: (turn: number) => number[]) {
  const h = new Float64Array(model.V ** N);
  for (let t = 0; t < n; t++) h[run(t).reduce((a, y) => a * model.V + y, 0)]++;
  return h;
}

function lawVector(model: ToyPair, N: number): Float64Array {
  const v = new Float64Array(model.V ** N);
  for (const [key, p] of targetLaw(model, N))
    v[key.split(',').reduce((a, y) => a * model.V + Number(y), 0)] = p;
  return v;
}

test('the full speculative loop (DSSD, DSD, candidates) emits the target law; the inverted ratio is rejected', (t) => {
  const model = families(4, 17).find((m) => m.name === 'correlated') as ToyPair;
  const N = 3;
  const gamma = 2;
  const n = 40_000;
  const law = lawVector(model, N);
  const rng = new SessionRng(1);
  const dssd = loopHistogram(model, N, gamma, n, (t) => runLoop(model, N, gamma, rng, t, { mode: 'dssd' }));
  const ok = chiSquareTest(dssd, law);
  assert.ok(ok.p > ALPHA, `DSSD p = ${ok.p}`);
  // Same seed, same uniforms: DSD emits exactly the same sequences as DSSD.
  const dsd = loopHistogram(model, N, gamma, n, (t) => runLoop(model, N, gamma, rng, t, { mode: 'dsd' }));
  assert.deepEqual(dsd, dssd);
  const cand = loopHistogram(model, N, gamma, n, (t) =>
    runLoop(model, N, gamma, new SessionRng(78), t, { mode: 'candidate', K: 2 }),
  );
  const okCand = chiSquareTest(cand, law);
  assert.ok(okCand.p > ALPHA, `candidate p = ${okCand.p}`);
  const bad = loopHistogram(model, N, gamma, n, (t) =>
    runLoop(model, N, gamma, rng, t, { mode: 'dssd', scan: invertedScan }),
  );
  const rejected = chiSquareTest(bad, law);
  assert.ok(rejected.p < ALPHA, `inverted ratio not detected, p = ${rejected.p}`);
  t.diagnostic(
    `DSSD p = ${ok.p.toPrecision(3)}, candidates p = ${okCand.p.toPrecision(3)}, inverted ratio p = ${rejected.p.toExponential(1)}`,
  );
});

test('greedy: with temperature 0 the speculative loop reproduces argmax decoding token for token', () => {
  for (const V of [5, 50]) {
    const model = families(V, 23).find((m) => m.name === 'greedy') as ToyPair;
    const N = 40;
    const argmaxDecode: number[] = [];
    while (argmaxDecode.length < N) argmaxDecode.push(model.target(argmaxDecode).indexOf(1));
    for (const gamma of [1, 3, 6]) {
      for (const mode of ['dssd', 'dsd', 'candidate'] as const) {
        assert.deepEqual(
          runLoop(model, N, gamma, new SessionRng(5), 0, { mode }),
          argmaxDecode,
          `${mode} γ=${gamma}`,
        );
      }
    }
    // A draft that disagrees with the target: the inverted rule emits the draft's argmax instead.
    const buggy = runLoop(model, N, 3, new SessionRng(5), 0, { mode: 'dssd', scan: invertedScan });
    assert.notDeepEqual(buggy, argmaxDecode);
  }
});
