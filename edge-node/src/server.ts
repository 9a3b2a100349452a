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
import { WebSocketServer } from 'ws';
import { processLogits, validateSamplingParams, type RoundRules, type SamplingParams } from '@dssd/kernel';
import { DEFAULT_MODEL_DIRS, loadNodeModel } from '@dssd/models/node';
import type { LanguageModel, ModelSession } from '@dssd/models';
import {
  EDGE_NODE_DEFAULTS,
  EdgeSession,
  FrameTransport,
  ProtocolError,
  ProtocolErrorCode,
  SessionTable,
  DEFAULT_EDGE_LIMITS,
  DEVICE_TIMEOUTS,
  identityOf,
  type EdgeLimits,
  type TargetCost,
} from '@dssd/protocol';
import { acceptPeer } from './signaling.js';
import { AccessPolicy, issueJoinToken, type AccessConfig } from './access.js';
import { EdgeMetrics } from './metrics.js';
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
  iceServers?: RTCIceServer[];
  tls?: { cert: string; key: string };
  log?: Logger;
  /** Pads each target forward pass to a + b·tokens ms (benchmarks; labelled as EMULATION). */
  targetCost?: TargetCost;
  /** The round's decision rules (default: the kernel's exact ones; test tools wrap them). */
  rules?: RoundRules;
  /** Reuse an already loaded target (tests, benchmarks). */
  model?: LanguageModel;
}

interface Live {
  edge: EdgeSession;
  transport: FrameTransport;
  target: ModelSession | null;
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
  private nextId = 1;
  private server!: http.Server | https.Server;
  private wss!: WebSocketServer;
  private readonly statics: [string, string][];
  private readonly log: Logger;
  private scoring: Promise<unknown> = Promise.resolve();
  readonly access: AccessPolicy;
  /** Live and recently lost sessions, for resumption. */
  readonly table: SessionTable;
  private idleSweep: ReturnType<typeof setInterval> | undefined;

  private constructor(
    readonly model: LanguageModel,
    readonly opts: EdgeNodeOptions,
  ) {
    this.log = opts.log ?? new Logger('info');
    // Signaling origins: the edge's own, loopback pages, and the widget allow-list ('*': any).
    this.access = new AccessPolicy({ ...opts.access, allowedOrigins: opts.allowedOrigins });
    this.table = new SessionTable(opts.resumeHoldMs ?? EDGE_NODE_DEFAULTS.resumeHoldS * 1000, (t) =>
      (t as ModelSession).dispose(),
    );
    this.statics = [
      ['/ort/', path.dirname(require.resolve('onnxruntime-web'))],
      ['/models/draft/', opts.draftDir ?? DEFAULT_MODEL_DIRS.draft],
      ['/', opts.webRoot ?? DEFAULT_WEB_ROOT],
    ];
  }

  static async start(opts: EdgeNodeOptions = {}): Promise<EdgeNode> {
    const model = opts.model ?? (await loadNodeModel(opts.modelDir ?? DEFAULT_MODEL_DIRS.target));
    const node = new EdgeNode(model, opts);
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
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(o.port ?? EDGE_NODE_DEFAULTS.port, o.host ?? EDGE_NODE_DEFAULTS.host, () =>
        resolve(),
      );
    });
    const addr = this.server.address() as { port: number; address: string };
    const host =
      addr.address === '127.0.0.1' ||
      addr.address === '::1' ||
      addr.address === '::' ||
      addr.address === '0.0.0.0'
        ? 'localhost'
        : addr.address;
    this.url = `${o.tls ? 'https' : 'http'}://${host}:${addr.port}`;
    const idleMs = o.idleTimeoutMs ?? EDGE_NODE_DEFAULTS.idleTimeoutS * 1000;
    this.idleSweep = setInterval(() => this.expireIdle(idleMs), Math.min(1000, idleMs / 4));
    this.idleSweep.unref();
  }

  private expireIdle(idleMs: number): void {
    const now = performance.now();
    for (const l of this.sessions.values()) {
      if (now - l.edge.lastActivity <= idleMs || l.edge.isClosed) continue;
      void l.edge
        .expire(
          ProtocolErrorCode.Timeout,
          `no frame for ${Math.round(idleMs / 1000)} s: the session is closed`,
        )
        .finally(() => l.transport.close());
    }
  }

  /** Refuses a signaling socket before any WebRTC work, with a typed error the device shows. */
  private refuse(ws: import('ws').WebSocket, code: ProtocolErrorCode, message: string): void {
    this.metrics.sessionsRefused++;
    this.metrics.countError(code);
    ws.send(JSON.stringify({ type: 'error', code, message }));
    ws.close(1008);
  }

  private async onSignal(ws: import('ws').WebSocket, req: http.IncomingMessage): Promise<void> {
    const origin = req.headers.origin;
    const self = `${this.opts.tls ? 'https' : 'http'}://${req.headers.host ?? ''}`;
    if (!this.access.originAllowed(origin, self)) {
      this.log.warn('signaling refused: origin not allowed', { origin });
      return this.refuse(
        ws,
        ProtocolErrorCode.Unauthorized,
        `pages from ${origin} may not use this edge; the operator allows origins with --allow-origin`,
      );
    }
    const max = this.opts.maxSessions ?? EDGE_NODE_DEFAULTS.maxSessions;
    if (this.sessions.size >= max) {
      this.metrics.sessionsRefused++;
      this.metrics.countError(ProtocolErrorCode.TooManySessions);
      ws.send(
        JSON.stringify({
          type: 'error',
          code: ProtocolErrorCode.TooManySessions,
          message: `this edge is serving its maximum of ${max} sessions; try again later`,
        }),
      );
      ws.close();
      return;
    }
    let channel;
    try {
      channel = await acceptPeer(ws, {
        wrtc: require('@roamhq/wrtc'),
        iceServers: this.opts.iceServers ?? [],
        timeoutMs: DEVICE_TIMEOUTS.connectMs,
        authorize: (token) => this.access.check(token),
      });
    } catch (e) {
      if (e instanceof ProtocolError) {
        if (e.code === ProtocolErrorCode.Unauthorized) this.metrics.sessionsRefused++;
        this.metrics.countError(e.code);
      }
      this.log.warn('peer connection failed', { error: (e as Error).message });
      return;
    }
    const id = this.nextId++;
    const transport = new FrameTransport(channel, {
      maxFrameBytes: this.opts.limits?.maxFrameBytes ?? DEFAULT_EDGE_LIMITS.maxFrameBytes,
      maxPendingFrames: EDGE_NODE_DEFAULTS.maxPendingFrames,
    });
    const live: Live = { edge: null as unknown as EdgeSession, transport, target: null };
    live.edge = new EdgeSession({
      sessionId: id,
      model: this.identity,
      createTarget: () => (live.target = this.model.createSession()),
      secretSeed: randomInt(2 ** 47),
      limits: { maxContext: this.model.config.maxContext, ...this.opts.limits },
      targetCost: this.opts.targetCost,
      rules: this.opts.rules,
      send: (f) => transport.send(f),
      onError: (code, message) => {
        this.metrics.countError(code);
        this.log.info('error frame sent', { session: id, code, message });
      },
      onVerify: (ms, kind) => (kind === 'verify' ? this.metrics.verify : this.metrics.arStep).observe(ms),
      resume: async (sid, secret) => {
        const r = await this.table.claim(sid, secret);
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
      // Held for a resume (then disposed by the table), or disposed now.
      this.table.lost(live.edge);
      this.log.info('session closed', { session: id, rounds: live.edge.metrics.rounds });
    });
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/healthz') {
      return json(res, 200, { ok: true, model: this.identity, sessions: this.sessions.size });
    }
    if (url.pathname === '/metrics') {
      const live = [...this.sessions.values()].map((l) => ({
        m: l.edge.metrics,
        up: l.transport.counters.bytesReceived,
        down: l.transport.counters.bytesSent,
      }));
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(this.metrics.render(live));
      return;
    }
    if (url.pathname === '/token') {
      // Join tokens for devices, issued to the operator's backend (bearer: the issuer secret).
      if (req.method !== 'POST')
        return json(res, 405, { error: 'POST with Authorization: Bearer <issuer secret>' });
      if (!this.access.config.issuerSecret) return json(res, 404, { error: 'this edge issues no tokens' });
      if (!this.access.issuerAllowed(req.headers.authorization)) {
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
    if (url.pathname === '/score') {
      if (req.method !== 'POST') return json(res, 405, { error: 'POST a JSON body' });
      const body = await readJson(req, 8 * 1024 * 1024).catch((e: Error) => e);
      if (body instanceof Error) return json(res, 400, { error: body.message });
      const job = this.scoring.then(() => this.score(body));
      this.scoring = job.catch(() => undefined);
      const out = await job.catch((e: Error) => e);
      if (out instanceof Error) return json(res, 400, { error: out.message });
      return json(res, 200, out);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    return this.serveStatic(url.pathname, res, req.headers.origin);
  }

  /**
   * The target's exact processed probabilities along given continuations of a prompt (the fidelity check's
   * reference): for each continuation and position, P(< token) and P(token) under the processed P.
   */
  private async score(body: unknown): Promise<{ first: number[]; scores: [number, number][][] }> {
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
    const s = this.model.createSession();
    try {
      const rows = await s.forward(prompt);
      const first = processLogits(rows[rows.length - 1], sampling);
      const scores: [number, number][][] = [];
      for (const c of conts) {
        const dists = [first];
        if (c.length > 1) {
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
    for (const l of this.sessions.values()) l.transport.close();
    await new Promise<void>((r) => this.wss.close(() => r()));
    await new Promise<void>((r) => this.server.close(() => r()));
    this.server.closeAllConnections?.();
  }
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
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
