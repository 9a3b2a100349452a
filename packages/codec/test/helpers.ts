// Shared test utilities (not a test file itself): a small seeded PRNG and kernel-like distributions.
import assert from 'node:assert/strict';
import {
  arTokensFrameSize,
  CodecError,
  draftFrameSize,
  dsdDraftFrameSize,
  encodedSize,
  frameCrc,
  fullRequestFrameSize,
  fullResponseFrameSize,
  HEADER_SIZE,
  pingFrameSize,
  turnFrameSize,
  verdictFrameSize,
  type CodecErrorCode,
  type Frame,
} from '../src/index.js';

/** sfc32: small, fast, deterministic. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }
  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }
  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

/**
 * A distribution like the kernel produces: `support` distinct random ids whose values are positive multiples of
 * 2^-24 summing to exactly 1.
 */
export function kernelDist(rng: Rng, vocabSize: number, support: number): Float32Array {
  const p = new Float32Array(vocabSize);
  const n = Math.min(support, vocabSize);
  const ids = new Set<number>();
  while (ids.size < n) ids.add(rng.int(vocabSize));
  const cuts = new Set<number>();
  while (cuts.size < n - 1) cuts.add(1 + rng.int((1 << 24) - 1));
  const sorted = [0, ...[...cuts].sort((x, y) => x - y), 1 << 24];
  let k = 0;
  for (const id of ids) {
    p[id] = (sorted[k + 1] - sorted[k]) * 2 ** -24;
    k++;
  }
  return p;
}

/** Asserts that `fn` throws a CodecError with the given code. */
export function throwsCode(fn: () => unknown, code: CodecErrorCode, msg?: string): void {
  assert.throws(
    fn,
    (e: unknown) => {
      assert.ok(e instanceof CodecError, `expected CodecError, got ${String(e)}`);
      assert.equal(e.code, code, `${msg ?? ''} (message: ${e.message})`);
      return true;
    },
    msg,
  );
}

/** Recomputes the CRC of a (possibly tampered) frame so that decoding reaches the payload checks. */
export function reseal(frame: Uint8Array): Uint8Array {
  const out = frame.slice();
  if (out.length >= 20) new DataView(out.buffer).setUint32(16, frameCrc(out), true);
  return out;
}

/** Plain-data view of a frame for deep comparison (typed arrays become arrays, -0 kept distinct). */
export function plain(x: unknown): unknown {
  if (ArrayBuffer.isView(x)) return Array.from(x as unknown as ArrayLike<number>);
  if (Array.isArray(x)) return x.map(plain);
  if (x && typeof x === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (v !== undefined) o[k] = plain(v);
    return o;
  }
  return x;
}

function randomIds(rng: Rng, n: number, V: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? V - 1 : rng.int(V)));
}

function randomQ(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => Math.fround(1 - rng.float()));
}

/** One frame of every kind and variant, with its expected size. */
export function sampleFrames(rng: Rng, V: number): { frame: Frame; size: number }[] {
  const g = 1 + rng.int(8);
  const ids = randomIds(rng, g, V);
  const p = kernelDist(rng, V, Math.min(V, 1 + rng.int(12)));
  const oneHot = new Float32Array(V);
  oneHot[rng.int(V)] = 1;
  const dists = Array.from({ length: g }, () => kernelDist(rng, V, Math.min(V, 5)));
  const out: { frame: Frame; size: number }[] = [
    { frame: { kind: 'hello', body: { model: 'qwen', gamma: g, nested: { a: [1, 2] } } }, size: -1 },
    { frame: { kind: 'welcome', body: { vocabSize: V, ok: true } }, size: -1 },
    {
      frame: { kind: 'turn', base: 3, ids: randomIds(rng, 37, V), maxNewTokens: 128 },
      size: turnFrameSize(37, V),
    },
    { frame: { kind: 'turn', base: 3, ids: [], maxNewTokens: 0xffffffff }, size: turnFrameSize(0, V) },
    { frame: { kind: 'draft', ids, q: randomQ(rng, g) }, size: draftFrameSize(g, V) },
    {
      frame: { kind: 'draft', ids, q: randomQ(rng, g), prevToken: rng.int(V) },
      size: draftFrameSize(g, V, true),
    },
    { frame: { kind: 'draft', ids: [], q: [], prevToken: V - 1 }, size: draftFrameSize(0, V, true) },
    {
      frame: { kind: 'draft', ids, q: randomQ(rng, g), prevToken: 0, candidateTrials: rng.int(3) },
      size: draftFrameSize(g, V, true, true),
    },
    { frame: { kind: 'dsdDraft', ids, dists, encoding: 'f32' }, size: dsdDraftFrameSize(g, V, 'f32') },
    { frame: { kind: 'dsdDraft', ids, dists, encoding: 'f16' }, size: dsdDraftFrameSize(g, V, 'f16') },
    {
      frame: { kind: 'verdict', outcome: 'accept', j: g + 1, token: rng.int(V) },
      size: verdictFrameSize('accept'),
    },
    {
      frame: { kind: 'verdict', outcome: 'resample', j: 1, token: V - 1, done: 'maxTokens' },
      size: verdictFrameSize('resample'),
    },
    { frame: { kind: 'verdict', outcome: 'done', j: 3, done: 'eos' }, size: verdictFrameSize('done') },
    { frame: { kind: 'verdict', outcome: 'accepted', j: g + 1 }, size: verdictFrameSize('accepted') },
    { frame: { kind: 'fullRequest', j: g }, size: fullRequestFrameSize() },
    { frame: { kind: 'fullResponse', j: g, p }, size: fullResponseFrameSize(p) },
    { frame: { kind: 'arTokens', ids: randomIds(rng, 5, V) }, size: arTokensFrameSize(5, V) },
    { frame: { kind: 'arTokens', ids: [], done: 'contextEnd' }, size: arTokensFrameSize(0, V) },
    { frame: { kind: 'error', code: 0xffff, message: 'edge overloaded — réessayez 🙂' }, size: -1 },
    { frame: { kind: 'stop' }, size: HEADER_SIZE },
    { frame: { kind: 'ping', t: 1722333444555.25 }, size: pingFrameSize() },
    { frame: { kind: 'pong', t: -0 }, size: pingFrameSize() },
  ];
  for (const encoding of ['f32', 'f16', 'sparse', 'topk', 'grid', 'auto'] as const) {
    const body = { encoding, p, topK: 3 };
    const size = verdictFrameSize('reject', encodedSize(p, encoding, body));
    out.push({
      frame: { kind: 'verdict', outcome: 'reject', j: 1 + rng.int(g), body, done: 'stopped' },
      size,
    });
  }
  out.push({
    frame: { kind: 'verdict', outcome: 'reject', j: 2, body: { encoding: 'token', p: oneHot } },
    size: verdictFrameSize('reject', 5),
  });
  const cids = randomIds(rng, 4, V);
  cids.push(cids[0]);
  out.push({
    frame: {
      kind: 'verdict',
      outcome: 'reject',
      j: 2,
      body: { encoding: 'candidates', ids: cids, probs: randomQ(rng, 5) },
    },
    size: -1,
  });
  return out;
}
