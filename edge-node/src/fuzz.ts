/**
 * Hostile input for the edge: mutated frames through EdgeSession's handling in-process (fast, millions), and
 * over a real WebRTC data channel into a running EdgeNode (slower, thousands). Mutations start from valid
 * frames of every kind (so most reach payload and session checks): bit flips, byte overwrites, truncation,
 * extension, splices, header field changes, with the CRC recomputed most of the time. Meanwhile a well-behaved
 * session must keep producing the exact greedy answer, every reply must be a valid frame, and memory must stay
 * bounded.
 */
import { decodeFrame, encodeFrame, frameCrc, type Frame } from '@dssd/codec';
import { processLogits, sampleFrom } from '@dssd/kernel';
import {
  DeviceSession,
  EdgeSession,
  FrameTransport,
  memoryChannelPair,
  prng,
  type LmSession,
  type ModelIdentity,
} from '@dssd/protocol';

/** A tiny deterministic model: logits from a hash of the last two tokens (cheap, cache-sensitive). */
export class HashLm implements LmSession {
  readonly tokens: number[] = [];
  constructor(
    readonly V: number,
    readonly seed = 1,
  ) {}
  get length(): number {
    return this.tokens.length;
  }
  async forward(toks: number[]): Promise<Float32Array[]> {
    if (toks.length === 0) throw new Error('empty forward');
    return toks.map((t) => {
      this.tokens.push(t);
      return this.logits(this.tokens);
    });
  }
  truncate(n: number): void {
    if (n < 0 || n > this.tokens.length) throw new Error(`truncate ${n} of ${this.tokens.length}`);
    this.tokens.length = n;
  }
  logits(prefix: number[]): Float32Array {
    const a = prefix[prefix.length - 1] ?? 0;
    const b = prefix[prefix.length - 2] ?? 0;
    const out = new Float32Array(this.V);
    for (let v = 0; v < this.V; v++) {
      let h = Math.imul(a * 31 + b * 17 + v * 7 + this.seed, 0x9e3779b1) >>> 0;
      h ^= h >>> 15;
      out[v] = ((Math.imul(h, 0x85ebca6b) >>> 0) % 1000) / 250;
    }
    return out;
  }
}

export function hashIdentity(V: number): ModelIdentity {
  return { tokenizerHash: 'f0'.repeat(16), vocabSize: V, maxContext: 256, eosTokenId: -1, name: 'hash' };
}

/** Greedy reference for HashLm. */
export function hashGreedy(V: number, prompt: number[], n: number): number[] {
  const lm = new HashLm(V);
  const p = [...prompt];
  const out: number[] = [];
  const g = { temperature: 0, topK: 0, topP: 1 };
  for (let i = 0; i < n; i++) {
    const t = sampleFrom(processLogits(lm.logits(p), g), 0.5);
    out.push(t);
    p.push(t);
  }
  return out;
}

/** Builds valid frames of every kind for a session (ids < V, q in (0, 1]) to mutate. */
export class FrameForge {
  constructor(
    readonly V: number,
    readonly rand: () => number,
  ) {}
  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  private ids(n: number): number[] {
    return Array.from({ length: n }, () => this.int(this.V));
  }
  hello(): Frame {
    const modes = ['ar', 'dsd', 'dssd'] as const;
    const codecs = ['auto', 'f32', 'f16', 'sparse', 'topk', 'candidates'] as const;
    const mode = modes[this.int(3)];
    return {
      kind: 'hello',
      body: {
        protocol: 1,
        model: hashIdentity(this.V),
        settings: {
          mode,
          codec: codecs[this.int(codecs.length)],
          gamma: mode === 'ar' ? 0 : 1 + this.int(6),
          sampling: { temperature: this.rand() < 0.5 ? 0 : 1, topK: 0, topP: 1 },
          dsdPrecision: 'f32',
          topK: 8,
          candidates: 'auto',
          ...(this.rand() < 0.5 ? { seed: this.int(1000) } : {}),
        },
      },
    };
  }
  frame(): Frame {
    const g = 1 + this.int(5);
    switch (this.int(9)) {
      case 0:
        return this.hello();
      case 1:
      case 2:
        return {
          kind: 'turn',
          base: this.int(4),
          ids: this.ids(1 + this.int(8)),
          maxNewTokens: 1 + this.int(40),
        };
      case 3:
      case 4: {
        const q = Array.from({ length: g }, () => Math.max(1e-6, this.rand()));
        return {
          kind: 'draft',
          ids: this.ids(g),
          q,
          ...(this.rand() < 0.4 ? { prevToken: this.int(this.V) } : {}),
        };
      }
      case 5: {
        const dists = Array.from({ length: g }, () => {
          const d = new Float32Array(this.V).map(() => this.rand());
          const s = d.reduce((a, b) => a + b, 0);
          return d.map((x) => x / s);
        });
        return { kind: 'dsdDraft', ids: this.ids(g), dists, encoding: 'f32' };
      }
      case 6:
        return { kind: 'fullRequest', j: 1 + this.int(g) };
      case 7:
        return { kind: 'stop' };
      default:
        return { kind: 'ping', t: this.rand() * 1e6 };
    }
  }
  /** One mutated frame for `sessionId` near `round`. */
  mutated(sessionId: number, round: number): Uint8Array {
    const f = this.frame();
    let b = encodeFrame(f, { sessionId, round: Math.max(0, round + this.int(3) - 1), vocabSize: this.V });
    const r = this.rand();
    if (r < 0.15) return b; // valid frames in odd orders drive the session state machine
    b = b.slice();
    const ops = 1 + this.int(4);
    for (let k = 0; k < ops; k++) {
      const op = this.int(8);
      if (op <= 2 && b.length > 0) b[this.int(b.length)] ^= 1 << this.int(8);
      else if (op === 3 && b.length > 0) b[this.int(b.length)] = [0, 0xff, 0x7f, 0x80][this.int(4)];
      else if (op === 4) b = b.slice(0, this.int(b.length + 1));
      else if (op === 5) {
        const extra = new Uint8Array(1 + this.int(64)).map(() => this.int(256));
        const c = new Uint8Array(b.length + extra.length);
        c.set(b);
        c.set(extra, b.length);
        b = c;
      } else if (op === 6 && b.length >= 20) {
        // header fields: type, session, round, payload length
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const which = this.int(4);
        if (which === 0) b[3] = this.int(20);
        else if (which === 1) dv.setUint32(4, this.rand() < 0.5 ? sessionId + 1 : 0, true);
        else if (which === 2) dv.setUint32(8, this.int(0xffffffff), true);
        else dv.setUint32(12, [0, 0xffffffff, b.length, b.length - 21][this.int(4)] >>> 0, true);
      } else if (op === 7) {
        // splice the tail of another frame
        const o = encodeFrame(this.frame(), { sessionId, round, vocabSize: this.V });
        const cut = this.int(Math.min(b.length, o.length) + 1);
        const c = new Uint8Array(cut + o.length - Math.min(cut, o.length));
        c.set(b.subarray(0, cut));
        c.set(o.subarray(Math.min(cut, o.length)), cut);
        b = c;
      }
    }
    // Fix the CRC most of the time so the payload and session checks are exercised, not just the checksum.
    if (b.length >= 20 && this.rand() < 0.7) {
      new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(16, frameCrc(b), true);
    }
    return b;
  }
}

export interface FuzzReport {
  frames: number;
  /** Frames the edge processed without sending an error. */
  accepted: number;
  /** Error frames sent, by code. */
  errors: Record<string, number>;
  /** Replies that did not decode (must be 0). */
  badReplies: number;
  sessions: number;
  /** Greedy answers of well-behaved sessions run in between, and how many were exact. */
  goodRuns: number;
  goodExact: number;
  heapStartMb: number;
  heapPeakMb: number;
  seconds: number;
}

const V_FUZZ = 64;

/**
 * Drives `frames` mutated frames through EdgeSession handling in-process. A new hostile session every
 * `perSession` frames (valid hello first, sometimes not); a well-behaved session every `goodEvery` frames.
 */
export async function fuzzInProcess(o: {
  frames: number;
  seed?: number;
  perSession?: number;
  goodEvery?: number;
  onProgress?: (done: number, r: FuzzReport) => void;
}): Promise<FuzzReport> {
  const t0 = performance.now();
  const rand = prng(o.seed ?? 1);
  const forge = new FrameForge(V_FUZZ, rand);
  const heap = () => process.memoryUsage().heapUsed / 2 ** 20;
  const rep: FuzzReport = {
    frames: 0,
    accepted: 0,
    errors: {},
    badReplies: 0,
    sessions: 0,
    goodRuns: 0,
    goodExact: 0,
    heapStartMb: heap(),
    heapPeakMb: heap(),
    seconds: 0,
  };
  const perSession = o.perSession ?? 2000;
  const goodEvery = o.goodEvery ?? 50_000;
  const limits = {
    maxContext: 256,
    maxNewTokens: 48,
    maxPromptTokens: 64,
    maxGamma: 8,
    maxFrameBytes: 1 << 16,
  };
  let edge: EdgeSession | null = null;
  let errorsSent = 0;
  let round = 0;
  const onReply = (bytes: Uint8Array) => {
    try {
      const f = decodeFrame(bytes, { vocabSize: V_FUZZ, maxGamma: 254, maxCandidates: 4096 });
      if (f.kind === 'error') errorsSent++;
    } catch {
      rep.badReplies++;
    }
  };
  for (let i = 0; i < o.frames; i++) {
    if (edge === null || i % perSession === 0) {
      edge?.close();
      rep.sessions++;
      const id = 1 + (rep.sessions % 1000);
      edge = new EdgeSession({
        sessionId: id,
        model: hashIdentity(V_FUZZ),
        createTarget: () => new HashLm(V_FUZZ),
        secretSeed: 9,
        limits,
        send: onReply,
        onError: (code) => (rep.errors[code] = (rep.errors[code] ?? 0) + 1),
      });
      round = 0;
      if (rand() < 0.8) await edge.handle(encodeFrame(forge.hello(), { sessionId: 0, round: 0 }));
    }
    const before = errorsSent;
    await edge.handle(forge.mutated(edge.id, round));
    round += rand() < 0.3 ? 1 : 0;
    if (rand() < 0.02) await edge.idle(); // let ar generations run (they are bounded by maxNewTokens)
    rep.frames++;
    if (errorsSent === before) rep.accepted++;
    if ((i + 1) % goodEvery === 0) {
      await goodRun(rep);
      rep.heapPeakMb = Math.max(rep.heapPeakMb, heap());
      o.onProgress?.(i + 1, rep);
    }
  }
  edge?.close();
  await goodRun(rep);
  rep.heapPeakMb = Math.max(rep.heapPeakMb, heap());
  rep.seconds = (performance.now() - t0) / 1000;
  return rep;
}

/** A well-behaved in-memory session: its greedy dssd answer must equal the reference. */
async function goodRun(rep: FuzzReport): Promise<void> {
  const [a, b] = memoryChannelPair();
  const dt = new FrameTransport(a);
  const et = new FrameTransport(b);
  const edge = new EdgeSession({
    sessionId: 1,
    model: hashIdentity(V_FUZZ),
    createTarget: () => new HashLm(V_FUZZ),
    secretSeed: 1,
    send: (f) => et.send(f),
  });
  et.onFrame((f) => void edge.handle(f));
  const dev = await DeviceSession.open({
    transport: dt,
    model: hashIdentity(V_FUZZ),
    drafter: new HashLm(V_FUZZ, 2),
    settings: { mode: 'dssd', codec: 'candidates', gamma: 4, sampling: { temperature: 0, topK: 0, topP: 1 } },
    timeoutMs: 5000,
  });
  const prompt = [rep.goodRuns % V_FUZZ, 3, 5];
  const r = await dev.generate(prompt, { maxNewTokens: 24 });
  rep.goodRuns++;
  const ref = hashGreedy(V_FUZZ, prompt, 24);
  if (r.tokens.length === ref.length && r.tokens.every((t, i) => t === ref[i])) rep.goodExact++;
  dev.close();
}

export interface ChannelFuzzReport {
  frames: number;
  rawMessages: number;
  replies: number;
  badReplies: number;
  /** Signaling attacks sent (oversized, malformed, binary, wrong shapes) and how many were refused. */
  signalingAttacks: number;
  signalingRefused: number;
  seconds: number;
}

/**
 * Mutated frames over a real data channel into the edge at `url` (a session opened with a valid hello), plus
 * raw garbage chunks that bypass the chunker, plus hostile signaling messages on /signal.
 */
export async function fuzzDataChannel(o: {
  url: string;
  frames: number;
  seed?: number;
  model: ModelIdentity;
  token?: string;
  /** Constructors (Node: the `ws` package and @roamhq/wrtc). */
  WebSocket: unknown;
  wrtc: unknown;
}): Promise<ChannelFuzzReport> {
  const { connectEdge, signalingUrl } = await import('@dssd/protocol');
  const t0 = performance.now();
  const rand = prng(o.seed ?? 2);
  const V = o.model.vocabSize;
  const forge = new FrameForge(V, rand);
  const rep: ChannelFuzzReport = {
    frames: 0,
    rawMessages: 0,
    replies: 0,
    badReplies: 0,
    signalingAttacks: 0,
    signalingRefused: 0,
    seconds: 0,
  };
  const sessionsNeeded = Math.max(1, Math.ceil(o.frames / 5000));
  for (let s = 0; s < sessionsNeeded; s++) {
    const { channel } = await connectEdge({
      url: o.url,
      WebSocket: o.WebSocket as never,
      wrtc: o.wrtc as never,
      token: o.token,
    });
    const t = new FrameTransport(channel);
    let sessionId = 0;
    t.onFrame((bytes) => {
      rep.replies++;
      try {
        const f = decodeFrame(bytes, { vocabSize: V, maxGamma: 254, maxCandidates: 4096 });
        if (f.kind === 'welcome') sessionId = (f.body as { sessionId: number }).sessionId;
      } catch {
        rep.badReplies++;
      }
    });
    const hello = forge.hello();
    (hello as unknown as { body: { model: ModelIdentity } }).body.model = o.model;
    await t.send(encodeFrame(hello, { sessionId: 0, round: 0 }));
    const n = Math.min(5000, o.frames - rep.frames);
    for (let i = 0; i < n; i++) {
      if (rand() < 0.05) {
        // A raw message: garbage or a mangled chunk header, straight onto the channel.
        const g = new Uint8Array(1 + Math.floor(rand() * 300)).map(() => Math.floor(rand() * 256));
        channel.send(g);
        rep.rawMessages++;
      } else {
        const m = forge.mutated(sessionId, Math.floor(rand() * 4));
        if (m.length > 0) await t.send(m);
        else channel.send(new Uint8Array(1)); // an empty frame cannot be chunked: a 1-byte message instead
      }
      rep.frames++;
      if (i % 200 === 199) await new Promise((r) => setTimeout(r, 1)); // let replies drain
    }
    await new Promise((r) => setTimeout(r, 100));
    t.close();
  }
  // Hostile signaling: each must be answered with an error or a close, never crash the edge.
  const WS = o.WebSocket as new (url: string) => {
    on(ev: string, cb: (...a: unknown[]) => void): void;
    send(d: unknown): void;
    close(): void;
  };
  const attacks: (string | Uint8Array)[] = [
    'x'.repeat(300 * 1024),
    JSON.stringify({ type: 'join', token: 'a'.repeat(40 * 1024) }),
    '{"type":"join",',
    '[]',
    'null',
    '"join"',
    '['.repeat(20000),
    JSON.stringify({ type: 'signal', data: { type: 'offer', sdp: 'v=0' } }),
    JSON.stringify({ type: 'join', token: 42 }),
    JSON.stringify({ type: 'nope' }),
    new Uint8Array([1, 2, 3]),
    JSON.stringify({ type: 'join' }) + '\u0000',
  ];
  for (const a of attacks) {
    rep.signalingAttacks++;
    const refused = await new Promise<boolean>((resolve) => {
      const ws = new WS(signalingUrl(o.url));
      const timer = setTimeout(() => {
        ws.close();
        resolve(false);
      }, 3000);
      ws.on('open', () => {
        ws.send(a);
        // A bare join is valid; follow it with the attack too.
        if (typeof a === 'string' && a.startsWith('{"type":"join"}')) ws.send('{');
      });
      ws.on('message', () => undefined);
      ws.on('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
      ws.on('error', () => undefined);
    });
    if (refused) rep.signalingRefused++;
  }
  rep.seconds = (performance.now() - t0) / 1000;
  return rep;
}
