/**
 * The edge node: one HTTP server that serves the web app (and the draft model and ORT wasm files it needs),
 * WebSocket signaling at /signal, /healthz, /metrics and /score, and one WebRTC peer + EdgeSession per device.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { createRequire } from 'node:module';
import { randomInt } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { WebSocketServer } from 'ws';
import { processLogits, validateSamplingParams, type RoundRules, type SamplingParams } from '@dssd/kernel';
import { DEFAULT_MODEL_DIRS, loadNodeModel } from '@dssd/models/node';
import type { KvSlab, LanguageModel, ModelSession, SlabSession } from '@dssd/models';
import { ReassemblyBudget } from '@dssd/codec';
import { nodeWebrtc } from '@dssd/protocol/node';
import {
  EDGE_NODE_DEFAULTS,
  SCORE_LIMITS,
  maxUplinkFrameBytes,
  EdgeSession,
  FrameTransport,
  ProtocolError,
  ProtocolErrorCode,
  SessionTable,
  DEFAULT_EDGE_LIMITS,
  DEVICE_TIMEOUTS,
  identityOf,
  parseSessionQuery,
  SESSION_QUERY,
  type EdgeLimits,
  type TargetCost,
  type WebrtcStack,
  BatchScheduler,
  type BatchCostTable,
  type LmSession,
} from '@dssd/protocol';
import { acceptPeer } from './signaling.js';
import { AccessPolicy, KeyedRate, issueJoinToken, type AccessConfig } from './access.js';
import { EdgeMetrics, renderBatchMetrics } from './metrics.js';
import { Logger } from './log.js';

const require = createRequire(import.meta.url);
/** The web app's build output, from the @dssd/web package. */
export const DEFAULT_WEB_ROOT = path.join(path.dirname(require.resolve('@dssd/web/package.json')), 'dist');

export interface EdgeNodeOptions {
  modelDir?: string;
  /** Draft model folder served to browsers at /models/draft/. */
  draftDir?: string;
  webRoot?: string;
  /**
   * Origins of pages that may embed the widget (frame embed.html, load widget.js with CORS), exact
   * `scheme://host[:port]`. Unset or containing '*': any origin (a public edge); the edge's own pages are only
   * ever framed by the edge itself.
   */
  allowedOrigins?: string[];
  port?: number;
  host?: string;
  maxSessions?: number;
  limits?: Partial<EdgeLimits>;
  /** Join credentials (shared secret, signed tokens). Unset: anyone who can reach the edge may join. */
  access?: AccessConfig;
  /** A session with no frame for this long is told so (Timeout) and closed (default 5 min). */
  idleTimeoutMs?: number;
  /** How long a session whose connection dropped is kept, KV cache included, for its device to resume (60 s). */
  resumeHoldMs?: number;
  /** WebRTC handshakes in progress at once (EDGE_NODE_DEFAULTS.maxPending); they count against maxSessions too. */
  maxPending?: number;
  /** Sessions held for a resume at once (EDGE_NODE_DEFAULTS.maxHeld). */
  maxHeld?: number;
  /** A peer must say hello this long after its channel opened (EDGE_NODE_DEFAULTS.helloTimeoutS). */
  helloTimeoutMs?: number;
  /** A partial frame must complete this long after its first chunk (EDGE_NODE_DEFAULTS.partialFrameTimeoutS). */
  partialFrameTimeoutMs?: number;
  /** Bytes of partial frames held edge-wide (EDGE_NODE_DEFAULTS.reassemblyBudgetBytes). */
  reassemblyBudgetBytes?: number;
  /** Error frames a peer may draw per errorLogIntervalS before it is disconnected (EDGE_NODE_DEFAULTS.maxPeerErrors). */
  maxPeerErrors?: number;
  /** Joins per second per client address (EDGE_NODE_DEFAULTS.joinsPerSecond). */
  joinsPerSecond?: number;
  /** /score bounds (SCORE_LIMITS). */
  score?: Partial<Record<keyof typeof SCORE_LIMITS, number>>;
  iceServers?: RTCIceServer[];
  /** WebRTC stack for the peers (EDGE_NODE_DEFAULTS.webrtc). */
  webrtc?: WebrtcStack;
  tls?: { cert: string; key: string };
  log?: Logger;
  /** Pads each target forward pass to a + b·tokens ms (benchmarks; labelled as EMULATION). */
  targetCost?: TargetCost;
  /** The round's decision rules (default: the kernel's exact ones; test tools wrap them). */
  rules?: RoundRules;
  /** Reuse an already loaded target (tests, benchmarks). */
  model?: LanguageModel;
  /**
   * Batched verification (`--batch`): every session's target passes join one continuous-batching queue over a KV
   * slab (one row per live or held session). `cost` is an EMULATED batched GPU cost (`--batch-cost`).
   */
  batch?: { tokenBudget?: number; cost?: BatchCostTable };
}

/** A session's target as the edge holds it: a ModelSession, or a slab row behind the batch scheduler. */
type Target = LmSession & { dispose(): void };

interface Live {
  edge: EdgeSession;
  transport: FrameTransport;
  target: Target | null;
}

/** Why the edge could not start (a busy port, a bad address), for a one-line message. */
export class EdgeStartError extends Error {
  override readonly name = 'EdgeStartError';
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A /score request the client gave up on. */
class ScoreCancelled extends Error {
  override readonly name = 'ScoreCancelled';
}

/** What the page needs from each static folder; build output (maps, .d.ts, tests, tsbuildinfo) is never served. */
const STATIC_ALLOW: Record<string, RegExp> = {
  '/ort/': /^ort-wasm[\w.-]*\.(?:wasm|mjs)$/,
  '/models/draft/': /^(?:[\w.-]+\.json|onnx\/[\w.-]+\.onnx(?:_data(?:_\d+)?|\.data)?)$/,
  '/': /^[\w-]+\.(?:html|js|css|svg|png|ico|txt)$/,
};

/**
 * Per-peer error logging: the first few errors of each code are logged in full, then one line per interval
 * with the count suppressed, so a peer sending garbage cannot flood the log (every error is still counted).
 */
class ErrorLogSampler {
  private readonly seen = new Map<string, { n: number; at: number; suppressed: number }>();
  suppressedTotal = 0;
  constructor(
    private readonly burst: number,
    private readonly intervalMs: number,
  ) {}
  /** Errors of one session in the current window, for the disconnect limit. */
  private readonly windows = new Map<number, { n: number; at: number }>();

  /** Counts an error of `session`; true once it drew more than `max` within the interval. */
  overLimit(session: number, max: number): boolean {
    const now = performance.now();
    let w = this.windows.get(session);
    if (!w || now - w.at > this.intervalMs) this.windows.set(session, (w = { n: 0, at: now }));
    return ++w.n > max;
  }

  /** Returns the number of suppressed errors to report with this line, or null to skip logging it. */
  admit(session: number, code: string): number | null {
    const key = `${session}:${code}`;
    const now = performance.now();
    const e = this.seen.get(key) ?? { n: 0, at: 0, suppressed: 0 };
    this.seen.set(key, e);
    e.n++;
    if (e.n <= this.burst) return 0;
    if (now - e.at >= this.intervalMs) {
      const s = e.suppressed;
      e.suppressed = 0;
      e.at = now;
      return s;
    }
    e.suppressed++;
    this.suppressedTotal++;
    return null;
  }
  forget(session: number): void {
    this.windows.delete(session);
    for (const k of this.seen.keys()) if (k.startsWith(`${session}:`)) this.seen.delete(k);
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

export class EdgeNode {
  readonly metrics = new EdgeMetrics();
  readonly sessions = new Map<number, Live>();
  url = '';
  /** WebRTC handshakes in progress (each holds a reserved session slot). */
  pending = 0;
  private readonly budget: ReassemblyBudget;
  private readonly joins: KeyedRate;
  private readonly issuerGuesses: KeyedRate;
  private readonly errorLog: ErrorLogSampler;
  /** /score requests running or waiting, and target passes running for live sessions. */
  private scoreQueued = 0;
  private sessionPasses = 0;
  private server!: http.Server | https.Server;
  private wss!: WebSocketServer;
  private readonly statics: [string, string][];
  private readonly log: Logger;
  private scoring: Promise<unknown> = Promise.resolve();
  readonly access: AccessPolicy;
  /** Live and recently lost sessions, for resumption. */
  readonly table: SessionTable;
  private idleSweep: ReturnType<typeof setInterval> | undefined;
  /** The batch scheduler and its slab when `batch` is on. */
  batcher: { scheduler: BatchScheduler<SlabSession>; slab: KvSlab } | null = null;

  private constructor(
    readonly model: LanguageModel,
    readonly opts: EdgeNodeOptions,
  ) {
    this.log = opts.log ?? new Logger('info');
    // Signaling origins: the edge's own, loopback pages, and the widget allow-list ('*': any).
    this.access = new AccessPolicy({ ...opts.access, allowedOrigins: opts.allowedOrigins });
    const N = EDGE_NODE_DEFAULTS;
    this.table = new SessionTable(
      opts.resumeHoldMs ?? N.resumeHoldS * 1000,
      (t) => (t as Target).dispose(),
      opts.maxHeld ?? N.maxHeld,
    );
    this.budget = new ReassemblyBudget(opts.reassemblyBudgetBytes ?? N.reassemblyBudgetBytes);
    const jps = opts.joinsPerSecond ?? N.joinsPerSecond;
    this.joins = new KeyedRate(jps, 2 * jps);
    this.issuerGuesses = new KeyedRate(N.issuerFailuresPerMinute / 60, N.issuerFailuresPerMinute);
    this.errorLog = new ErrorLogSampler(N.errorLogBurst, N.errorLogIntervalS * 1000);
    this.statics = [
      ['/ort/', path.dirname(require.resolve('onnxruntime-web'))],
      ['/models/draft/', opts.draftDir ?? DEFAULT_MODEL_DIRS.draft],
      ['/', opts.webRoot ?? DEFAULT_WEB_ROOT],
    ];
  }

  static async start(opts: EdgeNodeOptions = {}): Promise<EdgeNode> {
    const model = opts.model ?? (await loadNodeModel(opts.modelDir ?? DEFAULT_MODEL_DIRS.target));
    const node = new EdgeNode(model, opts);
    if (opts.batch) {
      const N = EDGE_NODE_DEFAULTS;
      const slab = await model.createSlab((opts.maxSessions ?? N.maxSessions) + (opts.maxHeld ?? N.maxHeld));
      node.batcher = { slab, scheduler: new BatchScheduler(slab, opts.batch) };
    }
    await node.listen();
    return node;
  }

  get identity() {
    return identityOf(this.model);
  }

  private async listen(): Promise<void> {
    const o = this.opts;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.route(req, res).catch((e) => {
        this.log.error('http handler failed', { url: req.url, error: (e as Error).message });
        if (!res.headersSent) res.writeHead(500).end('internal error\n');
      });
    };
    this.server = o.tls
      ? https.createServer({ cert: fs.readFileSync(o.tls.cert), key: fs.readFileSync(o.tls.key) }, handler)
      : http.createServer(handler);
    this.wss = new WebSocketServer({ server: this.server, path: '/signal', maxPayload: 256 * 1024 });
    this.wss.on('connection', (ws, req) => void this.onSignal(ws, req));
    // ws re-emits the HTTP server's errors; unhandled, a busy port would crash with a stack trace.
    this.wss.on('error', () => undefined);
    const port = o.port ?? EDGE_NODE_DEFAULTS.port;
    const bind = o.host ?? EDGE_NODE_DEFAULTS.host;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (e: NodeJS.ErrnoException) => {
        const why =
          e.code === 'EADDRINUSE'
            ? `port ${port} on ${bind} is already in use`
            : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND'
              ? `cannot bind to ${bind}: no such local address`
              : e.code === 'EACCES'
                ? `no permission to listen on port ${port}`
                : `cannot listen on ${bind}:${port}: ${e.message}`;
        reject(new EdgeStartError(e.code ?? 'Listen', why, { cause: e }));
      });
      this.server.listen(port, bind, () => resolve());
    });
    this.server.on('error', (e) => this.log.error('server error', { error: e.message }));
    const addr = this.server.address() as { port: number; address: string };
    const host =
      addr.address === '127.0.0.1' ||
      addr.address === '::1' ||
      addr.address === '::' ||
      addr.address === '0.0.0.0'
        ? 'localhost'
        : addr.address;
    this.url = `${o.tls ? 'https' : 'http'}://${host}:${addr.port}`;
    const N = EDGE_NODE_DEFAULTS;
    const idleMs = o.idleTimeoutMs ?? N.idleTimeoutS * 1000;
    const helloMs = o.helloTimeoutMs ?? N.helloTimeoutS * 1000;
    const partialMs = o.partialFrameTimeoutMs ?? N.partialFrameTimeoutS * 1000;
    const tick = Math.max(50, Math.min(1000, idleMs / 4, helloMs / 4, partialMs / 4));
    this.idleSweep = setInterval(() => this.expireIdle(idleMs, helloMs, partialMs), tick);
    this.idleSweep.unref();
  }

  private expireIdle(idleMs: number, helloMs: number, partialMs: number): void {
    const now = performance.now();
    for (const l of this.sessions.values()) {
      if (l.edge.isClosed) continue;
      // A partial frame has its own deadline: its memory is not held until the idle timeout.
      if (l.transport.expirePartial(partialMs) > 0) this.metrics.countError('PartialFrameTimeout');
      const silent = !l.edge.settings && now - l.edge.openedAt > helloMs;
      if (!silent && now - l.edge.lastActivity <= idleMs) continue;
      void l.edge
        .expire(
          ProtocolErrorCode.Timeout,
          silent
            ? `no hello within ${Math.round(helloMs / 1000)} s of the channel opening: the session is closed`
            : `no progress for ${Math.round(idleMs / 1000)} s: the session is closed`,
        )
        .finally(() => l.transport.close());
    }
  }

  /** A fresh random session id (1..2^32−1), unused by live and held sessions: ids are not sequential. */
  private newSessionId(): number {
    for (;;) {
      const id = randomInt(1, 2 ** 32);
      if (!this.sessions.has(id) && !this.table.has(id)) return id;
    }
  }

  /** Counts target passes of live sessions, so /score passes can wait for them (live sessions keep latency). */
  private tracked<T extends Target>(s: T): T {
    const forward = s.forward.bind(s);
    s.forward = async (tokens: number[]) => {
      this.sessionPasses++;
      try {
        return await forward(tokens);
      } finally {
        this.sessionPasses--;
      }
    };
    return s;
  }

  /** Refuses a signaling socket before any WebRTC work, with a typed error the device shows. */
  private refuse(ws: import('ws').WebSocket, code: ProtocolErrorCode, message: string, close = 1008): void {
    this.metrics.sessionsRefused++;
    this.metrics.countError(code);
    ws.send(JSON.stringify({ type: 'error', code, message }));
    ws.close(close);
  }

  private async onSignal(ws: import('ws').WebSocket, req: http.IncomingMessage): Promise<void> {
    const origin = req.headers.origin;
    if (!this.access.hostAllowed(req.headers.host)) {
      this.log.warn('signaling refused: host not served', { host: req.headers.host });
      return this.refuse(
        ws,
        ProtocolErrorCode.Unauthorized,
        `this edge does not answer for host ${req.headers.host}; the operator names it with --public-origin`,
      );
    }
    if (!this.access.originAllowed(origin, req.headers.host)) {
      this.log.warn('signaling refused: origin not allowed', { origin });
      return this.refuse(
        ws,
        ProtocolErrorCode.Unauthorized,
        `pages from ${origin} may not use this edge; the operator allows origins with --allow-origin`,
      );
    }
    // The session a reconnect names is a proxy's routing key only (the secret in the hello proves a resume),
    // but like every input it must be well formed.
    const named = new URL(req.url ?? '/', 'http://x').searchParams.getAll(SESSION_QUERY);
    if (named.length > 1 || (named.length === 1 && parseSessionQuery(named[0]) === null)) {
      return this.refuse(
        ws,
        ProtocolErrorCode.BadFrame,
        `the signaling URL's ${SESSION_QUERY} must be one session id (1..4294967295)`,
      );
    }
    if (!this.joins.take(req.socket.remoteAddress ?? '')) {
      return this.refuse(
        ws,
        ProtocolErrorCode.RateLimited,
        'too many joins from this address; try again shortly',
      );
    }
    const max = this.opts.maxSessions ?? EDGE_NODE_DEFAULTS.maxSessions;
    const maxPending = this.opts.maxPending ?? EDGE_NODE_DEFAULTS.maxPending;
    // The slot is reserved here, synchronously, before the awaited handshake: concurrent joins cannot overshoot.
    if (this.sessions.size + this.pending >= max || this.pending >= maxPending) {
      const busy = this.pending >= maxPending;
      return this.refuse(
        ws,
        ProtocolErrorCode.TooManySessions,
        busy
          ? `this edge has ${maxPending} connections being set up; try again shortly`
          : `this edge is serving its maximum of ${max} sessions; try again later`,
        1000,
      );
    }
    this.pending++;
    let channel;
    let admission: ReturnType<AccessPolicy['admit']> = { spent: false };
    try {
      channel = await acceptPeer(ws, {
        wrtc: nodeWebrtc(this.opts.webrtc),
        iceServers: this.opts.iceServers ?? [],
        timeoutMs: DEVICE_TIMEOUTS.connectMs,
        authorize: (token) => {
          const why = this.access.check(token);
          if (why === null) admission = this.access.admit(token);
          return why;
        },
      });
    } catch (e) {
      if (e instanceof ProtocolError) {
        if (e.code === ProtocolErrorCode.Unauthorized) this.metrics.sessionsRefused++;
        this.metrics.countError(e.code);
      }
      this.log.warn('peer connection failed', { error: (e as Error).message });
      // A single-use token whose handshake failed is not spent: the device may try again.
      const failed = admission as ReturnType<AccessPolicy['admit']>;
      if (!failed.spent && failed.nonce !== undefined) this.access.unadmit(failed.nonce);
      return;
    } finally {
      this.pending--;
    }
    const id = this.newSessionId();
    const nonce = admission.nonce;
    if (nonce !== undefined && !admission.spent) this.access.bindSession(nonce, id);
    const ceiling = this.opts.limits?.maxFrameBytes ?? DEFAULT_EDGE_LIMITS.maxFrameBytes;
    const transport = new FrameTransport(channel, {
      // Until the hello settles the session's settings, only small frames: a hello is well under this.
      maxFrameBytes: Math.min(ceiling, EDGE_NODE_DEFAULTS.preHelloMaxFrameBytes),
      maxPendingFrames: EDGE_NODE_DEFAULTS.maxPendingFrames,
      reassemblyBudget: this.budget,
    });
    const live: Live = { edge: null as unknown as EdgeSession, transport, target: null };
    const limits = { maxContext: this.model.config.maxContext, ...this.opts.limits };
    const spentNonce = admission.spent ? nonce : undefined;
    live.edge = new EdgeSession({
      sessionId: id,
      model: this.identity,
      createTarget: () =>
        (live.target = this.tracked(
          this.batcher
            ? this.batcher.scheduler.wrap(this.batcher.slab.acquire())
            : this.model.createSession(),
        )),
      requireResume: spentNonce === undefined ? undefined : (sid) => this.access.admitted(spentNonce, sid),
      onSettled: (s) =>
        transport.setMaxFrameBytes(
          maxUplinkFrameBytes(s, this.model.config.vocabSize, { ...DEFAULT_EDGE_LIMITS, ...limits }),
        ),
      secretSeed: randomInt(2 ** 47),
      limits,
      // Batched passes are costed per pass by the scheduler, not per session.
      targetCost: this.batcher ? undefined : this.opts.targetCost,
      rules: this.opts.rules,
      send: (f) => transport.send(f),
      onError: (code, message) => {
        this.metrics.countError(code);
        const suppressed = this.errorLog.admit(id, code);
        if (suppressed !== null)
          this.log.info('error frame sent', {
            session: id,
            code,
            message,
            ...(suppressed ? { suppressed } : {}),
          });
        // A spent single-use token that did not resume its own session gets nothing more.
        if (code === ProtocolErrorCode.Unauthorized) setTimeout(() => transport.close(), 50);
        // A garbage flood costs an error frame per chunk: past the limit the peer is disconnected.
        if (
          this.errorLog.overLimit(id, this.opts.maxPeerErrors ?? EDGE_NODE_DEFAULTS.maxPeerErrors) &&
          !transport.closed
        ) {
          this.metrics.countError('PeerErrorLimit');
          this.log.warn('peer disconnected: too many bad frames', { session: id });
          live.edge.close();
          transport.close();
        }
      },
      onVerify: (ms, kind) => (kind === 'verify' ? this.metrics.verify : this.metrics.arStep).observe(ms),
      resume: async (sid, secret) => {
        const r = await this.table.claim(sid, secret);
        // A resumed session stays admitted under its token, so a spent single-use token may resume it again.
        if (typeof r !== 'string' && nonce !== undefined && this.access.admitted(nonce, sid))
          this.access.bindSession(nonce, id);
        this.log.info('session resume', {
          session: id,
          from: sid,
          result: typeof r === 'string' ? r : 'kept',
        });
        return r;
      },
    });
    this.table.add(live.edge, () => transport.close());
    this.sessions.set(id, live);
    this.metrics.sessionsTotal++;
    this.log.info('session connected', { session: id, sessions: this.sessions.size });
    transport.onFrame((f) => void live.edge.handle(f));
    transport.onClose(() => {
      this.metrics.fold(live.edge.metrics, {
        up: transport.counters.bytesReceived,
        down: transport.counters.bytesSent,
      });
      this.sessions.delete(id);
      this.errorLog.forget(id);
      // Held for a resume (then disposed by the table), or disposed now.
      this.table.lost(live.edge);
      this.log.info('session closed', { session: id, rounds: live.edge.metrics.rounds });
    });
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    // DNS rebinding: a page on an attacker's name that resolves here sends that name as Host.
    if (!this.access.hostAllowed(req.headers.host))
      return json(res, 421, { error: `this edge does not answer for host ${req.headers.host}` });
    const readOnly = req.method === 'GET' || req.method === 'HEAD';
    if (url.pathname === '/healthz') {
      if (!readOnly) return json(res, 405, { error: 'GET only' }, { allow: 'GET, HEAD' });
      // Liveness for anyone; the model and load only for the operator.
      if (!this.access.metricsAllowed(req.headers.authorization)) return json(res, 200, { ok: true });
      return json(res, 200, { ok: true, model: this.identity, sessions: this.sessions.size });
    }
    if (url.pathname === '/metrics') {
      if (!readOnly) return json(res, 405, { error: 'GET only' }, { allow: 'GET, HEAD' });
      if (!this.access.metricsAllowed(req.headers.authorization)) {
        return json(
          res,
          401,
          { error: 'Authorization: Bearer <metrics token or join credential> required' },
          { 'www-authenticate': 'Bearer' },
        );
      }
      const live = [...this.sessions.values()].map((l) => ({
        m: l.edge.metrics,
        up: l.transport.counters.bytesReceived,
        down: l.transport.counters.bytesSent,
      }));
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(
        this.metrics.render(live, {
          pending: this.pending,
          held: this.table.heldCount,
          reassemblyBytes: this.budget.used,
          scoreQueued: this.scoreQueued,
          logSuppressed: this.errorLog.suppressedTotal,
        }) + (this.batcher ? renderBatchMetrics(this.batcher.scheduler.stats) : ''),
      );
      return;
    }
    if (url.pathname === '/token') {
      // Join tokens for devices, issued to the operator's backend (bearer: the issuer secret).
      if (req.method !== 'POST')
        return json(res, 405, { error: 'POST with Authorization: Bearer <issuer secret>' });
      if (!this.access.config.issuerSecret) return json(res, 404, { error: 'this edge issues no tokens' });
      const who = req.socket.remoteAddress ?? '';
      const wait = this.issuerGuesses.retryAfterS(who);
      if (wait > 0) {
        this.metrics.countError(ProtocolErrorCode.RateLimited);
        return json(res, 429, { error: 'too many failed attempts' }, { 'retry-after': String(wait) });
      }
      if (!this.access.issuerAllowed(req.headers.authorization)) {
        this.issuerGuesses.take(who); // only failures spend the budget
        this.metrics.countError(ProtocolErrorCode.Unauthorized);
        return json(res, 401, { error: 'the issuer secret was not accepted' });
      }
      const ttl = Number(url.searchParams.get('ttl') ?? 600);
      try {
        return json(res, 200, { token: issueJoinToken(this.access.config.tokenKey!, ttl), ttl });
      } catch (e) {
        return json(res, 400, { error: (e as Error).message });
      }
    }
    if (url.pathname === '/score') return this.scoreRoute(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    return this.serveStatic(url.pathname, res, req.headers.origin);
  }

  /**
   * POST /score: behind the join credential, JSON only (a form post from any web page is text/plain), bounded in
   * size and in queued work, cancelled when the client goes away.
   */
  private async scoreRoute(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const lim = { ...SCORE_LIMITS, ...this.opts.score };
    if (req.method !== 'POST') return json(res, 405, { error: 'POST a JSON body' }, { allow: 'POST' });
    if (!this.access.bearerAllowed(req.headers.authorization)) {
      this.metrics.countError(ProtocolErrorCode.Unauthorized);
      return json(res, 401, { error: 'Authorization: Bearer <join credential> required' });
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json')
      return json(res, 415, { error: 'Content-Type must be application/json' });
    if (this.scoreQueued >= lim.maxQueued) {
      return json(
        res,
        503,
        { error: `the scoring queue is full (${lim.maxQueued}); try again later` },
        { 'retry-after': String(lim.retryAfterS) },
      );
    }
    this.scoreQueued++;
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      const body = await readJson(req, lim.maxBodyBytes).catch((e: Error) => e);
      if (body instanceof Error) return json(res, 400, { error: body.message });
      const job = this.scoring.then(() => this.score(body, abort.signal, lim.maxContexts));
      this.scoring = job.catch(() => undefined);
      const out = await job.catch((e: Error) => e);
      if (out instanceof ScoreCancelled) return;
      if (out instanceof Error) return json(res, 400, { error: out.message });
      return json(res, 200, out);
    } finally {
      this.scoreQueued--;
    }
  }

  /**
   * Waits for a turn for one /score pass: never while a live session's pass runs, and after yielding to the
   * event loop, so verify passes go first (live sessions keep their latency).
   */
  private async scoreTurn(signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) throw new ScoreCancelled('the client went away');
      await yieldToLoop();
      if (this.sessionPasses === 0) return;
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /**
   * The target's exact processed probabilities along given continuations of a prompt (the fidelity check's
   * reference): for each continuation and position, P(< token) and P(token) under the processed P.
   */
  private async score(
    body: unknown,
    signal: AbortSignal,
    maxContexts: number,
  ): Promise<{ first: number[]; scores: [number, number][][] }> {
    if (signal.aborted) throw new ScoreCancelled('the client went away');
    if (typeof body !== 'object' || body === null) throw new Error('body must be an object');
    const b = body as { prompt?: unknown; continuations?: unknown; sampling?: unknown };
    const V = this.model.config.vocabSize;
    const ids = (x: unknown, what: string): number[] => {
      if (!Array.isArray(x) || x.some((t) => !Number.isInteger(t) || t < 0 || t >= V))
        throw new Error(`${what} must be token ids below ${V}`);
      return x as number[];
    };
    const prompt = ids(b.prompt, 'prompt');
    if (prompt.length === 0) throw new Error('prompt must not be empty');
    if (!Array.isArray(b.continuations) || b.continuations.length > 100_000)
      throw new Error('continuations must be an array (at most 100,000)');
    const conts = b.continuations.map((c, i) => ids(c, `continuations[${i}]`));
    const sampling = b.sampling as SamplingParams;
    validateSamplingParams(sampling);
    const maxLen = Math.max(0, ...conts.map((c) => c.length));
    if (prompt.length + maxLen > this.model.config.maxContext)
      throw new Error('prompt + continuation exceed the context');
    const total = conts.reduce((n, c) => n + c.length, prompt.length);
    const cap = maxContexts * this.model.config.maxContext;
    if (total > cap)
      throw new Error(`at most ${cap} tokens per request (${maxContexts} contexts), got ${total}`);
    const s = this.model.createSession();
    try {
      await this.scoreTurn(signal);
      const rows = await s.forward(prompt);
      const first = processLogits(rows[rows.length - 1], sampling);
      const scores: [number, number][][] = [];
      for (const c of conts) {
        const dists = [first];
        if (c.length > 1) {
          await this.scoreTurn(signal);
          const more = await s.forward(c.slice(0, -1));
          for (const r of more) dists.push(processLogits(r, sampling));
          s.truncate(prompt.length);
        }
        scores.push(
          c.map((tok, t) => {
            const P = dists[t];
            let below = 0;
            for (let v = 0; v < tok; v++) below += P[v];
            return [below, P[tok]];
          }),
        );
      }
      return { first: Array.from(first), scores };
    } finally {
      s.dispose();
    }
  }

  private serveStatic(pathname: string, res: http.ServerResponse, origin?: string): void {
    let decoded: string;
    try {
      decoded = decodeURIComponent(pathname);
    } catch {
      res.writeHead(400).end('bad path\n');
      return;
    }
    for (const [prefix, dir] of this.statics) {
      if (!decoded.startsWith(prefix)) continue;
      let rel = decoded.slice(prefix.length);
      if (rel === '' || rel.endsWith('/')) rel += 'index.html';
      if (!STATIC_ALLOW[prefix].test(rel)) break; // only what the page needs
      const file = path.resolve(dir, rel);
      if (!file.startsWith(path.resolve(dir) + path.sep)) break; // no way out of the folder
      let st: fs.Stats;
      try {
        st = fs.statSync(file);
      } catch {
        if (prefix === '/' && rel === 'index.html') return this.noWebApp(res);
        break;
      }
      if (!st.isFile()) break;
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'content-length': st.size,
        // Cross-origin isolation lets the ORT wasm worker use threads.
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'cross-origin-resource-policy': 'same-origin',
        'cache-control': 'no-cache',
        ...(prefix === '/' ? this.embedHeaders(rel, origin) : {}),
      });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  /**
   * The widget's headers: widget.js may be loaded by allowed origins (a module script is a CORS request),
   * embed.html may be framed by them (CSP frame-ancestors), every other page only by the edge itself.
   */
  private embedHeaders(rel: string, origin: string | undefined): Record<string, string> {
    const list = this.opts.allowedOrigins ?? [];
    const any = list.length === 0 || list.includes('*');
    if (rel === 'widget.js') {
      const allow = any ? '*' : origin && list.includes(origin) ? origin : null;
      return {
        'cross-origin-resource-policy': 'cross-origin',
        ...(allow ? { 'access-control-allow-origin': allow } : {}),
        ...(any ? {} : { vary: 'Origin' }),
      };
    }
    if (rel === 'embed.html') {
      // Framed by other sites: no opener policy; the page checks postMessage origins itself.
      return {
        'cross-origin-opener-policy': 'unsafe-none',
        'content-security-policy': `frame-ancestors ${any ? '*' : ["'self'", ...list].join(' ')}`,
      };
    }
    if (rel.endsWith('.html')) return { 'content-security-policy': "frame-ancestors 'self'" };
    return {};
  }

  private noWebApp(res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      `<!doctype html><title>dssd edge</title><h1>dssd edge node</h1><p>Serving ${escapeHtml(this.model.config.name)} ` +
        `(|V| = ${this.model.config.vocabSize}). The web app is not built: run <code>npm run build</code>.</p>`,
    );
  }

  async close(): Promise<void> {
    clearInterval(this.idleSweep);
    this.table.clear(true);
    // Shutting down: the channels close now (FrameTransport.close would let queued frames drain first).
    for (const l of this.sessions.values()) l.transport.channel.close();
    await new Promise<void>((r) => this.wss.close(() => r()));
    // server.close waits for open connections (keep-alive, a framed page left open): end them first.
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections?.();
    await closed;
  }
}

function json(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function readJson(req: http.IncomingMessage, max: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      if (n > max) {
        reject(new Error(`body larger than ${max} bytes`));
        req.destroy();
        return;
      }
      parts.push(d);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
      } catch {
        reject(new Error('body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
