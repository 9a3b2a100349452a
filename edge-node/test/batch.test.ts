/**
 * Batched verification (`batch` on) over real WebRTC with the real default models: several concurrent sessions of
 * different history lengths and modes share batched target passes; greedy output equals unbatched edge-only
 * decoding (near-ties of the target, |P(top1) − P(top2)| < 1e-3, are reported, not failed), and the output law
 * passes the fidelity test while other sessions keep the batches full.
 */
import test, { after, before } from 'node:test';
import { releaseWebrtc } from '@dssd/protocol/node';
import assert from 'node:assert/strict';
import { loadNodeModel, DEFAULT_MODEL_DIRS, defaultPrompts } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import { processLogits } from '@dssd/kernel';
import type { DeviceOptions } from '@dssd/protocol';
import { EdgeNode, Logger, connectNodeDevice } from '../src/index.js';
import { runFidelity } from '../src/drills/fidelity.js';

let batched: EdgeNode;
let plain: EdgeNode;
let draft: LanguageModel;
const GREEDY = { temperature: 0, topK: 0, topP: 1 };
const T1 = { temperature: 1, topK: 0, topP: 1 };

before(async () => {
  const log = new Logger('silent');
  batched = await EdgeNode.start({ port: 0, log, batch: {} });
  plain = await EdgeNode.start({ port: 0, log, model: batched.model });
  draft = await loadNodeModel(DEFAULT_MODEL_DIRS.draft);
});
after(async () => {
  await batched.close();
  await plain.close();
  releaseWebrtc(); // a leftover node-datachannel peer connection would keep the test process alive
});

/** |P(top1) − P(top2)| of the target after `prefix` (the load tool's near-tie rule). */
async function tieMargin(prefix: number[]): Promise<number> {
  const s = plain.model.createSession();
  try {
    const rows = await s.forward(prefix, { keep: 1 });
    const p = Array.from(processLogits(rows[0], T1)).sort((a, b) => b - a);
    return p[0] - p[1];
  } finally {
    s.dispose();
  }
}

test('greedy under batching: concurrent sessions of different histories and modes equal unbatched ar', async () => {
  // Histories of different lengths: prompts repeated 1–4 times.
  const prompts = defaultPrompts(6).map((p, i) => Array.from({ length: 1 + (i % 4) }, () => p).join(' '));
  const configs: DeviceOptions['settings'][] = [
    { mode: 'dssd', gamma: 4, codec: 'auto', sampling: GREEDY },
    { mode: 'dssd', gamma: 3, codec: 'candidates', pipeline: true, sampling: GREEDY },
    { mode: 'dsd', gamma: 4, sampling: GREEDY },
    { mode: 'ar', sampling: GREEDY },
    { mode: 'dssd', gamma: 5, codec: 'sparse', sampling: GREEDY },
    { mode: 'dssd', gamma: 2, codec: 'f32', sampling: GREEDY },
  ];
  const ref = await connectNodeDevice({ edge: plain.url, settings: { mode: 'ar', sampling: GREEDY }, draft });
  const refs: number[][] = [];
  for (const p of prompts) {
    ref.session.rewind(0);
    refs.push((await ref.session.generate(draft.tokenizer.encode(p), { maxNewTokens: 32 })).tokens);
  }
  ref.close();
  const devs = await Promise.all(
    configs.map((settings) => connectNodeDevice({ edge: batched.url, settings, draft })),
  );
  const before = { ...batched.batcher!.scheduler.stats };
  try {
    const got = await Promise.all(
      devs.map((d, i) => d.session.generate(draft.tokenizer.encode(prompts[i]), { maxNewTokens: 32 })),
    );
    let ties = 0;
    for (let i = 0; i < got.length; i++) {
      const k = got[i].tokens.findIndex((t, j) => t !== refs[i][j]);
      if (k < 0 && got[i].tokens.length === refs[i].length) continue;
      const m = await tieMargin([...draft.tokenizer.encode(prompts[i]), ...refs[i].slice(0, k)]);
      console.log(`session ${i} (${configs[i].mode}) differs at token ${k}: target top-2 margin ${m}`);
      assert.ok(m < 1e-3, `session ${i} differs from ar at token ${k} without a near-tie (margin ${m})`);
      ties++;
    }
    const s = batched.batcher!.scheduler.stats;
    const perPass = (s.items - before.items) / (s.passes - before.passes);
    console.log(
      `near-ties ${ties}; ${s.passes - before.passes} batched passes, ${perPass.toFixed(2)} sessions per pass`,
    );
    assert.ok(perPass > 1.3, `the sessions were batched together (${perPass.toFixed(2)} per pass)`);
  } finally {
    for (const d of devs) d.close();
  }
});

test('fidelity under batching: the output law is exact while other sessions share every pass', async () => {
  const background = await Promise.all(
    [0, 1, 2].map(() =>
      connectNodeDevice({
        edge: batched.url,
        settings: { mode: 'dssd', gamma: 4, sampling: T1, seed: 3 },
        draft,
      }),
    ),
  );
  let stop = false;
  const busy = background.map(async (d, i) => {
    const ids = draft.tokenizer.encode(defaultPrompts(3)[i]);
    while (!stop) {
      d.session.rewind(0);
      await d.session.generate(ids, { maxNewTokens: 24 });
    }
  });
  const before = { ...batched.batcher!.scheduler.stats };
  try {
    for (const settings of [
      { mode: 'dssd', codec: 'candidates', gamma: 4, seed: 1, sampling: T1 },
      { mode: 'dssd', codec: 'auto', pipeline: true, gamma: 2, seed: 1, sampling: T1 },
    ] as DeviceOptions['settings'][]) {
      const r = await runFidelity({
        edge: batched.url,
        prompt: 'The jury said',
        tokens: 2,
        samples: 1000,
        settings,
      });
      console.log(
        `batched fidelity ${settings.codec}${settings.pipeline ? ' pipelined' : ''}: p = ${r.pValue.toPrecision(3)}`,
      );
      assert.ok(r.pValue > 1e-3, `p = ${r.pValue}`);
    }
  } finally {
    stop = true;
    await Promise.allSettled(busy);
    for (const d of background) d.close();
  }
  const s = batched.batcher!.scheduler.stats;
  assert.ok((s.items - before.items) / (s.passes - before.passes) > 1.3, 'passes were shared');
});
