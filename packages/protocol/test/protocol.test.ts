import test from 'node:test';
import assert from 'node:assert/strict';
import { processLogits, sampleFrom } from '@dssd/kernel';
import { encodeFrame } from '@dssd/codec';
import {
  ProtocolError,
  ProtocolErrorCode,
  stopTokens,
  validateIdentity,
  type DeviceOptions,
  type DownlinkCodec,
} from '../src/index.js';
import { ToyLm, toyIdentity, toyPair } from './toy.js';

const greedy = { temperature: 0, topK: 0, topP: 1 };
const t1 = { temperature: 1, topK: 0, topP: 1 };

/** Plain sequential decoding with the toy target: the reference every mode must match when greedy. */
function argmaxDecode(V: number, prompt: number[], n: number): number[] {
  const lm = new ToyLm(V, 1);
  const out: number[] = [];
  const prefix = [...prompt];
  for (let i = 0; i < n; i++) {
    const P = processLogits(lm.logits(prefix), greedy);
    const t = sampleFrom(P, 0.5);
    out.push(t);
    prefix.push(t);
  }
  return out;
}

test('greedy: ar, dsd and dssd with every codec equal sequential argmax decoding, across turns', async () => {
  const prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [0, 0, 1]];
  for (const prompt of prompts) {
    const turn2 = [3, 3];
    const runs: Record<string, number[][]> = {};
    const configs: [string, object][] = [
      ['ar', { mode: 'ar' }],
      ['dsd', { mode: 'dsd', gamma: 3 }],
      ...(['auto', 'f32', 'f16', 'sparse', 'grid', 'topk', 'candidates'] as DownlinkCodec[]).map(
        (c): [string, object] => [`dssd-${c}`, { mode: 'dssd', codec: c, gamma: 3 }],
      ),
    ];
    for (const [name, s] of configs) {
      const p = await toyPair({ ...s, sampling: greedy } as never);
      const a = await p.device.generate(prompt, { maxNewTokens: 17 });
      const b = await p.device.generate(turn2, { maxNewTokens: 9 });
      runs[name] = [a.tokens, b.tokens];
      assert.equal(a.done, 'maxTokens');
      // Both caches hold a prefix of the committed history (the cache rules).
      assert.deepEqual(p.target.tokens, p.device.history.slice(0, p.target.tokens.length));
      assert.deepEqual(p.draft.tokens, p.device.history.slice(0, p.draft.tokens.length));
      p.device.close();
    }
    const ref1 = argmaxDecode(12, prompt, 17);
    const ref2 = argmaxDecode(12, [...prompt, ...ref1, ...turn2], 9);
    for (const [name, [a, b]] of Object.entries(runs)) {
      assert.deepEqual(a, ref1, `${name} turn 1 for prompt ${prompt}`);
      assert.deepEqual(b, ref2, `${name} turn 2 for prompt ${prompt}`);
    }
  }
});

test('seeded sampling: dsd (f32) and dssd with every exact dense codec emit identical streams', async () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const outs: number[][] = [];
    for (const s of [
      { mode: 'dsd', dsdPrecision: 'f32' },
      { mode: 'dssd', codec: 'f32' },
      { mode: 'dssd', codec: 'sparse' },
      { mode: 'dssd', codec: 'auto' },
    ]) {
      const p = await toyPair({ ...s, gamma: 4, sampling: t1, seed } as never);
      const r = await p.device.generate([1, 2], { maxNewTokens: 40 });
      const r2 = await p.device.generate([5], { maxNewTokens: 20 });
      outs.push([...r.tokens, -1, ...r2.tokens]);
      p.device.close();
    }
    for (const o of outs.slice(1)) assert.deepEqual(o, outs[0], `seed ${seed}`);
  }
});

test('rejections at j = 1 and all-accepted rounds both occur, and stats are consistent', async () => {
  const p = await toyPair(
    { mode: 'dssd', gamma: 4, sampling: t1, seed: 11, codec: 'candidates' },
    { noise: 2 },
  );
  const r = await p.device.generate([1], { maxNewTokens: 200 });
  const st = r.stats;
  assert.equal(r.tokens.length, 200);
  assert.ok(st.acceptancePerPosition[0] < 1 && st.acceptancePerPosition[0] > 0);
  assert.ok(st.bonusTokens > 0, 'some rounds accept all drafts');
  assert.ok(st.resampledTokens > 0, 'some rounds reject');
  assert.equal(st.bonusTokens + st.resampledTokens, st.rounds);
  // Every round commits its accepted drafts plus one token; the last round may be cut at the budget.
  assert.ok(st.acceptedTokens + st.rounds >= 200 && st.acceptedTokens + st.rounds <= 204);
  assert.equal(st.llmForwardPasses, st.rounds);
  assert.equal(p.edge.metrics.forwardPasses, st.rounds);
  // The edge never re-scores a token it already holds: tokens scored = history fed once + drafts.
  assert.ok(p.edge.metrics.tokensScored <= p.device.history.length + st.draftedTokens);
  assert.ok(st.uplinkBytes > 0 && st.downlinkBytes > 0);
  p.device.close();
});

test('context end: γ is clamped and the turn ends with contextEnd', async () => {
  const p = await toyPair({ mode: 'dssd', gamma: 6, sampling: greedy }, { maxContext: 20 });
  const r = await p.device.generate([1, 2, 3], { maxNewTokens: 100 });
  assert.equal(r.done, 'contextEnd');
  assert.equal(p.device.history.length, 20);
  assert.deepEqual(r.tokens, argmaxDecode(12, [1, 2, 3], 17));
  await assert.rejects(
    p.device.generate([4], { maxNewTokens: 5 }),
    (e: ProtocolError) => e.code === 'PromptTooLong',
  );
  p.device.close();
});

test('end of sequence ends the turn; the next turn continues after it', async () => {
  const ref = argmaxDecode(12, [2, 2], 30);
  const eos = ref[5];
  const cut = ref.indexOf(eos);
  const p = await toyPair({ mode: 'dssd', gamma: 4, sampling: greedy }, { eos });
  const r = await p.device.generate([2, 2], { maxNewTokens: 30 });
  assert.equal(r.done, 'eos');
  assert.deepEqual(r.tokens, ref.slice(0, cut));
  const r2 = await p.device.generate([1], { maxNewTokens: 4 });
  const full = [2, 2, ...ref.slice(0, cut + 1), 1];
  const ref2 = argmaxDecode(12, full, 4);
  const end2 = ref2.indexOf(eos);
  assert.deepEqual(r2.tokens, end2 >= 0 ? ref2.slice(0, end2) : ref2);
  assert.deepEqual(p.device.history.slice(0, full.length), full);
  p.device.close();
});

test("every one of the edge's stop tokens ends the turn (dssd, pipelined, dsd, ar); the list is validated", async () => {
  const ref = argmaxDecode(12, [2, 2], 30);
  // The end-of-sequence token comes late; an extra end-of-turn token (Qwen's <|im_end|> beside <|endoftext|>)
  // comes first and must end the answer on both sides.
  const extra = ref[3];
  const eos = ref.slice(4).find((t) => t !== extra && !ref.slice(0, 4).includes(t));
  assert.ok(eos !== undefined);
  const cut = ref.indexOf(extra);
  const configs: DeviceOptions['settings'][] = [
    { mode: 'dssd', gamma: 4, sampling: greedy },
    { mode: 'dssd', gamma: 2, sampling: greedy, pipeline: true },
    { mode: 'dsd', gamma: 3, sampling: greedy },
    { mode: 'ar', sampling: greedy },
  ];
  for (const s of configs) {
    const p = await toyPair(s, { eos, stops: [eos, extra] });
    const r = await p.device.generate([2, 2], { maxNewTokens: 30 });
    assert.equal(r.done, 'eos', `${s.mode}${s.pipeline ? ' pipelined' : ''}`);
    assert.deepEqual(r.tokens, ref.slice(0, cut), `${s.mode}${s.pipeline ? ' pipelined' : ''}`);
    assert.equal(p.device.history.at(-1), extra); // the stop token is in the history (the next turn follows it)
    p.device.close();
  }
  const id = { ...toyIdentity(12), stopTokenIds: [3, 5] };
  assert.deepEqual(validateIdentity(id).stopTokenIds, [3, 5]);
  assert.throws(() => validateIdentity({ ...id, stopTokenIds: [3, 12] }), /stopTokenIds\[1\]/);
  assert.throws(() => validateIdentity({ ...id, stopTokenIds: 3 }), /list of at most 16/);
  assert.deepEqual([...stopTokens(id)].sort(), [3, 5]);
});

test('a mismatched tokenizer is refused with a clear error', async () => {
  await assert.rejects(
    toyPair({ mode: 'dssd', sampling: t1 }, { deviceModel: { tokenizerHash: 'cd'.repeat(16) } }),
    (e: ProtocolError) =>
      e.code === ProtocolErrorCode.TokenizerMismatch && /tokenizer/.test(e.message) && e.remote,
  );
});

test('bad frames get error frames and the session keeps working', async () => {
  const p = await toyPair({ mode: 'dssd', gamma: 3, sampling: greedy });
  const send = (b: Uint8Array) => p.deviceTransport.send(b);
  // Garbage, a frame for another session, a draft outside a turn: each answered with an error frame.
  p.deviceTransport.onFrame(() => undefined);
  await send(new Uint8Array([1, 2, 3, 4, 5]));
  await send(encodeFrame({ kind: 'stop' }, { sessionId: 99, round: 0 }));
  await send(encodeFrame({ kind: 'draft', ids: [1], q: [0.5] }, { sessionId: 7, round: 0, vocabSize: 12 }));
  await p.edge.idle();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(p.edge.metrics.errors, 3);
  // Re-attach the device's handler by opening a fresh session on the same edge state is not needed: the
  // device session object still works once its handler is back.
  p.device.close();
  const q = await toyPair({ mode: 'dssd', gamma: 3, sampling: greedy });
  await q.deviceTransport.send(new Uint8Array([9, 9, 9]));
  await new Promise((r) => setTimeout(r, 20));
  const r = await q.device.generate([1, 2, 3], { maxNewTokens: 10 });
  assert.deepEqual(r.tokens, argmaxDecode(12, [1, 2, 3], 10));
  q.device.close();
});
