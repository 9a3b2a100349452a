/**
 * The device side of one session: drafts γ tokens with the local model, sends only ids + q's (DSSD) or the full
 * Q's (DSD), applies the edge's verdicts and resamples from norm(max(0, P_j − Q_j)) with the Q_j it drafted
 * from. Also the thin client of the edge-only `ar` baseline. One code path, selected by the session settings.
 *
 * Device cache rule: drafting feeds the history tokens not yet in the draft cache, then each draft but the
 * last; after a rejection at j the cache is truncated to the accepted prefix (the resampled token is fed next
 * round); after all γ are accepted the next round feeds x_γ and the bonus token.
 *
 * Recovery (opt-in, `recovery`): when a round fails with a lost, late, garbled or refused frame, the device
 * re-syncs: a new turn frame carries its committed tokens from a prefix both sides hold, and the answer goes on
 * from there. When the connection itself is gone it first reconnects (`reconnect`) and resumes the session with
 * its id and resume secret; the edge then still holds the KV cache, or the history is rebuilt from the
 * committed tokens. Nothing committed is ever re-sent as new output, so no token is lost or duplicated.
 * With `offlineFallback` the draft model alone continues while the edge stays unreachable; those tokens have
 * the origin 'unverified'.
 */
import { decodeFrame, encodeFrame, CodecError, MAX_GAMMA, type DecodedFrame, type Frame } from '@dssd/codec';
import { SessionRng, SpecStats } from '@dssd/kernel';
import { ProtocolError, ProtocolErrorCode, codeFromWire } from '../errors.js';
import {
  DEVICE_TIMEOUTS,
  PROTOCOL_VERSION,
  completeSettings,
  validateWelcome,
  type SessionSettings,
  type WelcomeBody,
} from '../settings.js';
import type { FrameTransport, TransportCounters } from '../wire/transport.js';
import { historyDigest, type ResumeAnswer, type ResumeClaim } from '../wire/resume.js';
import { GammaController } from './adaptive.js';
import { TurnRun, type TurnHooks } from './turn.js';
import type { DeviceOptions, GenerateOptions, TurnResult } from './types.js';

export class DeviceSession {
  readonly settings: SessionSettings;
  welcome!: WelcomeBody;
  /** Committed tokens of the whole conversation. */
  history: number[] = [];
  /** Totals over the session. */
  readonly stats = new SpecStats();
  private edgeKnown = 0;
  private turn = 0;
  private sessionId = 0;
  private readonly inbox: DecodedFrame[] = [];
  private waiter: { resolve: () => void } | null = null;
  private failure: ProtocolError | null = null;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  /** The private state a turn drives (see TurnHooks). */
  private readonly hooks: TurnHooks;
  private busy = false;
  private cur: FrameTransport;
  private gen = 0;
  private readonly past: TransportCounters = {
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    chunksSent: 0,
    chunksReceived: 0,
  };
  /** Next round number on the wire (session-wide, never reused; see edge.ts). */
  private wireRound = 1;
  /** Frames for rounds below this are stale (late or duplicated) and dropped. */
  private minRound = 0;
  /** Frames from the edge that could not be decoded. */
  garbled = 0;
  /** Secret that lets this device resume its session after the connection drops. */
  resumeSecret = '';
  /** Reconnects that found the edge still holding the session (KV kept), and ones that rebuilt it. */
  readonly resumes = { kept: 0, rebuilt: 0 };

  private constructor(private readonly opts: DeviceOptions) {
    this.settings = completeSettings(opts.settings);
    if (this.settings.mode !== 'ar' && !opts.drafter) {
      throw new ProtocolError(
        ProtocolErrorCode.BadSettings,
        `mode ${this.settings.mode} needs a draft model`,
      );
    }
    const rng = new SessionRng(this.settings.seed ?? opts.secretSeed ?? randomSeed());
    this.timeoutMs = opts.timeoutMs ?? DEVICE_TIMEOUTS.answerMs;
    this.now = opts.now ?? (() => performance.now());
    this.hooks = {
      opts,
      rng,
      gammaCtl: opts.adaptiveGamma ? new GammaController(this.settings.gamma) : null,
      next: () => this.next(),
      poll: () => this.poll(),
      hasFrame: () => this.inbox.length > 0 || this.failure !== null,
      send: (f: Frame, round: number) => this.send(f, round),
      edgeKnown: () => this.edgeKnown,
      setEdgeKnown: (n: number) => (this.edgeKnown = n),
      nextTurn: () => ++this.turn,
      now: () => this.now(),
      takeRounds: (n: number) => {
        const r = this.wireRound;
        this.wireRound += n;
        this.minRound = r;
        return r;
      },
      nextRound: () => this.wireRound++,
      recover: () => this.recover(),
    };
    this.cur = opts.transport;
    this.attach(opts.transport);
  }

  /** Routes a transport's frames and close here; frames of a replaced transport are ignored. */
  private attach(t: FrameTransport): void {
    const gen = ++this.gen;
    this.cur = t;
    t.onFrame((bytes) => {
      if (gen === this.gen) this.receive(bytes);
    });
    t.onClose((err) => {
      if (gen !== this.gen) return;
      this.fail(
        new ProtocolError(
          ProtocolErrorCode.Closed,
          `the connection to the edge closed${err ? `: ${err.message}` : ''}`,
        ),
      );
    });
  }

  /** Sends the hello and waits for the edge's welcome (or its refusal, as a ProtocolError). */
  static async open(opts: DeviceOptions): Promise<DeviceSession> {
    const s = new DeviceSession(opts);
    await s.handshake(undefined);
    return s;
  }

  /** Hello/welcome; with `resume`, asks the edge to continue this session. Returns the welcome's resume answer. */
  private async handshake(resume: ResumeClaim | undefined): Promise<ResumeAnswer | undefined> {
    await this.send(
      {
        kind: 'hello',
        body: {
          protocol: PROTOCOL_VERSION,
          model: { ...this.opts.model },
          settings: this.settings,
          ...(resume ? { resume } : {}),
        },
      },
      0,
    );
    const f = await this.next();
    if (f.kind !== 'welcome')
      throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, `expected welcome, got ${f.kind}`);
    this.welcome = validateWelcome(f.body);
    this.sessionId = this.welcome.sessionId;
    const secret = f.body.resumeSecret;
    this.resumeSecret = typeof secret === 'string' ? secret : '';
    const r = f.body.resumed as { held?: unknown; digest?: unknown } | undefined;
    if (r && Number.isSafeInteger(r.held) && Number.isSafeInteger(r.digest))
      return { held: r.held as number, digest: r.digest as number };
    return undefined;
  }

  /**
   * After a failed round: reconnects and resumes when the connection is gone, then returns the history length
   * both sides hold, from which the next turn frame re-sends the committed tokens.
   */
  private async recover(): Promise<number> {
    const backoff = this.opts.recovery?.backoffMs ?? 200;
    this.inbox.length = 0;
    if (this.cur.closed || this.failure?.code === ProtocolErrorCode.Closed) {
      if (!this.opts.reconnect || !this.resumeSecret) {
        throw new ProtocolError(ProtocolErrorCode.Closed, 'the connection to the edge closed');
      }
      let t: FrameTransport;
      try {
        t = await this.opts.reconnect({ sessionId: this.sessionId });
      } catch (e) {
        await sleep(backoff);
        throw new ProtocolError(ProtocolErrorCode.Closed, `cannot reconnect: ${(e as Error).message}`, {
          cause: e,
          reason: 'reconnectFailed',
        });
      }
      const c = this.cur.counters;
      for (const k of Object.keys(this.past) as (keyof TransportCounters)[]) this.past[k] += c[k];
      this.failure = null;
      this.attach(t);
      const res = await this.handshake({
        sessionId: this.sessionId,
        secret: this.resumeSecret,
        committed: this.history.length,
      });
      const held = res && res.digest === historyDigest(this.history, res.held) ? res.held : 0;
      if (held > 0) this.resumes.kept++;
      else this.resumes.rebuilt++;
      this.edgeKnown = Math.min(held, this.history.length - 1);
    }
    this.failure = null;
    this.inbox.length = 0;
    return Math.max(0, Math.min(this.edgeKnown, this.history.length - 1));
  }

  get maxContext(): number {
    return Math.min(this.welcome.maxContext, this.opts.model.maxContext);
  }

  get transport(): FrameTransport {
    return this.cur;
  }

  /** Byte and message counters over every transport this session used. */
  get counters(): TransportCounters {
    const c = this.cur.counters;
    const out = { ...this.past };
    for (const k of Object.keys(out) as (keyof TransportCounters)[]) out[k] += c[k];
    return out;
  }

  private get vocabSize(): number {
    return this.opts.model.vocabSize;
  }

  private receive(bytes: Uint8Array): void {
    let f: DecodedFrame;
    try {
      if (bytes.length === 0)
        throw new ProtocolError(ProtocolErrorCode.BadFrame, 'malformed chunk from the edge');
      f = decodeFrame(bytes, { vocabSize: this.vocabSize, maxGamma: MAX_GAMMA, maxCandidates: 4096 });
    } catch (e) {
      this.garbled++;
      // In ar the numbered token frames reveal a lost one (or the timeout does), and a garbled frame may well be
      // a stale one still in flight from before a re-sync; elsewhere it fails the round at once.
      if (this.settings.mode === 'ar' && this.opts.recovery?.maxAttempts) return;
      const msg = e instanceof CodecError ? `bad frame from the edge: ${e.message}` : (e as Error).message;
      this.fail(new ProtocolError(ProtocolErrorCode.BadFrame, msg));
      return;
    }
    // A late or duplicated answer to an earlier round (round 0: errors about undecodable frames and hellos).
    if (f.round !== 0 && f.round < this.minRound && f.kind !== 'welcome' && f.kind !== 'pong') return;
    if (f.kind === 'error') {
      this.fail(new ProtocolError(codeFromWire(f.code), f.message, { remote: true }));
      return;
    }
    this.inbox.push(f);
    this.waiter?.resolve();
  }

  private fail(err: ProtocolError): void {
    if (!this.failure) this.failure = err;
    this.waiter?.resolve();
  }

  /** A frame already received, or null; throws the pending failure. */
  private poll(): DecodedFrame | null {
    const f = this.inbox.shift();
    if (f) return f;
    if (this.failure) {
      const err = this.failure;
      // An edge error answers one request; a closed channel stays failed.
      if (err.code !== ProtocolErrorCode.Closed) this.failure = null;
      throw err;
    }
    return null;
  }

  /** The next frame from the edge, or the pending failure. */
  private async next(): Promise<DecodedFrame> {
    const deadline = this.now() + this.timeoutMs;
    for (;;) {
      const f = this.poll();
      if (f) return f;
      const left = deadline - this.now();
      if (left <= 0)
        throw new ProtocolError(ProtocolErrorCode.Timeout, `no answer from the edge in ${this.timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = {
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        };
      });
      this.waiter = null;
    }
  }

  private send(frame: Frame, round: number): Promise<void> {
    const bytes = encodeFrame(frame, { sessionId: this.sessionId, round, vocabSize: this.vocabSize });
    return this.cur.send(bytes);
  }

  /** Runs one turn: appends `prompt` (token ids) to the conversation and generates the answer. */
  async generate(prompt: number[], o: GenerateOptions): Promise<TurnResult> {
    if (this.busy) throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, 'a turn is already running');
    const canRecover = (this.opts.reconnect && this.opts.recovery?.maxAttempts) || this.opts.offlineFallback;
    if (this.failure?.code === ProtocolErrorCode.Closed && !canRecover) throw this.failure;
    if (this.failure?.code !== ProtocolErrorCode.Closed) this.failure = null; // an error frame that answered no request of this turn (e.g. to a stray frame)
    this.inbox.length = 0;
    if (!Array.isArray(prompt) || prompt.length === 0) {
      throw new ProtocolError(ProtocolErrorCode.BadSettings, 'the prompt must hold at least one token');
    }
    for (const t of prompt) {
      if (!Number.isInteger(t) || t < 0 || t >= this.vocabSize) {
        throw new ProtocolError(
          ProtocolErrorCode.BadSettings,
          `prompt token ${t} is not below |V| = ${this.vocabSize}`,
        );
      }
    }
    if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1) {
      throw new ProtocolError(ProtocolErrorCode.BadSettings, 'maxNewTokens must be a positive integer');
    }
    if (this.history.length + prompt.length >= this.maxContext) {
      throw new ProtocolError(
        ProtocolErrorCode.PromptTooLong,
        `prompt too long: ${this.history.length + prompt.length} tokens of history, the context is ${this.maxContext}`,
      );
    }
    this.busy = true;
    const turn = new TurnRun(this, this.hooks, prompt, o);
    try {
      return await turn.run();
    } finally {
      this.busy = false;
    }
  }

  /**
   * Drops the conversation beyond its first `length` tokens on both sides (the next turn's frame carries the
   * new base), e.g. to draw independent continuations of one prompt.
   */
  rewind(length: number): void {
    if (this.busy) throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, 'cannot rewind during a turn');
    if (!Number.isInteger(length) || length < 0 || length > this.history.length) {
      throw new ProtocolError(
        ProtocolErrorCode.BadSettings,
        `cannot rewind to ${length} of ${this.history.length} tokens`,
      );
    }
    this.history.length = length;
    this.edgeKnown = Math.min(this.edgeKnown, length);
    const d = this.opts.drafter;
    if (d && d.length > length) d.truncate(length);
  }

  close(): void {
    this.gen++; // a close we asked for is not a fault
    this.cur.close();
  }
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function randomSeed(): number {
  const a = new Uint32Array(2);
  globalThis.crypto.getRandomValues(a);
  return (a[0] & 0x1fffff) * 2 ** 32 + a[1];
}
