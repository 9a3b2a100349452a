// Model latency and pair acceptance: `npx tsc -b packages/models && npm run bench -w @dssd/models`
// (root: `npm run bench:models`). Options: --threads N (ORT intra-op threads, default 1), --reps N (default 60).
// Prints per-forward latency (median/p90 ms) of the default draft and target in Node for 1 token and γ+1 = 5 tokens
// after a 128-token context and for a 128-token prefill, then the pair's acceptance on held-out text and on the
// target's own samples (what the draft faces in use: DSSD's output is the target's sampling).
// heldout.txt: excerpts of the 24 validation documents of the training corpus (Brown Corpus files the models never
// saw in training; redistribution permitted by its README), one paragraph per document. Not a test.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SessionRng, argmax, expectedTokensPerRound, processLogits, sampleFrom } from '@dssd/kernel';
import type { SamplingParams } from '@dssd/kernel';
import type { LanguageModel, ModelSession } from '../src/index.js';
import { loadNodeModel } from '../src/node.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const THREADS = arg('threads', 1);
const REPS = arg('reps', 60);
const CONTEXT = 128;
const GAMMAS = [2, 4, 6, 8];

const MODELS = fileURLToPath(new URL('../../../../models/default/', import.meta.url));
const TEXT = readFileSync(fileURLToPath(new URL('../../bench/heldout.txt', import.meta.url)), 'utf8');

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Median and p90 (ms) of `reps` timed calls, after a few untimed warm-ups; `setup` is not timed. */
async function timeIt(reps: number, setup: () => void, run: () => Promise<unknown>) {
  const times: number[] = [];
  for (let i = 0; i < reps + 5; i++) {
    setup();
    const t0 = performance.now();
    await run();
    if (i >= 5) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: quantile(times, 0.5), p90: quantile(times, 0.9) };
}

async function latency(m: LanguageModel, ids: number[]) {
  const s = m.createSession();
  await s.forward(ids.slice(0, CONTEXT));
  const one = await timeIt(
    REPS,
    () => s.truncate(CONTEXT),
    () => s.forward([ids[CONTEXT]]),
  );
  const five = await timeIt(
    REPS,
    () => s.truncate(CONTEXT),
    () => s.forward(ids.slice(CONTEXT, CONTEXT + 5)),
  );
  const pre = await timeIt(
    Math.ceil(REPS / 3),
    () => s.reset(),
    () => s.prefill(ids.slice(0, CONTEXT)),
  );
  s.dispose();
  return { one, five, pre };
}

const SETTINGS: [string, SamplingParams | null][] = [
  ['temperature 1', { temperature: 1, topK: 0, topP: 1 }],
  ['top-k 10', { temperature: 1, topK: 10, topP: 1 }],
  ['greedy', null],
];

/** α per setting: mean over positions of Σ min(P, Q) (greedy: fraction of positions whose argmaxes agree). */
async function acceptance(target: ModelSession, draft: ModelSession, docs: number[][]) {
  const sums = SETTINGS.map(() => 0);
  let positions = 0;
  for (const ids of docs) {
    target.reset();
    draft.reset();
    const P = await target.forward(ids);
    const Q = await draft.forward(ids);
    for (let i = 0; i < ids.length; i++) {
      SETTINGS.forEach(([, params], k) => (sums[k] += overlap(P[i], Q[i], params)));
    }
    positions += ids.length;
  }
  return { alphas: sums.map((s) => s / positions), positions };
}

/** Overlap of two processed distributions: Σ min(p, q) (greedy: 1 when the argmaxes agree). */
function overlap(P: Float32Array, Q: Float32Array, params: SamplingParams | null): number {
  if (!params) return argmax(P) === argmax(Q) ? 1 : 0;
  const p = processLogits(P, params);
  const q = processLogits(Q, params);
  let o = 0;
  for (let v = 0; v < p.length; v++) o += Math.min(p[v], q[v]);
  return o;
}

/**
 * α on the target's own continuations: each document's first PROMPT tokens, then GENERATED tokens sampled from
 * the target under the setting itself (seeded, kernel sampler), α averaged over the generated positions. This is
 * the acceptance a DSSD session sees, since its output is distributed as the target's sampling; corpus text is
 * not what the draft is asked to predict in use.
 */
const PROMPT = 16;
const GENERATED = 96;
async function acceptanceOnSamples(target: ModelSession, draft: ModelSession, docs: number[][]) {
  const rng = new SessionRng(7);
  const alphas: number[] = [];
  let positions = 0;
  for (const [, params] of SETTINGS) {
    let sum = 0;
    positions = 0;
    for (let d = 0; d < docs.length; d++) {
      target.reset();
      draft.reset();
      const ids = docs[d].slice(0, PROMPT);
      let P = await target.prefill(ids);
      let Q = await draft.prefill(ids);
      for (let n = 0; n < GENERATED; n++) {
        sum += overlap(P, Q, params);
        positions++;
        const next = params ? sampleFrom(processLogits(P, params), rng.ar(d, n)) : argmax(P);
        [P, Q] = [await target.decodeOne(next), await draft.decodeOne(next)];
      }
    }
    alphas.push(sum / positions);
  }
  return { alphas, positions };
}

const fmt = (x: number) => x.toFixed(2).padStart(7);

function printAlphas(alphas: number[]) {
  console.log(`setting        |   alpha | E[tokens/round] for gamma = ${GAMMAS.join(', ')}`);
  SETTINGS.forEach(([label], k) => {
    const a = alphas[k];
    const lens = GAMMAS.map((g) => expectedTokensPerRound(a, g).toFixed(2)).join('   ');
    console.log(`${label.padEnd(14)} | ${a.toFixed(3).padStart(7)} | ${lens}`);
  });
}

async function main() {
  const models: Record<string, LanguageModel> = {};
  for (const name of ['draft', 'target']) {
    const t0 = performance.now();
    models[name] = await loadNodeModel(MODELS + name, { threads: THREADS });
    console.log(`loaded ${name} in ${(performance.now() - t0).toFixed(0)} ms`);
  }
  const { draft, target } = models;
  if (draft.tokenizerHash !== target.tokenizerHash)
    throw new Error('the default pair does not share a tokenizer');

  const docs = TEXT.split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => [draft.config.eosTokenId, ...draft.tokenizer.encode(p)].slice(0, 512));
  const longest = docs.reduce((a, b) => (b.length > a.length ? b : a));
  const ids = [...longest, ...docs.flat()].slice(0, CONTEXT + 5);

  console.log(
    `\nPer-forward latency in Node, onnxruntime-node CPU EP, ${THREADS} intra-op thread(s), ${REPS} runs`,
  );
  console.log('model   | 1 token @128 med / p90 | 5 tokens @128 med / p90 | prefill 128 med / p90  (ms)');
  const lat: Record<string, Awaited<ReturnType<typeof latency>>> = {};
  for (const name of ['draft', 'target']) {
    const r = await latency(models[name], ids);
    lat[name] = r;
    console.log(
      `${name.padEnd(7)} | ${fmt(r.one.median)} / ${fmt(r.one.p90)}      | ${fmt(r.five.median)} / ${fmt(r.five.p90)}       |` +
        ` ${fmt(r.pre.median)} / ${fmt(r.pre.p90)}`,
    );
  }
  console.log(
    `draft/target cost ratio (1 token): ${(lat.draft.one.median / lat.target.one.median).toFixed(2)}`,
  );

  const t0 = performance.now();
  const ts = target.createSession();
  const ds = draft.createSession();
  const { alphas, positions } = await acceptance(ts, ds, docs);
  console.log(
    `\nAcceptance on held-out text: ${docs.length} documents, ${positions} positions ` +
      `(${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  printAlphas(alphas);
  const t1 = performance.now();
  const onSamples = await acceptanceOnSamples(ts, ds, docs);
  console.log(
    `\nAcceptance on the target's own samples: ${docs.length} held-out prompts of ${PROMPT} tokens, ` +
      `${GENERATED} tokens sampled from the target under each setting, ${onSamples.positions} positions per setting ` +
      `(${((performance.now() - t1) / 1000).toFixed(1)} s)`,
  );
  printAlphas(onSamples.alphas);
  ts.dispose();
  ds.dispose();
  await draft.dispose();
  await target.dispose();
}

await main();
