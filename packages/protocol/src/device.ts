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
import {
  decodeFrame,
  encodeFrame,
  CodecError,
  type DecodedFrame,
  type DoneReason,
  type Frame,
} from '@dssd/codec';
import {
  SessionRng,
  SpecStats,
  processLogits,
  resolveCandidates,
  sampleFrom,
  sampleResidual,
  type SamplingParams,
} from '@dssd/kernel';
import { ProtocolError, ProtocolErrorCode, codeFromWire } from './errors.js';
import type { LmSession } from './lm.js';
import { GammaController } from './adaptive.js';
import { FrameTransport, type TransportCounters } from './transport.js';
import { historyDigest } from './edge.js';
import {
  PROTOCOL_VERSION,
  validateSettings,
  validateWelcome,
  type ModelIdentity,
  type SessionSettings,
  type WelcomeBody,
} from './settings.js';

/** Where a generated token came from (the page colours text by it). */
export type TokenOrigin = 'draft' | 'resampled' | 'bonus' | 'edge' | 'unverified';

export interface TokenEvent {
  tokens: number[];
  origin: TokenOrigin;
}

export interface DeviceOptions {
  transport: FrameTransport;
  /** Identity of the device's model (the drafter's tokenizer must match the edge's). */
  model: ModelIdentity;
  /** The draft model's session; required for dsd and dssd. */
  drafter?: LmSession;
  settings: Partial<SessionSettings> & Pick<SessionSettings, 'mode'>;
  /** Pick γ per round from measured acceptance and timings (settings.gamma is then the upper bound). */
  adaptiveGamma?: boolean;
  /** The device's own seed for its draws when the session has no seed. */
  secretSeed?: number;
  /** Deliberately wrong residual (no max(0,·)), only to show that the fidelity check catches it. */
  plantedBug?: 'no-max';
  /** How long to wait for any edge frame. */
  timeoutMs?: number;
  /** Opens a fresh transport to the same edge (new signaling, new peer connection) to resume after a drop. */
  reconnect?: () => Promise<FrameTransport>;
  /** Re-sync and resume budget per turn (default: off), and the wait between reconnect attempts. */
  recovery?: { maxAttempts?: number; backoffMs?: number };
  /**
   * Opt-in: when the edge stays unreachable, finish the answer with the draft model alone. Those tokens have the
   * origin 'unverified': nothing checked them against the target.
   */
  offlineFallback?: boolean;
  now?: () => number;
}

export interface GenerateOptions {
  maxNewTokens: number;
  onTokens?: (ev: TokenEvent) => void;
  signal?: AbortSignal;
}

export interface TurnStats {
  rounds: number;
  drafts: number;
  draftedTokens: number;
  acceptedTokens: number;
  acceptancePerPosition: number[];
  meanAcceptanceLength: number;
  bonusTokens: number;
  resampledTokens: number;
  fallbacks: number;
  /** Target forward passes this turn caused: one per verify round, one per token in ar. */
  llmForwardPasses: number;
  uplinkBytes: number;
  downlinkBytes: number;
  messagesUp: number;
  messagesDown: number;
  generatedTokens: number;
  wallMs: number;
  tokensPerSecond: number;
  /** Time in the draft model (forward passes and processing). */
  draftMs: number;
  /** Time from sending an uplink frame to its answer: network plus edge verify. */
  waitMs: number;
  /** Time in the kernel on the device (decode, residual, candidates). */
  kernelMs: number;
  /** γ used per round. */
  gammas: number[];
  /** Re-syncs and resumes this turn needed (faults survived). */
  recoveries: number;
  /** Tokens generated offline by the draft model alone (origin 'unverified'). */
  unverifiedTokens: number;
}

export interface TurnResult {
  /** New tokens of this turn (an end-of-sequence token is not included). */
  tokens: number[];
  origins: TokenOrigin[];
  done: DoneReason;
  stats: TurnStats;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** Merges user settings with defaults (the draft sampling defaults to the target's). */
export function completeSettings(s: DeviceOptions['settings']): SessionSettings {
  const sampling: SamplingParams = s.sampling ?? { temperature: 1, topK: 0, topP: 1 };
  return validateSettings({
    codec: 'auto',
    gamma: s.mode === 'ar' ? 0 : 4,
    dsdPrecision: 'f32',
    topK: 20,
    candidates: 'auto',
    ...s,
    sampling,
    draftSampling: s.draftSampling ?? sampling,
  });
}

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
  private readonly rng: SessionRng;
  private readonly inbox: DecodedFrame[] = [];
  private waiter: { resolve: () => void } | null = null;
  private failure: ProtocolError | null = null;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly gammaCtl: GammaController | null;
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
    this.rng = new SessionRng(this.settings.seed ?? opts.secretSeed ?? randomSeed());
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.now = opts.now ?? (() => performance.now());
    this.gammaCtl = opts.adaptiveGamma ? new GammaController(this.settings.gamma) : null;
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
  private async handshake(
    resume: { sessionId: number; secret: string; committed: number } | undefined,
  ): Promise<{ held: number; digest: number } | undefined> {
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
  async _recover(): Promise<number> {
    const backoff = this.opts.recovery?.backoffMs ?? 200;
    this.inbox.length = 0;
    if (this.cur.closed || this.failure?.code === ProtocolErrorCode.Closed) {
      if (!this.opts.reconnect || !this.resumeSecret) {
        throw new ProtocolError(ProtocolErrorCode.Closed, 'the connection to the edge closed');
      }
      let t: FrameTransport;
      try {
        t = await this.opts.reconnect();
      } catch (e) {
        await sleep(backoff);
        throw new ProtocolError(ProtocolErrorCode.Closed, `cannot reconnect: ${(e as Error).message}`, {
          cause: e,
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
      f = decodeFrame(bytes, { vocabSize: this.vocabSize, maxGamma: 254, maxCandidates: 4096 });
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

  /** The next frame from the edge, or the pending failure. */
  private async next(): Promise<DecodedFrame> {
    const deadline = this.now() + this.timeoutMs;
    for (;;) {
      const f = this.inbox.shift();
      if (f) return f;
      if (this.failure) {
        const err = this.failure;
        // An edge error answers one request; a closed channel stays failed.
        if (err.code !== ProtocolErrorCode.Closed) this.failure = null;
        throw err;
      }
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
    const turn = new TurnRun(this, prompt, o);
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

  /** @internal state shared with TurnRun. */
  get _internal() {
    return {
      opts: this.opts,
      rng: this.rng,
      gammaCtl: this.gammaCtl,
      next: () => this.next(),
      send: (f: Frame, round: number) => this.send(f, round),
      edgeKnown: () => this.edgeKnown,
      setEdgeKnown: (n: number) => (this.edgeKnown = n),
      nextTurn: () => ++this.turn,
      now: this.now,
      /** Reserves `n` wire rounds from the next one on; frames for earlier rounds are stale from now. */
      takeRounds: (n: number) => {
        const r = this.wireRound;
        this.wireRound += n;
        this.minRound = r;
        return r;
      },
      setMinRound: (r: number) => (this.minRound = r),
      clearFailure: () => {
        this.failure = null;
        this.inbox.length = 0;
      },
    };
  }
}

/** A TurnStats with every counter at zero. */
export function emptyTurnStats(): TurnStats {
  return {
    rounds: 0,
    drafts: 0,
    draftedTokens: 0,
    acceptedTokens: 0,
    acceptancePerPosition: [],
    meanAcceptanceLength: 0,
    bonusTokens: 0,
    resampledTokens: 0,
    fallbacks: 0,
    llmForwardPasses: 0,
    uplinkBytes: 0,
    downlinkBytes: 0,
    messagesUp: 0,
    messagesDown: 0,
    generatedTokens: 0,
    wallMs: 0,
    tokensPerSecond: 0,
    draftMs: 0,
    waitMs: 0,
    kernelMs: 0,
    gammas: [],
    recoveries: 0,
    unverifiedTokens: 0,
  };
}

/** One turn's state machine. */
class TurnRun {
  private readonly s: DeviceSession;
  private readonly i: DeviceSession['_internal'];
  private readonly tokens: number[] = [];
  private readonly origins: TokenOrigin[] = [];
  private readonly spec = new SpecStats();
  private readonly t: TurnStats;
  private turn = 0;
  /** Wire round of the current attempt's turn frame. */
  private r0 = 0;
  private done: DoneReason | null = null;
  private readonly c0: { up: number; down: number; mu: number; md: number };

  constructor(
    s: DeviceSession,
    private readonly prompt: number[],
    private readonly o: GenerateOptions,
  ) {
    this.s = s;
    this.i = s._internal;
    const c = s.counters;
    this.c0 = { up: c.bytesSent, down: c.bytesReceived, mu: c.chunksSent, md: c.chunksReceived };
    this.t = emptyTurnStats();
  }

  async run(): Promise<TurnResult> {
    const s = this.s;
    const start = this.i.now();
    let base = this.i.edgeKnown();
    s.history.push(...this.prompt);
    const opts = this.i.opts;
    const maxAttempts = opts.recovery?.maxAttempts ?? 0;
    let attempts = 0;
    let resync = s.transport.closed;
    let offline = false;
    try {
      while (this.done === null) {
        try {
          if (offline) {
            await this.runOffline();
            break;
          }
          if (resync) base = await s._recover();
          await this.sendTurn(base, resync);
          if (s.settings.mode === 'ar') await this.runAr();
          else await this.runSpeculative();
          break;
        } catch (e) {
          if (!(e instanceof ProtocolError) || !RECOVERABLE.has(e.code) || this.o.signal?.aborted) throw e;
          if (attempts >= maxAttempts) {
            const unreachable = e.code === ProtocolErrorCode.Closed || e.code === ProtocolErrorCode.Timeout;
            if (opts.offlineFallback && unreachable && opts.drafter) {
              offline = true;
              continue;
            }
            throw e;
          }
          attempts++;
          this.t.recoveries++;
          resync = true;
        }
      }
    } finally {
      this.finishStats(start);
    }
    return { tokens: this.tokens, origins: this.origins, done: this.done ?? 'stopped', stats: this.t };
  }

  /** Starts (or, after a fault, restarts) the turn on the edge from `base` committed tokens. */
  private async sendTurn(base: number, resync: boolean): Promise<void> {
    const s = this.s;
    const ar = s.settings.mode === 'ar';
    const remaining = this.o.maxNewTokens - this.tokens.length;
    // An edge still generating (ar) is stopped first; what it sends until then is stale.
    if (resync && ar) await this.i.send({ kind: 'stop' }, 0);
    // The turn frame takes a round number of its own (drafts follow it; ar tokens are numbered from it).
    const r0 = this.i.takeRounds(ar ? remaining + 1 : 1);
    this.r0 = r0;
    this.i.setEdgeKnown(s.history.length);
    this.turn = this.i.nextTurn();
    await this.i.send({ kind: 'turn', base, ids: s.history.slice(base), maxNewTokens: remaining }, r0);
  }

  /** The draft model alone, while the edge is unreachable: every token is 'unverified'. */
  private async runOffline(): Promise<void> {
    const s = this.s;
    const drafter = this.i.opts.drafter!;
    for (let round = 0; ; round++) {
      if (this.o.signal?.aborted) {
        this.done = 'stopped';
        return;
      }
      const N = s.history.length;
      if (N >= s.maxContext) {
        this.done = 'contextEnd';
        return;
      }
      if (drafter.length >= N) drafter.truncate(N - 1);
      const rows = await drafter.forward(s.history.slice(drafter.length));
      const Q = processLogits(rows[rows.length - 1], s.settings.draftSampling);
      const x = sampleFrom(Q, this.i.rng.round(this.turn, round).draft(1));
      this.t.unverifiedTokens++;
      if (!this.commit([x], ['unverified'])) return;
    }
  }

  private finishStats(start: number): void {
    const c = this.s.counters;
    const t = this.t;
    t.uplinkBytes = c.bytesSent - this.c0.up;
    t.downlinkBytes = c.bytesReceived - this.c0.down;
    t.messagesUp = c.chunksSent - this.c0.mu;
    t.messagesDown = c.chunksReceived - this.c0.md;
    const j = this.spec.toJSON();
    t.drafts = j.drafts;
    t.draftedTokens = j.draftedTokens;
    t.acceptedTokens = j.acceptedTokens;
    t.acceptancePerPosition = j.acceptancePerPosition;
    t.meanAcceptanceLength = j.meanAcceptanceLength;
    t.bonusTokens = j.bonusTokens;
    t.resampledTokens = j.resampledTokens;
    t.fallbacks = j.fallbacks;
    t.generatedTokens = this.tokens.length;
    t.wallMs = this.i.now() - start;
    t.tokensPerSecond = t.wallMs > 0 ? (1000 * this.tokens.length) / t.wallMs : 0;
    this.s.stats.merge(this.spec);
  }

  /** Commits tokens; cuts at end-of-sequence and at the token budget. Returns false when the turn is over. */
  private commit(toks: number[], origins: TokenOrigin[]): boolean {
    const eos = this.s.welcome.model.eosTokenId;
    const budget = this.o.maxNewTokens - this.tokens.length;
    const eosAt = toks.indexOf(eos);
    let n = eosAt >= 0 ? eosAt + 1 : toks.length;
    if (eosAt >= 0 && n <= budget) this.done = 'eos';
    else if (n >= budget) {
      n = budget;
      this.done = 'maxTokens';
    }
    const kept = toks.slice(0, n);
    this.s.history.push(...kept);
    const visible = this.done === 'eos' && kept[kept.length - 1] === eos ? kept.slice(0, -1) : kept;
    for (let k = 0; k < visible.length; k++) {
      this.tokens.push(visible[k]);
      this.origins.push(origins[k]);
    }
    // Emit runs of the same origin as events.
    let a = 0;
    while (a < visible.length) {
      let b = a + 1;
      while (b < visible.length && origins[b] === origins[a]) b++;
      this.o.onTokens?.({ tokens: visible.slice(a, b), origin: origins[a] });
      a = b;
    }
    if (this.done === null && this.s.history.length >= this.s.maxContext) this.done = 'contextEnd';
    return this.done === null;
  }

  private async runAr(): Promise<void> {
    let stopSent = false;
    let expect = this.r0;
    for (;;) {
      if (this.o.signal?.aborted && !stopSent) {
        await this.i.send({ kind: 'stop' }, 0);
        stopSent = true;
      }
      const w0 = this.i.now();
      const f = await this.i.next();
      this.t.waitMs += this.i.now() - w0;
      if (f.kind !== 'arTokens')
        throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, `expected arTokens, got ${f.kind}`);
      // The n-th step of this attempt carries r0 + n: an earlier number is a duplicate, a later one a gap.
      if (f.round < expect) continue;
      if (f.round > expect) {
        throw new ProtocolError(
          ProtocolErrorCode.BadFrame,
          `edge tokens ${expect} to ${f.round - 1} are missing`,
        );
      }
      expect++;
      const ids = Array.from(f.ids);
      this.t.llmForwardPasses += ids.length;
      this.t.rounds += ids.length;
      const more = ids.length
        ? this.commit(
            ids,
            ids.map(() => 'edge'),
          )
        : true;
      // The edge appended every token it sent; keep its view in step with what was committed here.
      this.i.setEdgeKnown(Math.min(this.s.history.length, this.i.edgeKnown() + ids.length));
      if (f.done) {
        this.done ??= f.done;
        return;
      }
      if (!more && !stopSent) {
        // Cut here (budget or context): the edge may still be generating; stop it and drain.
        await this.i.send({ kind: 'stop' }, 0);
        stopSent = true;
      }
    }
  }

  private async runSpeculative(): Promise<void> {
    const s = this.s;
    const set = s.settings;
    const drafter = this.i.opts.drafter!;
    const dsd = set.mode === 'dsd';
    let prev: number | undefined;
    for (let round = 0; ; round++) {
      if (this.o.signal?.aborted) {
        this.done = 'stopped';
        break;
      }
      const remaining = this.o.maxNewTokens - this.tokens.length;
      const room = s.maxContext - s.history.length - 1;
      if (room < 0) {
        this.done = 'contextEnd';
        break;
      }
      const gMax = this.i.gammaCtl ? this.i.gammaCtl.choose() : set.gamma;
      const gamma = Math.max(0, Math.min(gMax, remaining - 1, room));
      this.t.gammas.push(gamma);
      const rr = this.i.rng.round(this.turn, round);
      const N = s.history.length;
      // ---- draft ----
      const d0 = this.i.now();
      if (drafter.length >= N) drafter.truncate(N - 1);
      const drafts: number[] = [];
      const q: number[] = [];
      const Qs: Float32Array[] = [];
      let feed = s.history.slice(drafter.length);
      for (let k = 1; k <= gamma; k++) {
        const rows = await drafter.forward(feed);
        const Q = processLogits(rows[rows.length - 1], set.draftSampling);
        const x = sampleFrom(Q, rr.draft(k));
        drafts.push(x);
        q.push(Q[x]);
        Qs.push(Q);
        feed = [x];
      }
      const draftMs = this.i.now() - d0;
      this.t.draftMs += draftMs;
      // ---- uplink and verdict ----
      const w0 = this.i.now();
      const wr = this.i.takeRounds(1);
      if (dsd) {
        await this.i.send({ kind: 'dsdDraft', ids: drafts, dists: Qs, encoding: set.dsdPrecision }, wr);
      } else {
        await this.i.send(
          { kind: 'draft', ids: drafts, q, ...(prev !== undefined ? { prevToken: prev } : {}) },
          wr,
        );
      }
      prev = undefined;
      const f = await this.i.next();
      const waitMs = this.i.now() - w0;
      this.t.waitMs += waitMs;
      this.t.rounds++;
      this.t.llmForwardPasses++;
      if (f.kind !== 'verdict' || f.round !== wr) {
        throw new ProtocolError(
          ProtocolErrorCode.UnexpectedFrame,
          `expected the verdict of round ${wr}, got ${f.kind} (round ${f.round})`,
        );
      }
      const k0 = this.i.now();
      let more: boolean;
      if (f.outcome === 'accept') {
        if (f.j !== gamma + 1)
          throw new ProtocolError(ProtocolErrorCode.BadFrame, `accept verdict with j = ${f.j}, γ = ${gamma}`);
        this.spec.recordRound(gamma, gamma, { bonus: true });
        this.i.setEdgeKnown(N + gamma + 1);
        more = this.commit([...drafts, f.token], [...drafts.map((): TokenOrigin => 'draft'), 'bonus']);
      } else if (f.outcome === 'reject' || f.outcome === 'resample') {
        const j = f.j;
        if (j < 1 || j > gamma)
          throw new ProtocolError(ProtocolErrorCode.BadFrame, `rejection at j = ${j} with γ = ${gamma}`);
        let y: number;
        let fallback = false;
        if (f.outcome === 'resample') {
          if (!dsd) throw new ProtocolError(ProtocolErrorCode.BadFrame, 'a resample verdict in dssd mode');
          y = f.token;
        } else {
          if (dsd) throw new ProtocolError(ProtocolErrorCode.BadFrame, 'a reject verdict in dsd mode');
          const Qj = Qs[j - 1];
          const body = f.body;
          if (body.encoding === 'candidates') {
            const K = body.ids.length;
            const res = resolveCandidates(body.ids, body.probs, Qj, rr.candidateAcceptUniforms(j, K));
            if (res.fallback) {
              fallback = true;
              await this.i.send({ kind: 'fullRequest', j }, wr);
              const full = await this.i.next();
              if (full.kind !== 'fullResponse' || full.j !== j || full.round !== wr) {
                throw new ProtocolError(
                  ProtocolErrorCode.UnexpectedFrame,
                  `expected P_${j} in full, got ${full.kind}`,
                );
              }
              y = sampleResidual(full.p, Qj, rr.residual(j));
            } else {
              y = res.token;
            }
          } else {
            if (body.p.length !== Qj.length)
              throw new ProtocolError(ProtocolErrorCode.BadFrame, 'P_j has the wrong size');
            y =
              this.i.opts.plantedBug === 'no-max'
                ? sampleFrom(absDiff(body.p, Qj), rr.residual(j))
                : sampleResidual(body.p, Qj, rr.residual(j));
          }
        }
        this.spec.recordRound(gamma, j - 1, { resampled: true, fallback, fullRequest: fallback });
        drafter.truncate(Math.min(drafter.length, N + j - 1));
        this.i.setEdgeKnown(dsd ? N + j : N + j - 1);
        if (!dsd) prev = y;
        more = this.commit(
          [...drafts.slice(0, j - 1), y],
          [...drafts.slice(0, j - 1).map((): TokenOrigin => 'draft'), 'resampled'],
        );
      } else {
        throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, `unexpected verdict '${f.outcome}'`);
      }
      this.t.kernelMs += this.i.now() - k0;
      this.i.gammaCtl?.observe({
        gamma,
        accepted: f.outcome === 'accept' ? gamma : f.j - 1,
        draftMs,
        waitMs,
      });
      if (!more) break;
    }
    // Keep both views consistent with the (possibly cut) history.
    this.i.setEdgeKnown(Math.min(this.i.edgeKnown(), s.history.length));
    if (drafter.length > s.history.length) drafter.truncate(s.history.length);
  }
}

/** |P − Q|: what a residual without max(0,·) samples from once negative mass is "normalised" away. */
function absDiff(P: ArrayLike<number>, Q: ArrayLike<number>): Float64Array {
  const out = new Float64Array(P.length);
  for (let i = 0; i < P.length; i++) out[i] = Math.abs(P[i] - Q[i]);
  return out;
}

/** Failures a re-sync (or a resume) can cure; refusals (limits, access, settings) are final. */
const RECOVERABLE = new Set<ProtocolErrorCode>([
  ProtocolErrorCode.Closed,
  ProtocolErrorCode.Timeout,
  ProtocolErrorCode.BadFrame,
  ProtocolErrorCode.UnexpectedFrame,
  ProtocolErrorCode.Internal,
]);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function randomSeed(): number {
  const a = new Uint32Array(2);
  globalThis.crypto.getRandomValues(a);
  return (a[0] & 0x1fffff) * 2 ** 32 + a[1];
}
