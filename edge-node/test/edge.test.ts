/**
 * End-to-end over real WebRTC (@roamhq/wrtc on loopback) with the real default models: losslessness (greedy
 * identity, seeded DSD = DSSD, fidelity of the output law), accounting, and bad input.
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { loadNodeModel } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import { encodeFrame } from '@dssd/codec';
import { EDGE_NODE_DEFAULTS, ProtocolError, type DeviceOptions } from '@dssd/protocol';
import { DEFAULT_MODEL_DIRS, defaultPrompts } from '@dssd/models/node';
import { plantedRules } from '@dssd/protocol/testing';
import { releaseWebrtc } from '@dssd/protocol/node';
import { EdgeNode, Logger, connectNodeDevice } from '../src/index.js';
import { runFidelity } from '../src/drills/fidelity.js';
import { GREEDY_CONFIGS, devicePool } from './device-pool.js';

let node: EdgeNode;
let buggy: EdgeNode;
let draft: LanguageModel;

const PROMPTS = defaultPrompts(20);

before(async () => {
  const log = new Logger('silent');
  node = await EdgeNode.start({ port: 0, log });
  buggy = await EdgeNode.start({ port: 0, log, model: node.model, rules: plantedRules('inverted-ratio') });
  draft = await loadNodeModel(DEFAULT_MODEL_DIRS.draft);
});
after(async () => {
  closeDevices();
  await node.close();
  await buggy.close();
});

const pool = devicePool(
  () => node.url,
  () => draft,
);
const run = pool.run;
const closeDevices = pool.close;

/** Top-2 logit margin of the target at a prefix, to tell a real bug from a near-tie flipped by rounding. */
async function margin(prefix: number[]): Promise<number> {
  const s = node.model.createSession();
  try {
    const rows = await s.forward(prefix);
    const row = Array.from(rows[rows.length - 1]).sort((a, b) => b - a);
    return row[0] - row[1];
  } finally {
    s.dispose();
  }
}

test('greedy: dssd (every exact codec, serial and pipelined) and dsd produce text identical to ar for 20 prompts', async () => {
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  const configs = GREEDY_CONFIGS;
  let mismatches = 0;
  for (const prompt of PROMPTS) {
    const ref = (await run({ mode: 'ar', sampling: greedy }, prompt, 32)).r.tokens;
    for (const s of configs) {
      const got = (await run(s, prompt, 32)).r.tokens;
      if (got.join() !== ref.join()) {
        const k = got.findIndex((t, i) => t !== ref[i]);
        const m = await margin([...draft.tokenizer.encode(prompt), ...ref.slice(0, k)]);
        console.log(
          `mismatch: ${s.mode}/${s.codec}${s.pipeline ? ' pipelined' : ''} "${prompt}" at token ${k}, target top-2 logit margin ${m}`,
        );
        mismatches++;
      }
    }
  }
  assert.equal(mismatches, 0);
});

test('seeded sampling: dsd (f32 uplink) and dssd (f32 downlink) emit identical token streams', async () => {
  for (const seed of [1, 2, 3]) {
    for (const sampling of [
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 1, topK: 10, topP: 1 },
    ]) {
      const a = (
        await run({ mode: 'dsd', dsdPrecision: 'f32', gamma: 4, sampling, seed }, 'The jury said', 48)
      ).r;
      const b = (await run({ mode: 'dssd', codec: 'f32', gamma: 4, sampling, seed }, 'The jury said', 48)).r;
      assert.deepEqual(a.tokens, b.tokens, `seed ${seed}, top-k ${sampling.topK}`);
      assert.ok(a.stats.resampledTokens > 0, 'the runs include rejections');
    }
  }
});

test('fidelity: every exact codec passes at temperature 1 and top-k 10; planted bugs are rejected', async () => {
  const ALPHA = 1e-3; // significance; fixed seeds make each p-value deterministic
  const fid = (
    settings: DeviceOptions['settings'],
    o: { edge?: string; plantedBug?: 'no-max'; samples?: number } = {},
  ) =>
    runFidelity({
      edge: o.edge ?? node.url,
      prompt: 'The jury said',
      tokens: 2,
      samples: o.samples ?? 1500,
      settings: { gamma: 4, seed: 1, ...settings },
      plantedBug: o.plantedBug,
    });
  const t1 = { temperature: 1, topK: 0, topP: 1 };
  const k10 = { temperature: 1, topK: 10, topP: 1 };
  const rows: string[] = [];
  for (const [sampling, codecs] of [
    [t1, ['f32', 'sparse', 'grid', 'auto', 'candidates']],
    [k10, ['f32', 'sparse', 'candidates']],
  ] as const) {
    for (const codec of codecs) {
      const r = await fid({ mode: 'dssd', codec, sampling });
      rows.push(`dssd/${codec} top-k ${sampling.topK}: p = ${r.pValue.toPrecision(3)}`);
      assert.ok(r.pValue > ALPHA, rows[rows.length - 1]);
    }
    const d = await fid({ mode: 'dsd', sampling });
    rows.push(`dsd top-k ${sampling.topK}: p = ${d.pValue.toPrecision(3)}`);
    assert.ok(d.pValue > ALPHA, rows[rows.length - 1]);
    const pl = await fid({ mode: 'dssd', codec: 'auto', pipeline: true, gamma: 2, sampling });
    rows.push(`dssd/auto pipelined top-k ${sampling.topK}: p = ${pl.pValue.toPrecision(3)}`);
    assert.ok(pl.pValue > ALPHA, rows[rows.length - 1]);
  }
  // f16 is near-lossless: reported, not asserted.
  const f16 = await fid({ mode: 'dssd', codec: 'f16', sampling: t1 });
  rows.push(
    `dssd/f16 (lossy) top-k 0: p = ${f16.pValue.toPrecision(3)}, KS D = ${f16.ks.statistic.toFixed(4)}`,
  );
  const inv = await fid({ mode: 'dssd', codec: 'f32', sampling: t1 }, { edge: buggy.url, samples: 3000 });
  rows.push(`planted inverted ratio: p = ${inv.pValue.toPrecision(3)}`);
  assert.ok(inv.pValue < 1e-6, rows[rows.length - 1]);
  const nomax = await fid(
    { mode: 'dssd', codec: 'f32', sampling: t1 },
    { plantedBug: 'no-max', samples: 3000 },
  );
  rows.push(`planted missing max(0,·): p = ${nomax.pValue.toPrecision(3)}`);
  assert.ok(nomax.pValue < 1e-4, rows[rows.length - 1]);
  console.log(rows.join('\n'));
});

test('accounting: bytes the device counts as sent equal bytes the edge counts as received, and vice versa', async () => {
  closeDevices();
  await waitFor(async () => (await metricsOf(node)).sessions === 0);
  const before = await metricsOf(node);
  const { r } = await run(
    { mode: 'dssd', codec: 'candidates', gamma: 4, sampling: { temperature: 1, topK: 0, topP: 1 }, seed: 5 },
    'It was a',
    64,
  );
  closeDevices();
  await waitFor(async () => (await metricsOf(node)).sessions === 0);
  const after = await metricsOf(node);
  // The turn's frames plus the hello/welcome exchange, which the device counts before the turn starts.
  const up = after.up - before.up;
  const down = after.down - before.down;
  assert.ok(
    r.stats.uplinkBytes > 0 && r.stats.uplinkBytes < up,
    `turn uplink ${r.stats.uplinkBytes} of session ${up}`,
  );
  assert.ok(r.stats.downlinkBytes > 0 && r.stats.downlinkBytes < down);
  const m0 = await metricsOf(node);
  const dev = await connectNodeDevice({
    edge: node.url,
    settings: { mode: 'dssd', gamma: 4, sampling: { temperature: 0, topK: 0, topP: 1 } },
    draft,
  });
  await dev.session.generate(draft.tokenizer.encode('The church'), { maxNewTokens: 40 });
  const c = dev.session.transport.counters;
  const ts = await dev.session.transport.channel.transportStats?.();
  dev.close();
  await waitFor(async () => (await metricsOf(node)).sessions === 0);
  const m1 = await metricsOf(node);
  assert.equal(m1.up - m0.up, c.bytesSent);
  assert.equal(m1.down - m0.down, c.bytesReceived);
  if (EDGE_NODE_DEFAULTS.webrtc === 'wrtc')
    assert.ok(
      ts && ts.bytesSent > c.bytesSent && ts.bytesReceived > c.bytesReceived,
      'transport bytes include DTLS/SCTP overhead',
    );
  else assert.equal(ts, undefined, 'libdatachannel has no wire-level byte counters');
});

test('bad input: wrong tokenizer, too-long prompt, garbage frames get clear errors and the edge keeps serving', async () => {
  // A device whose tokenizer differs is refused at session start.
  const { connectEdge, DeviceSession, FrameTransport } = await import('@dssd/protocol');
  const WebSocket = (await import('ws')).default;
  const { createRequire } = await import('node:module');
  const wrtc = createRequire(import.meta.url)('@roamhq/wrtc');
  const open = async (tokenizerHash: string) => {
    const { channel } = await connectEdge({ url: node.url, WebSocket: WebSocket as never, wrtc });
    const transport = new FrameTransport(channel);
    const c = draft.config;
    return {
      transport,
      session: DeviceSession.open({
        transport,
        model: { tokenizerHash, vocabSize: c.vocabSize, maxContext: c.maxContext, eosTokenId: c.eosTokenId },
        drafter: draft.createSession(),
        settings: { mode: 'dssd' },
      }),
    };
  };
  const wrong = await open('0'.repeat(64));
  await assert.rejects(
    wrong.session,
    (e: ProtocolError) => e.code === 'TokenizerMismatch' && /tokenizer/.test(e.message),
  );
  wrong.transport.close();
  // A prompt longer than the context.
  const ok = await open(draft.tokenizerHash);
  const s = await ok.session;
  await assert.rejects(
    s.generate(new Array(600).fill(5), { maxNewTokens: 4 }),
    (e: ProtocolError) => e.code === 'PromptTooLong',
  );
  // Garbage and hostile frames: error frames, the same session still generates correctly afterwards.
  await ok.transport.send(new Uint8Array([0x44, 0x53, 1, 4, 0, 0, 0, 0]));
  await ok.transport.send(
    encodeFrame(
      { kind: 'draft', ids: [4095, 1], q: [1e-30, 1] },
      { sessionId: s.welcome.sessionId, round: 99, vocabSize: 4096 },
    ),
  );
  await new Promise((r) => setTimeout(r, 100));
  const greedy = await s.generate(draft.tokenizer.encode('The jury said'), { maxNewTokens: 16 });
  ok.transport.close();
  const ref = (await run({ mode: 'ar', sampling: { temperature: 1, topK: 0, topP: 1 } }, 'The jury said', 4))
    .r;
  assert.equal(ref.tokens.length, 4);
  assert.equal(greedy.tokens.length, 16);
  const m = await fetch(node.url + '/metrics').then((r) => r.text());
  assert.match(m, /dssd_errors_total\{code="TokenizerMismatch"\} [1-9]/);
  assert.match(m, /dssd_errors_total\{code="BadFrame"\} [1-9]/);
});

async function metricsOf(n: EdgeNode): Promise<{ up: number; down: number; sessions: number }> {
  const t = await fetch(n.url + '/metrics').then((r) => r.text());
  const v = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(t)?.[1] ?? NaN);
  return {
    up: v('dssd_bytes_up_total'),
    down: v('dssd_bytes_down_total'),
    sessions: v('dssd_sessions_active'),
  };
}

async function waitFor(cond: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Last: node-datachannel keeps the process alive while any peer connection is open (a test's leftover would hang the
// run rather than fail it).
after(() => releaseWebrtc());
