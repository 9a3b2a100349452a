/**
 * The edge side of one session: verifies drafts with ONE target forward pass per round, keeps the target's KV
 * cache between rounds and turns, and answers with verdicts. Speaks only codec frames; never throws on input
 * from the network: every problem becomes an error frame and the session stays usable.
 *
 * Cache rule (pinned by tests): each verify pass feeds the tokens of the history not yet in the cache (the
 * carried token: last round's resampled or bonus token, or a new turn's prompt) plus the γ drafts. After a
 * rejection at j the cache is truncated to the accepted prefix; after all γ are accepted it holds every draft
 * and the bonus token is carried to the next pass.
 *
 * Rounds on the wire: a turn frame's header round R0 is the device's session-wide round counter; the turn's
 * drafts carry R0 + 1 + k (k = 0, 1, …) and verdicts echo them, so a stale, duplicated or lost frame from an
 * earlier turn (or an earlier attempt at this one) can never be taken for a current one: every number is used
 * once. The uniforms use the per-turn index k.
 *
 * Resume: the welcome carries a resume secret. A device whose channel dropped says hello again with
 * `resume: {sessionId, secret, committed, digest}`; when the owner still holds that session (see SessionTable)
 * its KV cache and history are taken over, otherwise the device rebuilds the history with its next turn frame.
 */
import {
  decodeFrame,
  encodeFrame,
  CodecError,
  type DecodedFrame,
  type Frame,
  type FrameLimits,
  type DoneReason,
} from '@dssd/codec';
import {
  CandidateCountChooser,
  PipelineVerifier,
  SessionRng,
  SpecStats,
  processLogits,
  sampleFrom,
  type RoundRules,
} from '@dssd/kernel';
import { ProtocolError, ProtocolErrorCode, WIRE_CODES } from '../errors.js';
import type { LmSession } from '../lm.js';
import {
  CANDIDATES,
  DEFAULT_EDGE_LIMITS,
  PROTOCOL_VERSION,
  stopTokens,
  validateHello,
  type EdgeLimits,
  type ModelIdentity,
  type SessionSettings,
  type TargetCost,
} from '../settings.js';
import { historyDigest, parseResume, randomHex, type ResumeAnswer } from '../wire/resume.js';
import { RoundBucket } from './rate.js';
import {
  recordCandidateReport,
  verifyBlock,
  verifyDraft,
  verifyDsdDraft,
  type CandidateState,
  type HeldDistribution,
} from './verify.js';

/** What a resumed session takes over from the one its device lost. */
export interface HeldSession {
  history: number[];
  target: LmSession;
  turn: number;
}

/** Answer of EdgeSessionOptions.resume: the held state, no such session, or a wrong secret. */
export type ResumeLookup = HeldSession | 'unknown' | 'denied';

/** Counters an operator cares about (exported by the edge node as Prometheus metrics). */
export interface EdgeSessionMetrics {
  rounds: number;
  forwardPasses: number;
  tokensScored: number;
  generatedTokens: number;
  fullRequests: number;
  errors: number;
  verifyMs: number[];
  stats: SpecStats;
}

export interface EdgeSessionOptions {
  sessionId: number;
  model: ModelIdentity;
  /** Creates the target session (own KV cache) once the hello is accepted. */
  createTarget: () => LmSession | Promise<LmSession>;
  /** The edge's secret seed, used for its uniforms when the device gives no session seed. */
  secretSeed: number;
  limits?: Partial<EdgeLimits>;
  /** Pads every target forward pass to a + b·tokens ms (benchmarks: EMULATION of a larger model). */
  targetCost?: TargetCost;
  /** Sends an encoded frame to the device. */
  send: (frame: Uint8Array) => Promise<void> | void;
  /** Observer of each verify pass (or AR step) duration, for latency histograms. */
  onVerify?: (ms: number, kind: 'verify' | 'ar') => void;
  /** The round's decision rules (default: the kernel's exact ones; test tools wrap them). */
  rules?: RoundRules;
  /** Observer for errors sent (metrics, logs). */
  onError?: (code: ProtocolErrorCode, message: string) => void;
  /** Looks up a session a device asks to resume (absent: every resume rebuilds from the device's tokens). */
  resume?: (sessionId: number, secret: string) => ResumeLookup | Promise<ResumeLookup>;
  /**
   * Set when the device joined with a single-use token already spent: the hello must resume, with its secret,
   * a session held for that token (or a later session of it), else the session is refused.
   */
  requireResume?: (sessionId: number) => boolean;
  /** Called once the hello is accepted, before the welcome is sent (the owner tightens its frame limit). */
  onSettled?: (settings: SessionSettings) => void;
  now?: () => number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class EdgeSession {
  readonly id: number;
  readonly limits: EdgeLimits;
  settings: SessionSettings | null = null;
  /** Tokens both sides agree on (the device's committed history as far as the edge knows it). */
  history: number[] = [];
  readonly metrics: EdgeSessionMetrics = {
    rounds: 0,
    forwardPasses: 0,
    tokensScored: 0,
    generatedTokens: 0,
    fullRequests: 0,
    errors: 0,
    verifyMs: [],
    stats: new SpecStats(),
  };
  private target: LmSession | null = null;
  private rng: SessionRng | null = null;
  private maxContext = 0;
  private turn = 0;
  private round = 0;
  private turnActive = false;
  private awaitingPrev = false;
  private pendingFull: HeldDistribution | null = null;
  private arRunning: Promise<void> | null = null;
  private arStop = false;
  private chain: Promise<void> = Promise.resolve();
  /** Pipelined mode: the block verifier (null in serial mode). */
  private blocks: PipelineVerifier | null = null;
  /** The candidates codec's K: learned from the trials devices report (candidates: 'auto'). */
  private readonly cand: CandidateState = { chooser: null, lastK: null };
  private closed = false;
  private roundBase = 0;
  private readonly bucket: RoundBucket;
  /** Proves the device's right to resume this session (hex, 128 bits); issued in the welcome. */
  resumeSecret = '';
  /**
   * When the device last made protocol progress (hello, turn, draft, full request, stop; pings do not count), for
   * the owner's idle timeout.
   */
  lastActivity: number;
  /** When the session started (the owner's hello deadline reads it). */
  readonly openedAt: number;
  private readonly now: () => number;

  constructor(private readonly opts: EdgeSessionOptions) {
    this.id = opts.sessionId;
    this.limits = { ...DEFAULT_EDGE_LIMITS, ...opts.limits };
    this.now = opts.now ?? (() => performance.now());
    this.lastActivity = this.now();
    this.openedAt = this.lastActivity;
    this.bucket = new RoundBucket(this.limits.maxRoundsPerSecond, this.now);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Hands over this session's KV cache and history to a resuming session, once queued work is done; this
   * session is closed and must not dispose the target any more.
   */
  async release(): Promise<HeldSession | null> {
    this.close();
    await this.idle().catch(() => undefined);
    const t = this.target;
    if (!t || !this.settings) return null;
    this.target = null;
    return { history: this.history, target: t, turn: this.turn };
  }

  /** The target session to dispose when this session ends (null once released). */
  get targetSession(): LmSession | null {
    return this.target;
  }

  /** Tells the device why the session ends (idle timeout, shutdown) and closes it. */
  async expire(code: ProtocolErrorCode, message: string): Promise<void> {
    await this.sendError(code, message, 0);
    this.close();
  }

  private frameLimits(): FrameLimits {
    return {
      vocabSize: this.settings ? this.opts.model.vocabSize : undefined,
      maxGamma: this.limits.maxGamma,
      maxTokens: this.limits.maxPromptTokens,
      maxPayloadBytes: this.limits.maxFrameBytes,
    };
  }

  /** Handles one received frame; frames are processed strictly in order. Never rejects. */
  handle(bytes: Uint8Array): Promise<void> {
    const next = this.chain.then(() => this.process(bytes));
    this.chain = next.catch(() => undefined);
    return this.chain;
  }

  /** Waits for queued frames and any running AR generation. */
  async idle(): Promise<void> {
    await this.chain;
    await this.arRunning;
  }

  close(): void {
    this.closed = true;
    this.arStop = true;
  }

  private async process(bytes: Uint8Array): Promise<void> {
    if (this.closed) return;
    let frame: DecodedFrame;
    try {
      if (bytes.length === 0) throw new ProtocolError(ProtocolErrorCode.BadFrame, 'malformed chunk');
      frame = decodeFrame(bytes, this.frameLimits());
    } catch (e) {
      const msg = e instanceof CodecError ? `bad frame: ${e.message}` : (e as Error).message;
      await this.sendError(ProtocolErrorCode.BadFrame, msg, 0);
      return;
    }
    // Only progress keeps a session alive: a peer that only pings (or sends garbage) still times out.
    if (frame.kind !== 'ping') this.lastActivity = this.now();
    try {
      await this.dispatch(frame);
    } catch (e) {
      const err =
        e instanceof ProtocolError
          ? e
          : new ProtocolError(ProtocolErrorCode.Internal, `internal error: ${(e as Error).message}`);
      if (!(e instanceof ProtocolError)) this.resetCache();
      await this.sendError(err.code, err.message, frame.round);
    }
  }

  private async dispatch(f: DecodedFrame): Promise<void> {
    if (f.kind === 'ping') return this.send({ kind: 'pong', t: f.t }, f.round);
    if (f.kind === 'hello') return this.onHello(f.body);
    if (!this.settings)
      throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, `'${f.kind}' before hello`);
    if (f.sessionId !== this.id) {
      throw new ProtocolError(
        ProtocolErrorCode.BadFrame,
        `frame for session ${f.sessionId}, this is ${this.id}`,
      );
    }
    // A stale pipelined block (drafted on a prefix a rejection, a stop or the turn's end discarded) is dropped
    // before anything is counted: it consumes no uniforms, no rate budget and no held distribution.
    if (f.kind === 'draft' && this.blocks && this.isStaleBlock(f.round, f.prevToken !== undefined)) return;
    if (f.kind === 'turn' || f.kind === 'draft' || f.kind === 'dsdDraft') this.bucket.take();
    switch (f.kind) {
      case 'turn':
        return this.onTurn(f.base, Array.from(f.ids), f.maxNewTokens, f.round);
      case 'draft':
        if (f.candidateTrials !== undefined) recordCandidateReport(this.cand, f.candidateTrials);
        return this.onDraft(f.round, Array.from(f.ids), Array.from(f.q), f.prevToken);
      case 'dsdDraft':
        return this.onDsdDraft(f.round, Array.from(f.ids), f.dists);
      case 'fullRequest':
        return this.onFullRequest(f.j, f.round);
      case 'stop':
        this.arStop = true;
        this.turnActive = false;
        return;
      default:
        throw new ProtocolError(
          ProtocolErrorCode.UnexpectedFrame,
          `the edge does not accept '${f.kind}' frames`,
        );
    }
  }

  private async onHello(body: Record<string, unknown>): Promise<void> {
    if (this.settings) throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, 'session already started');
    const hello = validateHello(body, { maxGamma: this.limits.maxGamma });
    const resume = parseResume(body.resume);
    const m = this.opts.model;
    if (hello.model.tokenizerHash !== m.tokenizerHash) {
      throw new ProtocolError(
        ProtocolErrorCode.TokenizerMismatch,
        `tokenizer mismatch: the device's model uses tokenizer ${hello.model.tokenizerHash.slice(0, 12)}…, ` +
          `this edge's model (${m.name ?? 'target'}) uses ${m.tokenizerHash.slice(0, 12)}…; pair models that share a tokenizer`,
      );
    }
    if (hello.model.vocabSize !== m.vocabSize) {
      throw new ProtocolError(
        ProtocolErrorCode.TokenizerMismatch,
        `vocabulary size ${hello.model.vocabSize} differs from the edge's ${m.vocabSize}`,
      );
    }
    const s = hello.settings;
    if (!this.limits.allowedModes.includes(s.mode)) {
      throw new ProtocolError(
        ProtocolErrorCode.ModeNotAllowed,
        `mode '${s.mode}' is not allowed on this edge`,
      );
    }
    if (s.mode === 'dssd' && !this.limits.allowedCodecs.includes(s.codec)) {
      throw new ProtocolError(
        ProtocolErrorCode.ModeNotAllowed,
        `codec '${s.codec}' is not allowed on this edge`,
      );
    }
    this.maxContext = Math.min(m.maxContext, hello.model.maxContext, this.limits.maxContext);
    let resumed: ResumeAnswer | undefined;
    const mustResume = this.opts.requireResume;
    if (mustResume && (!resume || !mustResume(resume.sessionId))) {
      throw new ProtocolError(ProtocolErrorCode.Unauthorized, 'this join token was already used');
    }
    if (resume) {
      const found = this.opts.resume ? await this.opts.resume(resume.sessionId, resume.secret) : 'unknown';
      if (mustResume && typeof found === 'string') {
        throw new ProtocolError(ProtocolErrorCode.Unauthorized, 'this join token was already used');
      }
      // A wrong secret is answered like an unknown id (a rebuild from the device's committed tokens), so the
      // answer never tells which session ids exist; Unauthorized would also break resume after a restart.
      if (typeof found !== 'string') {
        this.target = found.target;
        this.history = found.history.slice(0, this.maxContext);
        if (this.target.length > this.history.length) this.target.truncate(this.history.length);
        this.turn = found.turn;
      }
      // The longest prefix both sides may share; the digest lets the device check that they do.
      const held = Math.min(this.history.length, resume.committed);
      resumed = { held, digest: historyDigest(this.history, held) };
    }
    this.target ??= await this.opts.createTarget();
    this.settings = s;
    this.opts.onSettled?.(s);
    this.rng = new SessionRng(s.seed ?? this.opts.secretSeed);
    this.blocks = s.pipeline ? new PipelineVerifier(this.opts.rules) : null;
    if (s.codec === 'candidates' && s.candidates === 'auto')
      this.cand.chooser = new CandidateCountChooser({
        vocabSize: m.vocabSize,
        minK: CANDIDATES.min,
        maxK: CANDIDATES.max,
        initialK: CANDIDATES.initialK,
      });
    this.resumeSecret = randomHex(16);
    await this.send(
      {
        kind: 'welcome',
        body: {
          protocol: PROTOCOL_VERSION,
          sessionId: this.id,
          model: { ...m },
          maxContext: this.maxContext,
          resumeSecret: this.resumeSecret,
          ...(resumed ? { resumed } : {}),
        },
      },
      0,
    );
  }

  private async onTurn(base: number, ids: number[], maxNewTokens: number, wireRound: number): Promise<void> {
    // After a stop (a device re-syncing an ar turn) the generation ends within one step: wait for it.
    if (this.arRunning && this.arStop) await this.arRunning;
    if (this.arRunning)
      throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, 'a turn is still generating');
    if (base > this.history.length) {
      throw new ProtocolError(
        ProtocolErrorCode.BadFrame,
        `turn base ${base} is beyond the ${this.history.length} tokens the edge holds`,
      );
    }
    if (ids.length === 0)
      throw new ProtocolError(ProtocolErrorCode.BadFrame, 'a turn needs at least one token');
    if (base + ids.length >= this.maxContext) {
      throw new ProtocolError(
        ProtocolErrorCode.PromptTooLong,
        `prompt too long: the history would hold ${base + ids.length} tokens, the context is ${this.maxContext}`,
      );
    }
    if (maxNewTokens < 1 || maxNewTokens > this.limits.maxNewTokens) {
      throw new ProtocolError(
        ProtocolErrorCode.BadSettings,
        `maxNewTokens must be in [1, ${this.limits.maxNewTokens}], got ${maxNewTokens}`,
      );
    }
    this.history = this.history.slice(0, base).concat(ids);
    if (this.target!.length > base) this.target!.truncate(base);
    this.turn++;
    this.round = 0;
    this.roundBase = wireRound;
    this.turnActive = true;
    this.awaitingPrev = false;
    this.pendingFull = null;
    this.blocks?.reset(wireRound);
    if (this.settings!.mode === 'ar') {
      this.arStop = false;
      this.arRunning = this.generateAr(maxNewTokens).finally(() => (this.arRunning = null));
    }
  }

  /** One forward pass over the uncached history plus `extra`; returns the rows from the last history token on. */
  private async score(extra: number[]): Promise<Float32Array[]> {
    const t = this.target!;
    const feed = this.history.slice(t.length).concat(extra);
    const t0 = this.now();
    const rows = await t.forward(feed);
    const d = this.opts.targetCost;
    if (d) {
      const pad = d.a + d.b * feed.length - (this.now() - t0);
      if (pad > 0) await sleep(pad);
    }
    this.metrics.forwardPasses++;
    this.metrics.tokensScored += feed.length;
    return rows.slice(rows.length - extra.length - 1);
  }

  private checkRound(round: number, gamma: number, carried: number): void {
    if (this.settings!.mode === 'ar')
      throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, 'drafts in ar mode');
    if (!this.turnActive) throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, 'draft outside a turn');
    // The turn frame took round R0 itself; its drafts are R0 + 1, R0 + 2, …
    const want = this.roundBase + 1 + this.round;
    if (round !== want) {
      throw new ProtocolError(
        ProtocolErrorCode.UnexpectedFrame,
        `draft for round ${round}, expected ${want}`,
      );
    }
    if (gamma > this.settings!.gamma) {
      throw new ProtocolError(
        ProtocolErrorCode.BadFrame,
        `γ = ${gamma} exceeds the agreed ${this.settings!.gamma}`,
      );
    }
    // γ is clamped at the context end: history + drafts + the bonus token must fit.
    const need = this.history.length + carried + gamma + 1;
    if (need > this.maxContext) {
      throw new ProtocolError(
        ProtocolErrorCode.ContextFull,
        `the round would need ${need} positions; the context is ${this.maxContext}`,
      );
    }
  }

  private isStaleBlock(round: number, carriesResample: boolean): boolean {
    return !this.turnActive || this.blocks!.isStale({ index: round, carriesResample });
  }

  /**
   * A pipelined block: the edge feeds the uncached tokens (the piggybacked resampled token first, or the last
   * block's final draft) and every draft but the last, verifies in order with no bonus, and answers `accepted`
   * or `reject`. The last draft of an accepted block stays uncached: the next block feeds it.
   */
  private async onBlock(round: number, ids: number[], q: number[], prev: number | undefined): Promise<void> {
    const s = this.settings!;
    if (!this.turnActive) throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, 'draft outside a turn');
    if (ids.length > s.gamma) {
      throw new ProtocolError(
        ProtocolErrorCode.BadFrame,
        `block of ${ids.length} exceeds the agreed γ = ${s.gamma}`,
      );
    }
    const need = this.history.length + (prev === undefined ? 0 : 1) + ids.length;
    if (need > this.maxContext) {
      throw new ProtocolError(
        ProtocolErrorCode.ContextFull,
        `the block would need ${need} positions; the context is ${this.maxContext}`,
      );
    }
    if (prev !== undefined) this.history.push(prev);
    this.pendingFull = null;
    const t0 = this.now();
    const rows = await this.score(ids.slice(0, -1));
    const base = this.history.length;
    let v;
    try {
      v = verifyBlock({
        verifier: this.blocks!,
        rows,
        ids,
        q,
        carriesResample: prev !== undefined,
        settings: s,
        rng: (index) => this.rng!.round(this.turn, index),
        round,
        cand: this.cand,
      });
    } catch (e) {
      if (prev !== undefined) this.history.pop();
      throw e;
    }
    if (v === null) return; // cannot happen after isStaleBlock; kept so a stale block never touches state
    this.history.push(...v.appended);
    if (v.truncateTo !== null) this.target!.truncate(base + v.truncateTo);
    this.pendingFull = v.held;
    this.metrics.stats.recordRound(ids.length, v.accepted, v.outcome);
    this.endRound(t0);
    return this.send(v.frame, round);
  }

  private async onDraft(round: number, ids: number[], q: number[], prev: number | undefined): Promise<void> {
    const s = this.settings!;
    if (s.mode === 'dssd' && s.pipeline) return this.onBlock(round, ids, q, prev);
    if (s.mode !== 'dssd')
      throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, `draft frames in ${s.mode} mode`);
    if (this.awaitingPrev && prev === undefined) {
      throw new ProtocolError(ProtocolErrorCode.BadFrame, 'the resampled token of the last round is missing');
    }
    if (!this.awaitingPrev && prev !== undefined) {
      throw new ProtocolError(ProtocolErrorCode.BadFrame, 'unexpected piggybacked token');
    }
    this.checkRound(round, ids.length, prev === undefined ? 0 : 1);
    if (prev !== undefined) {
      this.history.push(prev);
      this.awaitingPrev = false;
    }
    this.pendingFull = null;
    const t0 = this.now();
    const rows = await this.score(ids);
    const base = this.history.length;
    const v = verifyDraft({
      rows,
      ids,
      q,
      settings: s,
      rng: this.rng!.round(this.turn, this.round),
      round,
      cand: this.cand,
      rules: this.opts.rules,
    });
    this.history.push(...v.appended);
    if (v.truncateTo !== null) {
      this.target!.truncate(base + v.truncateTo);
      this.awaitingPrev = true;
    }
    this.pendingFull = v.held;
    this.metrics.stats.recordRound(ids.length, v.accepted, v.outcome);
    this.endRound(t0);
    return this.send(v.frame, round);
  }

  private async onDsdDraft(round: number, ids: number[], dists: Float32Array[]): Promise<void> {
    const s = this.settings!;
    if (s.mode !== 'dsd')
      throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, `dsdDraft frames in ${s.mode} mode`);
    this.checkRound(round, ids.length, 0);
    const t0 = this.now();
    const rows = await this.score(ids);
    const base = this.history.length;
    const v = verifyDsdDraft({
      rows,
      ids,
      dists,
      settings: s,
      rng: this.rng!.round(this.turn, this.round),
      rules: this.opts.rules,
    });
    this.history.push(...v.appended);
    if (v.truncateTo !== null) this.target!.truncate(base + v.truncateTo);
    this.metrics.stats.recordRound(ids.length, v.accepted, v.outcome);
    this.endRound(t0);
    return this.send(v.frame, round);
  }

  private endRound(t0: number): void {
    const ms = this.now() - t0;
    this.metrics.rounds++;
    this.opts.onVerify?.(ms, 'verify');
    this.metrics.verifyMs.push(ms);
    if (this.metrics.verifyMs.length > 4096) this.metrics.verifyMs.splice(0, 2048);
    this.round++;
  }

  private async onFullRequest(j: number, round: number): Promise<void> {
    const pf = this.pendingFull;
    if (!pf || pf.j !== j || pf.round !== round) {
      throw new ProtocolError(
        ProtocolErrorCode.UnexpectedFrame,
        `no distribution is held for round ${round}, j = ${j}`,
      );
    }
    this.pendingFull = null;
    this.metrics.fullRequests++;
    this.metrics.stats.fallbacks++;
    return this.send({ kind: 'fullResponse', j, p: pf.p }, round);
  }

  private async generateAr(maxNewTokens: number): Promise<void> {
    const s = this.settings!;
    const stops = stopTokens(this.opts.model);
    try {
      for (let n = 0; n < maxNewTokens; n++) {
        if (this.arStop || this.closed) {
          await this.send({ kind: 'arTokens', ids: [], done: 'stopped' }, this.roundBase + n);
          return;
        }
        const t0 = this.now();
        const rows = await this.score([]);
        const P = processLogits(rows[0], s.sampling);
        const tok = sampleFrom(P, this.rng!.ar(this.turn, n));
        this.history.push(tok);
        this.metrics.generatedTokens++;
        const ms = this.now() - t0;
        this.opts.onVerify?.(ms, 'ar');
        this.metrics.verifyMs.push(ms);
        if (this.metrics.verifyMs.length > 4096) this.metrics.verifyMs.splice(0, 2048);
        let done: DoneReason | undefined;
        if (stops.has(tok)) done = 'eos';
        else if (n + 1 === maxNewTokens) done = 'maxTokens';
        else if (this.history.length >= this.maxContext) done = 'contextEnd';
        await this.send({ kind: 'arTokens', ids: [tok], ...(done ? { done } : {}) }, this.roundBase + n);
        if (done) return;
      }
    } catch (e) {
      this.resetCache();
      const err =
        e instanceof ProtocolError ? e : new ProtocolError(ProtocolErrorCode.Internal, (e as Error).message);
      await this.sendError(err.code, err.message, 0);
    } finally {
      this.turnActive = false;
    }
  }

  private resetCache(): void {
    try {
      this.target?.truncate(0);
    } catch {
      // The cache is rebuilt from the history on the next pass either way.
    }
  }

  private async send(frame: Frame, round: number): Promise<void> {
    if (this.closed) return;
    const bytes = encodeFrame(frame, { sessionId: this.id, round, vocabSize: this.opts.model.vocabSize });
    try {
      await this.opts.send(bytes);
    } catch {
      this.closed = true; // the channel is gone; the owner notices its close event
    }
  }

  private async sendError(code: ProtocolErrorCode, message: string, round: number): Promise<void> {
    this.metrics.errors++;
    this.opts.onError?.(code, message);
    await this.send({ kind: 'error', code: WIRE_CODES[code], message }, round);
  }
}
