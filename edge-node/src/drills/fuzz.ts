/**
 * Hostile input for the edge: mutated frames through EdgeSession's handling in-process (fast, millions), and
 * over a real WebRTC data channel into a running EdgeNode (slower, thousands). Mutations start from valid
 * frames of every kind (so most reach payload and session checks): bit flips, byte overwrites, truncation,
 * extension, splices, header field changes, with the CRC recomputed most of the time. Meanwhile a well-behaved
 * session must keep producing the exact greedy answer, every reply must be a valid frame, and memory must stay
 * bounded.
 */
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { EdgeNode } from '../server.js';
import { Logger } from '../log.js';
import { connectNodeDevice, nodeWrtc } from '../device/node.js';
import { num } from '../flags.js';
import { MAX_GAMMA, decodeFrame, encodeFrame, frameCrc, type Frame } from '@dssd/codec';
import {
  DeviceSession,
  EdgeSession,
  FrameTransport,
  memoryChannelPair,
  type ModelIdentity,
} from '@dssd/protocol';
import { FrameForge, HashLm, hashGreedy, hashIdentity, prng } from '@dssd/protocol/testing';

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
      const f = decodeFrame(bytes, { vocabSize: V_FUZZ, maxGamma: MAX_GAMMA, maxCandidates: 4096 });
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
        const f = decodeFrame(bytes, { vocabSize: V, maxGamma: MAX_GAMMA, maxCandidates: 4096 });
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

/** `dssd fuzz`: hostile frames in-process and over a data channel while a good device keeps generating. */
export async function fuzzCommand(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      frames: { type: 'string' },
      'channel-frames': { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const say = (m: string) => process.stderr.write(m + '\n');
  const frames = num(v.frames, 'frames', 1_000_000, true);
  const seed = num(v.seed, 'seed', 1, true);
  const inproc = await fuzzInProcess({
    frames,
    seed,
    onProgress: (d, r) =>
      process.stderr.write(`\r  in-process: ${d} frames, heap ${r.heapPeakMb.toFixed(1)} MiB peak   `),
  });
  say(
    `\nin-process: ${inproc.frames} frames in ${inproc.seconds.toFixed(1)} s, ${inproc.accepted} accepted, ` +
      `errors ${JSON.stringify(inproc.errors)}, bad replies ${inproc.badReplies}, well-behaved ` +
      `${inproc.goodExact}/${inproc.goodRuns} exact, heap ${inproc.heapStartMb.toFixed(1)} → ${inproc.heapPeakMb.toFixed(1)} MiB peak`,
  );
  // Over a real data channel into an edge node, while a well-behaved device keeps generating (no disconnect for
  // errors: the fuzzer sends thousands of bad frames on one session on purpose).
  const node = await EdgeNode.start({
    port: 0,
    log: new Logger('silent'),
    maxSessions: 16,
    maxPeerErrors: Infinity,
  });
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  const prompt = 'The jury said';
  const good = async (mode: 'ar' | 'dssd') => {
    const d = await connectNodeDevice({ edge: node.url, settings: { mode, sampling: greedy } });
    try {
      const out: number[] = [];
      for (let k = 0; k < 3; k++) {
        if (k > 0) d.session.rewind(0);
        out.push(
          ...(await d.session.generate(d.draft.tokenizer.encode(prompt), { maxNewTokens: 24 })).tokens,
          -1,
        );
      }
      return out;
    } finally {
      d.close();
    }
  };
  const ref = await good('ar');
  const [chan, during] = await Promise.all([
    fuzzDataChannel({
      url: node.url,
      frames: num(v['channel-frames'], 'channel-frames', 20_000, true),
      seed: seed + 1,
      model: node.identity,
      WebSocket,
      wrtc: nodeWrtc(),
    }),
    good('dssd'),
  ]);
  const after = await good('dssd');
  const healthy = (await fetch(node.url + '/healthz')).ok;
  const wellBehaved =
    JSON.stringify(during) === JSON.stringify(ref) && JSON.stringify(after) === JSON.stringify(ref);
  const maxRssMb = process.resourceUsage().maxRSS / 1024;
  await node.close();
  say(
    `data channel: ${chan.frames} frames (${chan.rawMessages} raw) in ${chan.seconds.toFixed(1)} s, ${chan.replies} replies, ` +
      `bad replies ${chan.badReplies}; signaling attacks refused ${chan.signalingRefused}/${chan.signalingAttacks}; ` +
      `well-behaved session exact: ${wellBehaved}; edge healthy: ${healthy}; peak RSS ${maxRssMb.toFixed(0)} MiB`,
  );
  const out = {
    framesInProcess: inproc.frames,
    framesDataChannel: chan.frames,
    badReplies: inproc.badReplies + chan.badReplies,
    errors: inproc.errors,
    wellBehaved: wellBehaved && inproc.goodExact === inproc.goodRuns,
    healthy,
    signalingAttacks: chan.signalingAttacks,
    signalingRefused: chan.signalingRefused,
    heapPeakMb: inproc.heapPeakMb,
    peakRssMb: maxRssMb,
    seconds: inproc.seconds + chan.seconds,
  };
  if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
  if (!out.wellBehaved || !healthy || out.badReplies > 0 || chan.signalingRefused < chan.signalingAttacks)
    process.exitCode = 1;
}
