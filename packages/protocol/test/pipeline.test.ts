/**
 * Pipelined drafting over real sessions (toy models, in-memory channel, an edge padded so blocks really overlap):
 * greedy output equals sequential argmax for every codec across turns; at temperature 1 the emitted law of the
 * first tokens matches the target's (chi-square), and a planted inverted ratio is rejected by the same check;
 * a stop mid-answer leaves in-flight blocks stale and the next turn exact.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { processLogits, sampleFrom, type RoundRules } from '@dssd/kernel';
import {
  DeviceSession,
  EdgeSession,
  FrameTransport,
  memoryChannelPair,
  type DownlinkCodec,
  type PartialSettings,
} from '../src/index.js';
import { plantedRules } from '../src/testing/index.js';
import { ToyLm, toyIdentity } from './toy.js';

const greedy = { temperature: 0, topK: 0, topP: 1 };
const t1 = { temperature: 1, topK: 0, topP: 1 };
const V = 12;

async function pipelinedPair(
  settings: Partial<PartialSettings>,
  o: { rules?: RoundRules; passMs?: number } = {},
) {
  const [a, b] = memoryChannelPair();
  const deviceT = new FrameTransport(a);
  const edgeT = new FrameTransport(b);
  const target = new ToyLm(V, 1);
  const draft = new ToyLm(V, 1, 1.5, 7);
  const edge = new EdgeSession({
    sessionId: 3,
    model: toyIdentity(V),
    createTarget: () => target,
    secretSeed: 99,
    targetCost: { a: o.passMs ?? 2, b: 0 },
    // Thousands of short turns in a row: the per-session round budget is not what these tests are about.
    limits: { maxRoundsPerSecond: Infinity },
    send: (f) => edgeT.send(f),
    ...(o.rules ? { rules: o.rules } : {}),
  });
  edgeT.onFrame((f) => void edge.handle(f));
  const device = await DeviceSession.open({
    transport: deviceT,
    model: toyIdentity(V),
    drafter: draft,
    settings: { mode: 'dssd', pipeline: true, ...settings },
    secretSeed: 5,
    timeoutMs: 5000,
  });
  return { device, edge, target, draft };
}

function argmaxDecode(prompt: number[], n: number): number[] {
  const lm = new ToyLm(V, 1);
  const prefix = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = sampleFrom(processLogits(lm.logits(prefix), greedy), 0.5);
    out.push(t);
    prefix.push(t);
  }
  return out;
}

test('pipelined greedy output equals sequential argmax for every codec, block size and window, across turns', async () => {
  let wasted = 0;
  for (const codec of ['auto', 'f32', 'f16', 'sparse', 'grid', 'topk', 'candidates'] as DownlinkCodec[]) {
    for (const [gamma, window] of [
      [1, 3],
      [3, 0],
      [4, 12],
    ]) {
      const p = await pipelinedPair({ codec, gamma, window, sampling: greedy });
      const prompt = [1, 2, 3];
      const a = await p.device.generate(prompt, { maxNewTokens: 19 });
      const b = await p.device.generate([4, 4], { maxNewTokens: 7 });
      const ref1 = argmaxDecode(prompt, 19);
      assert.deepEqual(a.tokens, ref1, `${codec} γ ${gamma} window ${window}`);
      assert.deepEqual(b.tokens, argmaxDecode([...prompt, ...ref1, 4, 4], 7), `${codec} turn 2`);
      assert.equal(a.stats.bonusTokens, 0, 'a pipelined block never gets a bonus');
      assert.ok(Math.max(...a.stats.gammas) <= gamma);
      wasted += a.stats.wastedDrafts + b.stats.wastedDrafts;
      // Both caches hold a prefix of the committed history.
      assert.deepEqual(p.target.tokens, p.device.history.slice(0, p.target.tokens.length));
      p.device.close();
    }
  }
  // Drafting ahead really happened: drafts past a rejection were thrown away.
  assert.ok(wasted > 0, 'no draft was ever discarded: the pipeline never overlapped');
});

/** Chi-square survival by the Wilson–Hilferty cube-root normal approximation (ample for p thresholds ~1e-6). */
function chiSquareP(stat: number, df: number): number {
  const z = (Math.cbrt(stat / df) - (1 - 2 / (9 * df))) / Math.sqrt(2 / (9 * df));
  return 0.5 * erfc(z / Math.SQRT2);
}
function erfc(x: number): number {
  // Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7).
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const r = y * Math.exp(-x * x);
  return x >= 0 ? r : 2 - r;
}

/** Samples `n` two-token continuations of `prompt` from one pipelined session; returns the chi-square p-value. */
async function lawP(n: number, rules?: RoundRules): Promise<number> {
  const p = await pipelinedPair({ codec: 'sparse', gamma: 1, window: 3, sampling: t1 }, { rules, passMs: 1 });
  const prompt = [2, 7];
  const lm = new ToyLm(V, 1);
  const P1 = processLogits(lm.logits(prompt), t1);
  const expected = new Float64Array(V * V);
  for (let x = 0; x < V; x++) {
    const P2 = processLogits(lm.logits([...prompt, x]), t1);
    for (let y = 0; y < V; y++) expected[x * V + y] = P1[x] * P2[y] * n;
  }
  const counts = new Float64Array(V * V);
  for (let i = 0; i < n; i++) {
    if (i > 0) p.device.rewind(prompt.length - 1);
    const r = await p.device.generate(i === 0 ? prompt : [prompt[prompt.length - 1]], { maxNewTokens: 2 });
    counts[r.tokens[0] * V + r.tokens[1]]++;
  }
  p.device.close();
  // Pool cells expected below 5 into one, as a chi-square test needs.
  let stat = 0;
  let df = -1;
  let poolE = 0;
  let poolO = 0;
  for (let k = 0; k < V * V; k++) {
    if (expected[k] < 5) {
      poolE += expected[k];
      poolO += counts[k];
      continue;
    }
    stat += (counts[k] - expected[k]) ** 2 / expected[k];
    df++;
  }
  if (poolE > 0) {
    stat += (poolO - poolE) ** 2 / poolE;
    df++;
  }
  return chiSquareP(stat, df);
}

test('pipelined sampling emits the target law (chi-square on two tokens); a planted inverted ratio is rejected', async (t) => {
  const ok = await lawP(2500);
  const bad = await lawP(2500, plantedRules('inverted-ratio'));
  t.diagnostic(`exact p = ${ok.toPrecision(3)}, inverted ratio p = ${bad.toExponential(1)}`);
  assert.ok(ok > 1e-4, `pipelined law rejected, p = ${ok}`);
  assert.ok(bad < 1e-6, `planted bug not detected, p = ${bad}`);
});

test('a stop mid-answer leaves in-flight blocks stale; the next turn is exact and numbered blocks only increase', async () => {
  const p = await pipelinedPair({ codec: 'auto', gamma: 2, window: 8, sampling: greedy }, { passMs: 5 });
  const ac = new AbortController();
  const prompt = [3, 1];
  const first = p.device.generate(prompt, {
    maxNewTokens: 40,
    signal: ac.signal,
    onTokens: () => ac.abort(),
  });
  const r = await first;
  assert.equal(r.done, 'stopped');
  const rounds = p.edge.metrics.rounds;
  await new Promise((res) => setTimeout(res, 50));
  await p.edge.idle();
  // Nothing was verified after the stop, and no error frame was sent for the dropped blocks.
  assert.equal(p.edge.metrics.rounds, rounds);
  assert.equal(p.edge.metrics.errors, 0);
  const committed = p.device.history.slice(prompt.length);
  const next = await p.device.generate([5], { maxNewTokens: 6 });
  assert.deepEqual(next.tokens, argmaxDecode([...prompt, ...committed, 5], 6));
  p.device.close();
});
