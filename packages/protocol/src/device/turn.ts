/**
 * One turn on the device: the speculative loop (draft γ, uplink, apply the verdict, resample with the kernel's
 * round functions), the edge-only `ar` client, re-sync after faults and the offline fallback.
 */
import type { DoneReason, Frame, DecodedFrame, RejectionBody } from '@dssd/codec';
import {
  SpecStats,
  pipelineFirstBlock,
  processLogits,
  resampleRejected,
  resolveRejectionCandidates,
  sampleFrom,
  type RoundRng,
  type SessionRng,
} from '@dssd/kernel';
import { ProtocolError, ProtocolErrorCode } from '../errors.js';
import { PIPELINE, stopTokens, type SessionSettings, type WelcomeBody } from '../settings.js';
import type { TransportCounters } from '../wire/transport.js';
import { choosePipeline, type GammaController } from './adaptive.js';
import type { DeviceOptions, GenerateOptions, TokenOrigin, TurnResult, TurnStats } from './types.js';

/** The session as a turn sees it. */
export interface TurnSession {
  readonly settings: SessionSettings;
  /** Committed tokens of the whole conversation (the turn appends to it). */
  readonly history: number[];
  readonly stats: SpecStats;
  readonly welcome: WelcomeBody;
  readonly maxContext: number;
  readonly counters: TransportCounters;
  readonly transport: { readonly closed: boolean };
}

/** The session's private state a turn drives. */
export interface TurnHooks {
  readonly opts: DeviceOptions;
  readonly rng: SessionRng;
  readonly gammaCtl: GammaController | null;
  next(): Promise<DecodedFrame>;
  /** A frame already received, or null; throws a pending failure like next(). */
  poll(): DecodedFrame | null;
  /** Whether a frame (or a failure) is waiting, without taking it. */
  hasFrame(): boolean;
  send(f: Frame, round: number): Promise<void>;
  edgeKnown(): number;
  setEdgeKnown(n: number): void;
  nextTurn(): number;
  now(): number;
  /** Reserves `n` wire rounds from the next one on; frames for earlier rounds are stale from now. */
  takeRounds(n: number): number;
  /** Reserves the next wire round without making earlier ones stale (pipelined blocks). */
  nextRound(): number;
  /** After a failed round: reconnects/resumes when needed; returns the history length both sides hold. */
  recover(): Promise<number>;
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
    draftSteps: 0,
    waitMs: 0,
    kernelMs: 0,
    gammas: [],
    recoveries: 0,
    unverifiedTokens: 0,
    wastedDrafts: 0,
  };
}

/** One turn's state machine. */
export class TurnRun {
  private readonly tokens: number[] = [];
  private readonly origins: TokenOrigin[] = [];
  private readonly spec = new SpecStats();
  private readonly stats: TurnStats;
  private turn = 0;
  /** Wire round of the current attempt's turn frame. */
  private r0 = 0;
  private done: DoneReason | null = null;
  /**
   * EMULATION: ms by which earlier padded drafts overshot `draftCostMs` (a timer on a shared event loop fires
   * late); the next pads are shortened by it so the mean drafted-token cost stays the nominal one.
   */
  private draftOvershoot = 0;
  /** Transport counters when the turn began. */
  private readonly start: { up: number; down: number; mu: number; md: number };

  constructor(
    private readonly s: TurnSession,
    private readonly i: TurnHooks,
    private readonly prompt: number[],
    private readonly o: GenerateOptions,
  ) {
    const c = s.counters;
    this.start = { up: c.bytesSent, down: c.bytesReceived, mu: c.chunksSent, md: c.chunksReceived };
    this.stats = emptyTurnStats();
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
          if (resync) base = await this.i.recover();
          await this.sendTurn(base, resync);
          if (s.settings.mode === 'ar') await this.runAr();
          else if (s.settings.pipeline) await this.runPipelined();
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
          this.stats.recoveries++;
          resync = true;
        }
      }
    } finally {
      this.finishStats(start);
    }
    return { tokens: this.tokens, origins: this.origins, done: this.done ?? 'stopped', stats: this.stats };
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
      this.stats.unverifiedTokens++;
      if (!this.commit([x], ['unverified'])) return;
    }
  }

  private finishStats(start: number): void {
    const c = this.s.counters;
    const t = this.stats;
    t.uplinkBytes = c.bytesSent - this.start.up;
    t.downlinkBytes = c.bytesReceived - this.start.down;
    t.messagesUp = c.chunksSent - this.start.mu;
    t.messagesDown = c.chunksReceived - this.start.md;
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
    const stops = stopTokens(this.s.welcome.model);
    const budget = this.o.maxNewTokens - this.tokens.length;
    const eosAt = toks.findIndex((t) => stops.has(t));
    let n = eosAt >= 0 ? eosAt + 1 : toks.length;
    if (eosAt >= 0 && n <= budget) this.done = 'eos';
    else if (n >= budget) {
      n = budget;
      this.done = 'maxTokens';
    }
    const kept = toks.slice(0, n);
    this.s.history.push(...kept);
    const visible = this.done === 'eos' && stops.has(kept[kept.length - 1]) ? kept.slice(0, -1) : kept;
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
      this.stats.waitMs += this.i.now() - w0;
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
      this.stats.llmForwardPasses += ids.length;
      this.stats.rounds += ids.length;
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
    /** Candidate trials of the last rejection, reported with the next draft frame. */
    let trials: number | undefined;
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
      this.stats.gammas.push(gamma);
      const rng = this.i.rng.round(this.turn, round);
      const N = s.history.length;
      // ---- draft ----
      const d0 = this.i.now();
      if (drafter.length >= N) drafter.truncate(N - 1);
      const drafts: number[] = [];
      const q: number[] = [];
      const Qs: Float32Array[] = [];
      let feed = s.history.slice(drafter.length);
      for (let k = 1; k <= gamma; k++) {
        const { x, Q } = await this.draftToken(feed, rng.draft(k));
        drafts.push(x);
        q.push(Q[x]);
        Qs.push(Q);
        feed = [x];
      }
      const draftMs = this.i.now() - d0;
      this.stats.draftMs += draftMs;
      // ---- uplink and verdict ----
      const w0 = this.i.now();
      const wireRound = this.i.takeRounds(1);
      if (dsd) {
        await this.i.send(
          { kind: 'dsdDraft', ids: drafts, dists: Qs, encoding: set.dsdPrecision },
          wireRound,
        );
      } else {
        await this.i.send(
          {
            kind: 'draft',
            ids: drafts,
            q,
            ...(prev !== undefined ? { prevToken: prev } : {}),
            ...(trials !== undefined ? { candidateTrials: trials } : {}),
          },
          wireRound,
        );
      }
      prev = undefined;
      trials = undefined;
      const f = await this.i.next();
      const waitMs = this.i.now() - w0;
      this.stats.waitMs += waitMs;
      this.stats.rounds++;
      this.stats.llmForwardPasses++;
      if (f.kind !== 'verdict' || f.round !== wireRound) {
        throw new ProtocolError(
          ProtocolErrorCode.UnexpectedFrame,
          `expected the verdict of round ${wireRound}, got ${f.kind} (round ${f.round})`,
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
          ({ y, fallback, trials } = await this.resolveReject(f.body, Qs[j - 1], j, rng, wireRound));
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
      this.stats.kernelMs += this.i.now() - k0;
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

  /** One draft token: the drafter scores `feed`, Q is processed, x ~ Q; padded to the emulated draft cost. */
  private async draftToken(feed: number[], u: number): Promise<{ x: number; Q: Float32Array }> {
    const t0 = this.i.now();
    const rows = await this.i.opts.drafter!.forward(feed);
    const Q = processLogits(rows[rows.length - 1], this.s.settings.draftSampling);
    const x = sampleFrom(Q, u);
    this.stats.draftSteps++;
    const cost = this.i.opts.draftCostMs ?? 0;
    if (cost > 0) {
      const pad = cost - (this.i.now() - t0) - this.draftOvershoot;
      if (pad > 0) await sleep(pad);
      // Carry at most one token's cost, so a long stall (a GC, a busy edge) is not repaid by many free drafts.
      this.draftOvershoot = Math.min(cost, Math.max(0, this.draftOvershoot + this.i.now() - t0 - cost));
    }
    return { x, Q };
  }

  /** The residual token after a reject verdict at j: from the candidates, or from P_j (asked for in full if needed). */
  private async resolveReject(
    body: RejectionBody,
    Qj: Float32Array,
    j: number,
    rng: RoundRng,
    wireRound: number,
  ): Promise<{ y: number; fallback: boolean; trials?: number }> {
    const rules = this.i.opts.rules;
    if (body.encoding !== 'candidates') {
      if (body.p.length !== Qj.length)
        throw new ProtocolError(ProtocolErrorCode.BadFrame, 'P_j has the wrong size');
      return { y: resampleRejected(body.p, Qj, j, rng, rules), fallback: false };
    }
    const hit = resolveRejectionCandidates(body, Qj, j, rng);
    // The trial count (0: all failed) goes up with the next draft: the edge's K chooser learns from it.
    if (hit !== null) return { y: hit.token, fallback: false, trials: hit.trials };
    await this.i.send({ kind: 'fullRequest', j }, wireRound);
    const full = await this.i.next();
    if (full.kind !== 'fullResponse' || full.j !== j || full.round !== wireRound) {
      throw new ProtocolError(ProtocolErrorCode.UnexpectedFrame, `expected P_${j} in full, got ${full.kind}`);
    }
    return { y: resampleRejected(full.p, Qj, j, rng, rules), fallback: true, trials: 0 };
  }

  /**
   * Pipelined DSSD: keep drafting while blocks are in flight, at most `window` unverified tokens, each block up
   * to γ drafts with its own (never reused) block number; verdicts are applied in order. A block never gets a
   * bonus. After a rejection every unverified draft is discarded (the edge drops the blocks built on them as
   * stale) and the next block carries the resampled token. Every draft sent was sampled from the Q kept here.
   */
  private async runPipelined(): Promise<void> {
    const s = this.s;
    const set = s.settings;
    const drafter = this.i.opts.drafter!;
    const fixed = { block: set.gamma, window: set.window || PIPELINE.windowBlocks * set.gamma };
    const stops = stopTokens(s.welcome.model);
    /** Blocks sent and not yet answered, oldest first; their drafts follow the committed history in order. */
    const inflight: {
      round: number;
      drafts: number[];
      Qs: Float32Array[];
      draftMs: number;
      sentAt: number;
    }[] = [];
    let unverified = 0;
    let prev: number | undefined;
    /** Candidate trials of the last rejection, reported with the next draft frame. */
    let trials: number | undefined;
    let endDrafted = false; // an EOS was drafted: nothing beyond it until the verdicts say
    let epochStart = true; // nothing in flight follows the committed history yet (turn start, or a rejection)
    for (;;) {
      if (this.o.signal?.aborted) {
        // Blocks still in flight become stale at the edge: nothing more is verified for this turn.
        if (inflight.length) await this.i.send({ kind: 'stop' }, 0);
        this.done = 'stopped';
        break;
      }
      const remaining = this.o.maxNewTokens - this.tokens.length;
      const room = s.maxContext - 1 - s.history.length - unverified;
      // Adaptive: block size and window from the pipelined model; otherwise the settings'.
      const ctl = this.i.gammaCtl;
      const { block, window } = ctl ? choosePipeline(ctl, PIPELINE.windowBlocks) : fixed;
      // An epoch's first block is shorter: its verdict is on the critical path (kernel pipelineFirstBlock).
      const size = Math.min(window, epochStart ? pipelineFirstBlock(block) : block);
      // A block waits for room in the window instead of going out short: every block costs the edge a pass, and
      // a device busy drafting a filler token applies the next verdict up to one draft late.
      const windowFull = window - unverified < size;
      const budget = Math.min(size, remaining - unverified, room);
      let f = this.i.poll();
      if (!f && (windowFull || budget <= 0 || endDrafted)) {
        if (inflight.length === 0) {
          this.done = 'contextEnd'; // nothing in flight and no room to draft
          break;
        }
        const w0 = this.i.now();
        f = await this.i.next();
        this.stats.waitMs += this.i.now() - w0;
      }
      if (!f) {
        // ---- draft one block and send it ----
        const round = this.i.nextRound();
        const rng = this.i.rng.round(this.turn, round);
        const d0 = this.i.now();
        const N = s.history.length + unverified;
        const spec = inflight.flatMap((b) => b.drafts);
        const known = s.history.concat(spec);
        if (drafter.length >= N) drafter.truncate(N - 1);
        let feed = known.slice(drafter.length);
        const drafts: number[] = [];
        const q: number[] = [];
        const Qs: Float32Array[] = [];
        for (let k = 1; k <= budget; k++) {
          const { x, Q } = await this.draftToken(feed, rng.draft(k));
          drafts.push(x);
          q.push(Q[x]);
          Qs.push(Q);
          feed = [x];
          if (stops.has(x)) {
            endDrafted = true;
            break;
          }
          // A verdict is waiting: send the block as it stands and apply the verdict first (a rejection makes
          // drafting further on this prefix wasted). Nothing sampled is dropped: the drafts so far go up.
          if (this.i.hasFrame()) break;
        }
        const draftMs = this.i.now() - d0;
        this.stats.draftMs += draftMs;
        this.stats.gammas.push(drafts.length);
        await this.i.send(
          {
            kind: 'draft',
            ids: drafts,
            q,
            ...(prev !== undefined ? { prevToken: prev } : {}),
            ...(trials !== undefined ? { candidateTrials: trials } : {}),
          },
          round,
        );
        prev = undefined;
        trials = undefined;
        epochStart = false;
        inflight.push({ round, drafts, Qs, draftMs, sentAt: this.i.now() });
        unverified += drafts.length;
        continue;
      }
      // ---- apply the verdict of the oldest block ----
      const b = inflight.shift();
      if (!b || f.kind !== 'verdict' || f.round !== b.round) {
        throw new ProtocolError(
          ProtocolErrorCode.UnexpectedFrame,
          `expected the verdict of block ${b?.round}, got ${f.kind} (round ${f.round})`,
        );
      }
      this.stats.rounds++;
      this.stats.llmForwardPasses++;
      unverified -= b.drafts.length;
      const g = b.drafts.length;
      const k0 = this.i.now();
      let more: boolean;
      if (f.outcome === 'accepted') {
        if (f.j !== g + 1)
          throw new ProtocolError(
            ProtocolErrorCode.BadFrame,
            `accepted verdict with j = ${f.j}, block of ${g}`,
          );
        this.spec.recordRound(g, g, { bonus: false });
        more = this.commit(
          b.drafts,
          b.drafts.map((): TokenOrigin => 'draft'),
        );
        this.i.setEdgeKnown(s.history.length);
      } else if (f.outcome === 'reject') {
        const j = f.j;
        if (j < 1 || j > g)
          throw new ProtocolError(ProtocolErrorCode.BadFrame, `rejection at j = ${j} in a block of ${g}`);
        const rng = this.i.rng.round(this.turn, b.round);
        const r = await this.resolveReject(f.body, b.Qs[j - 1], j, rng, b.round);
        const { y, fallback } = r;
        trials = r.trials;
        this.spec.recordRound(g, j - 1, { resampled: true, fallback, fullRequest: fallback });
        // Everything drafted beyond j is discarded: the rest of this block and every later block.
        this.stats.wastedDrafts += g - j + unverified;
        inflight.length = 0;
        unverified = 0;
        endDrafted = false;
        epochStart = true;
        const N = s.history.length;
        this.i.setEdgeKnown(N + j - 1);
        prev = y;
        more = this.commit(
          [...b.drafts.slice(0, j - 1), y],
          [...b.drafts.slice(0, j - 1).map((): TokenOrigin => 'draft'), 'resampled'],
        );
        drafter.truncate(Math.min(drafter.length, N + j - 1));
      } else {
        throw new ProtocolError(
          ProtocolErrorCode.UnexpectedFrame,
          `unexpected verdict '${f.outcome}' (pipelined)`,
        );
      }
      this.stats.kernelMs += this.i.now() - k0;
      this.i.gammaCtl?.observe({
        gamma: g,
        accepted: f.outcome === 'accepted' ? g : f.j - 1,
        draftMs: b.draftMs,
        waitMs: k0 - b.sentAt,
      });
      if (!more) break;
    }
    // Drafts still in flight are wasted; the edge drops those blocks once the turn ends.
    this.stats.wastedDrafts += unverified;
    this.i.setEdgeKnown(Math.min(this.i.edgeKnown(), s.history.length));
    if (drafter.length > s.history.length) drafter.truncate(s.history.length);
  }
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
