import test from 'node:test';
import assert from 'node:assert/strict';
import {
  chooseExactEncoding,
  CodecError,
  decodeFrame,
  draftFrameSize,
  encodeFrame,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  FRAME_TYPES,
  FRAME_VERSION,
  HEADER_SIZE,
  peekHeader,
  type Frame,
  type FrameContext,
} from '../src/index.js';
import { kernelDist, plain, reseal, Rng, sampleFrames, throwsCode } from './helpers.js';

/** What decoding should give back for `f` (f16/topk values rounded, 'auto' resolved, ids as arrays). */
function expected(f: Frame): unknown {
  const r16 = (p: Float32Array) => p.map((x) => float16BitsToFloat32(float32ToFloat16Bits(x)));
  if (f.kind === 'dsdDraft' && f.encoding === 'f16') return plain({ ...f, dists: f.dists.map(r16) });
  if (f.kind === 'verdict' && f.outcome === 'reject' && f.body.encoding !== 'candidates') {
    const b = f.body;
    if (b.encoding === 'f16') return plain({ ...f, body: { encoding: 'f16', p: r16(b.p) } });
    if (b.encoding === 'topk') return undefined; // covered by the distribution tests
    if (b.encoding === 'auto') return plain({ ...f, body: { encoding: chooseExactEncoding(b.p), p: b.p } });
    return plain({ ...f, body: { encoding: b.encoding, p: b.p } });
  }
  if (f.kind === 'verdict' && f.outcome === 'reject' && f.body.encoding === 'candidates') {
    return plain({ ...f, body: { ...f.body, probs: Array.from(f.body.probs, Math.fround) } });
  }
  if (f.kind === 'draft') return plain({ ...f, q: Array.from(f.q, Math.fround) });
  return plain(f);
}

test('every frame kind round-trips, with header fields and the size helpers matching', () => {
  const rng = new Rng(7);
  const kinds = new Set<string>();
  for (const V of [1, 2, 50, 1000, 70_000, 151_936]) {
    for (const { frame, size } of sampleFrames(rng, V)) {
      const ctx: FrameContext = { sessionId: 0xdeadbeef, round: rng.u32(), vocabSize: V };
      const bytes = encodeFrame(frame, ctx);
      if (size >= 0) assert.equal(bytes.length, size, `${frame.kind} size V=${V}`);
      const d = decodeFrame(bytes, { vocabSize: V, maxGamma: 16 });
      assert.equal(d.sessionId, 0xdeadbeef);
      assert.equal(d.round, ctx.round);
      const { sessionId: _s, round: _r, ...rest } = d;
      const want = expected(frame);
      if (want !== undefined) assert.deepEqual(plain(rest), want, `${frame.kind} V=${V}`);
      // Decoding is strict enough that re-encoding what it accepted gives the same bytes.
      if (frame.kind !== 'hello' && frame.kind !== 'welcome') assert.deepEqual(encodeFrame(d, ctx), bytes);
      kinds.add(frame.kind);
    }
  }
  assert.deepEqual([...kinds].sort(), Object.keys(FRAME_TYPES).sort());
});

test('header layout and a pinned draft frame', () => {
  // V = 1000 → 10-bit ids; γ = 2 with a previous token: 3 ids → 30 bits → 4 bytes.
  const bytes = encodeFrame(
    { kind: 'draft', ids: [1, 999], q: [0.5, 1], prevToken: 512 },
    { sessionId: 0x01020304, round: 7, vocabSize: 1000 },
  );
  const payload = [2, 1, 0, 0, 0, 0x3f, 0, 0, 0x80, 0x3f, 0x00, 0x06, 0x70, 0x3e];
  assert.deepEqual(Array.from(bytes.subarray(0, 16)), [
    0x44,
    0x53,
    FRAME_VERSION,
    4,
    4,
    3,
    2,
    1,
    7,
    0,
    0,
    0,
    14,
    0,
    0,
    0,
  ]);
  assert.deepEqual(Array.from(bytes.subarray(20)), payload);
  assert.equal(bytes.length, draftFrameSize(2, 1000, true));
  // With a candidate-trials report (flag bit 1): a u16 after the flags.
  const reported = encodeFrame(
    { kind: 'draft', ids: [1, 999], q: [0.5, 1], prevToken: 512, candidateTrials: 0x0103 },
    { sessionId: 0x01020304, round: 7, vocabSize: 1000 },
  );
  assert.deepEqual(Array.from(reported.subarray(20, 24)), [2, 3, 3, 1]);
  assert.equal(reported.length, draftFrameSize(2, 1000, true, true));
  assert.equal(
    decodeFrame(reported, { vocabSize: 1000 }).kind === 'draft' &&
      (decodeFrame(reported, { vocabSize: 1000 }) as { candidateTrials?: number }).candidateTrials,
    0x0103,
  );
  assert.deepEqual(peekHeader(bytes), {
    version: FRAME_VERSION,
    type: 4,
    kind: 'draft',
    sessionId: 0x01020304,
    round: 7,
    payloadLength: 14,
  });
  // The DSSD uplink for γ = 8 on Qwen (18-bit ids) stays small: 20 + 2 + 32 + 21 = 75 bytes.
  assert.equal(draftFrameSize(8, 151_936, true), 75);
});

test('the CRC catches every single-bit flip', () => {
  const rng = new Rng(8);
  for (const { frame } of sampleFrames(rng, 300).filter((_, i) => i % 3 === 0)) {
    const bytes = encodeFrame(frame, { sessionId: 1, round: 2, vocabSize: 300 });
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const m = bytes.slice();
      m[bit >> 3] ^= 1 << (bit & 7);
      const byte = bit >> 3;
      // Flips in magic/version/length are reported by those checks; every other flip must fail the CRC.
      const code =
        byte < 2 ? 'BadMagic' : byte === 2 ? 'BadVersion' : byte >= 12 && byte < 16 ? null : 'BadCrc';
      try {
        decodeFrame(m, { vocabSize: 300 });
        assert.fail(`flip of bit ${bit} in ${frame.kind} was not detected`);
      } catch (e) {
        assert.ok(e instanceof CodecError);
        if (code) assert.equal(e.code, code, `bit ${bit} of ${frame.kind}`);
      }
    }
  }
});

test('decode rejects truncation, extension, bad magic, version and type', () => {
  const V = 1000;
  const bytes = encodeFrame(
    { kind: 'turn', base: 3, ids: [1, 2, 0], maxNewTokens: 9 },
    { sessionId: 1, round: 1, vocabSize: V },
  );
  for (let n = 0; n < bytes.length; n++)
    throwsCode(() => decodeFrame(bytes.subarray(0, n), { vocabSize: V }), 'Truncated');
  const longer = new Uint8Array(bytes.length + 3);
  longer.set(bytes);
  throwsCode(() => decodeFrame(longer, { vocabSize: V }), 'BadLength');
  const magic = bytes.slice();
  magic[1] = 0x54;
  throwsCode(() => decodeFrame(magic, { vocabSize: V }), 'BadMagic');
  const version = bytes.slice();
  version[2] = FRAME_VERSION + 1;
  throwsCode(() => decodeFrame(version, { vocabSize: V }), 'BadVersion');
  for (const t of [0, 14, 255]) {
    const type = bytes.slice();
    type[3] = t;
    throwsCode(() => decodeFrame(reseal(type), { vocabSize: V }), 'UnknownType');
  }
  // A length field pointing past the end: Truncated; a payload edited without resealing: BadCrc.
  const len = bytes.slice();
  new DataView(len.buffer).setUint32(12, 1000, true);
  throwsCode(() => decodeFrame(len, { vocabSize: V }), 'Truncated');
  const edited = bytes.slice();
  edited[HEADER_SIZE + 8] ^= 0x10;
  throwsCode(() => decodeFrame(edited, { vocabSize: V }), 'BadCrc');
  // Inside the payload: a count larger than the ids present.
  const count = bytes.slice();
  new DataView(count.buffer).setUint32(HEADER_SIZE, 4, true);
  throwsCode(() => decodeFrame(reseal(count), { vocabSize: V }), 'Truncated');
  new DataView(count.buffer).setUint32(HEADER_SIZE, 2, true);
  throwsCode(() => decodeFrame(reseal(count), { vocabSize: V }), 'BadLength');
});

test('decode enforces the declared limits', () => {
  const V = 1000;
  const ctx = { sessionId: 1, round: 1, vocabSize: V };
  const draft = encodeFrame({ kind: 'draft', ids: [1, 2, 3, 4, 5], q: [1, 1, 1, 1, 1] }, ctx);
  throwsCode(() => decodeFrame(draft, { vocabSize: V, maxGamma: 4 }), 'OutOfRange');
  assert.equal(decodeFrame(draft, { vocabSize: V, maxGamma: 5 }).kind, 'draft');
  throwsCode(() => decodeFrame(draft, {}), 'BadArgument');
  throwsCode(() => decodeFrame(draft, { vocabSize: 4096 }), 'Truncated'); // 12-bit ids need more bytes
  throwsCode(
    () => decodeFrame(draft, { vocabSize: V, maxPayloadBytes: draft.length - HEADER_SIZE - 1 }),
    'TooLarge',
  );
  const turn = encodeFrame({ kind: 'turn', base: 3, ids: new Array(100).fill(7), maxNewTokens: 1 }, ctx);
  throwsCode(() => decodeFrame(turn, { vocabSize: V, maxTokens: 99 }), 'TooLarge');
  const ar = encodeFrame({ kind: 'arTokens', ids: [V - 1] }, ctx);
  throwsCode(() => decodeFrame(ar, { vocabSize: 600 }), 'OutOfRange');
  const hello = encodeFrame({ kind: 'hello', body: { pad: 'x'.repeat(100) } }, ctx);
  throwsCode(() => decodeFrame(hello, { maxJsonBytes: 100 }), 'TooLarge');
  const cands = encodeFrame(
    {
      kind: 'verdict',
      outcome: 'reject',
      j: 1,
      body: { encoding: 'candidates', ids: [1, 2, 3], probs: [1, 1, 1] },
    },
    ctx,
  );
  throwsCode(() => decodeFrame(cands, { vocabSize: V, maxCandidates: 2 }), 'TooLarge');
  const verdict = encodeFrame({ kind: 'verdict', outcome: 'accept', j: 9, token: 1 }, ctx);
  throwsCode(() => decodeFrame(verdict, { vocabSize: V, maxGamma: 7 }), 'OutOfRange');
  assert.equal(decodeFrame(verdict, { vocabSize: V, maxGamma: 8 }).kind, 'verdict');
  const err = encodeFrame({ kind: 'error', code: 3, message: 'é'.repeat(600) }, ctx);
  assert.equal(err.length, HEADER_SIZE + 2 + 1024); // cut to 1024 bytes on a character boundary
  throwsCode(() => decodeFrame(err, { maxErrorBytes: 1000 }), 'TooLarge');
  const d = decodeFrame(err, {});
  assert.equal(d.kind === 'error' && d.message, 'é'.repeat(512));
});

test('decode validates payload values', () => {
  const V = 1000;
  const ctx = { sessionId: 1, round: 1, vocabSize: V };
  const limits = { vocabSize: V };
  const json = (text: string | Uint8Array) => {
    const f = encodeFrame({ kind: 'hello', body: {} }, ctx);
    const body = typeof text === 'string' ? new TextEncoder().encode(text) : text;
    const out = new Uint8Array(HEADER_SIZE + body.length);
    out.set(f.subarray(0, HEADER_SIZE));
    out.set(body, HEADER_SIZE);
    new DataView(out.buffer).setUint32(12, body.length, true);
    return reseal(out);
  };
  assert.deepEqual(plain(decodeFrame(json('{"a":[1]}'), {})), {
    kind: 'hello',
    body: { a: [1] },
    sessionId: 1,
    round: 1,
  });
  for (const bad of ['[1,2]', 'null', '"s"', '{"a":', '', '{}x'])
    throwsCode(() => decodeFrame(json(bad), {}), 'BadValue', bad);
  throwsCode(() => decodeFrame(json(Uint8Array.of(0x7b, 0xff, 0x7d)), {}), 'BadValue');
  throwsCode(() => decodeFrame(json('['.repeat(60_000)), {}), 'BadValue');

  const draft = encodeFrame({ kind: 'draft', ids: [1], q: [0.5] }, ctx);
  const flags = draft.slice();
  flags[HEADER_SIZE + 1] = 4;
  throwsCode(() => decodeFrame(reseal(flags), limits), 'BadValue');
  for (const q of [0, -0.5, 1.5, NaN]) {
    const m = draft.slice();
    new DataView(m.buffer).setFloat32(HEADER_SIZE + 2, q, true);
    throwsCode(() => decodeFrame(reseal(m), limits), 'BadValue', `q = ${q}`);
  }
  const verdict = encodeFrame({ kind: 'verdict', outcome: 'accept', j: 2, token: 5 }, ctx);
  for (const [offset, value, code] of [
    [0, 5, 'OutOfRange'],
    [1, 6, 'OutOfRange'],
    [2, 0, 'OutOfRange'],
  ] as const) {
    const m = verdict.slice();
    m[HEADER_SIZE + offset] = value;
    throwsCode(() => decodeFrame(reseal(m), limits), code);
  }
  const done = encodeFrame({ kind: 'verdict', outcome: 'done', j: 2, done: 'eos' }, ctx);
  const noReason = done.slice();
  noReason[HEADER_SIZE + 1] = 0;
  throwsCode(() => decodeFrame(reseal(noReason), limits), 'BadValue');
  const tok = verdict.slice();
  new DataView(tok.buffer).setUint32(HEADER_SIZE + 3, V, true);
  throwsCode(() => decodeFrame(reseal(tok), limits), 'OutOfRange');
  const ping = encodeFrame({ kind: 'ping', t: 1 }, ctx);
  new DataView(ping.buffer).setFloat64(HEADER_SIZE, NaN, true);
  throwsCode(() => decodeFrame(reseal(ping), limits), 'BadValue');
  const dsd = encodeFrame(
    { kind: 'dsdDraft', ids: [3], dists: [kernelDist(new Rng(1), V, 3)], encoding: 'f16' },
    ctx,
  );
  const tag = dsd.slice();
  tag[HEADER_SIZE + 1] = 3;
  throwsCode(() => decodeFrame(reseal(tag), limits), 'UnknownType');
  const inf = dsd.slice();
  new DataView(inf.buffer).setUint16(HEADER_SIZE + 2, 0x7c00, true);
  throwsCode(() => decodeFrame(reseal(inf), limits), 'BadValue');
  const errUtf8 = encodeFrame({ kind: 'error', code: 1, message: 'ab' }, ctx);
  errUtf8[HEADER_SIZE + 2] = 0xc3; // a lead byte without its continuation
  throwsCode(() => decodeFrame(reseal(errUtf8), limits), 'BadValue');
});

test('encode refuses unrepresentable frames with BadArgument', () => {
  const ctx = { sessionId: 1, round: 1, vocabSize: 100 };
  const bad: Frame[] = [
    { kind: 'turn', base: 3, ids: [100], maxNewTokens: 1 },
    { kind: 'turn', base: 3, ids: [1], maxNewTokens: -1 },
    { kind: 'draft', ids: [1, 2], q: [0.5] },
    { kind: 'draft', ids: [1], q: [0] },
    { kind: 'draft', ids: [1], q: [0.5], prevToken: 100 },
    { kind: 'draft', ids: new Array(255).fill(0), q: new Array(255).fill(1) },
    { kind: 'dsdDraft', ids: [1], dists: [new Float32Array(99)], encoding: 'f32' },
    { kind: 'verdict', outcome: 'accept', j: 0, token: 1 },
    { kind: 'verdict', outcome: 'accept', j: 1, token: 100 },
    { kind: 'verdict', outcome: 'reject', j: 1, body: { encoding: 'token', p: new Float32Array(100) } },
    { kind: 'verdict', outcome: 'done', j: 1, done: 'nope' as 'eos' },
    { kind: 'fullResponse', j: 1, p: new Float32Array(10) },
    { kind: 'error', code: 65536, message: '' },
    { kind: 'ping', t: Infinity },
    { kind: 'hello', body: [] as unknown as Record<string, unknown> },
  ];
  for (const f of bad)
    throwsCode(() => encodeFrame(f, ctx), 'BadArgument', JSON.stringify(plain(f)).slice(0, 80));
  throwsCode(
    () => encodeFrame({ kind: 'turn', base: 3, ids: [], maxNewTokens: 1 }, { sessionId: 1, round: 1 }),
    'BadArgument',
  );
  throwsCode(() => encodeFrame({ kind: 'stop' }, { sessionId: -1, round: 1 }), 'BadArgument');
  assert.equal(
    encodeFrame({ kind: 'stop' }, { sessionId: 0xffffffff, round: 0xffffffff }).length,
    HEADER_SIZE,
  );
});
