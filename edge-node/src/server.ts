/**
 * The edge node: one HTTP server that serves the web app (and the draft model and ORT wasm files it needs),
 * WebSocket signaling at /signal, /healthz, /metrics and /score, and one WebRTC peer + EdgeSession per device.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { randomInt } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { processLogits, validateSamplingParams, type SamplingParams } from '@dssd/kernel';
import { loadNodeModel } from '@dssd/models/node';
import type { LanguageModel, ModelSession } from '@dssd/models';
import { EdgeSession, FrameTransport, ProtocolErrorCode, type EdgeLimits } from '@dssd/protocol';
import { acceptPeer } from './signaling.js';
import { EdgeMetrics } from './metrics.js';
import { Logger } from './log.js';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
/** Repository root (edge-node/dist/src → ../../..). */
export const REPO_ROOT = path.resolve(here, '../../..');
export const DEFAULT_TARGET_DIR = path.join(REPO_ROOT, 'models/default/target');
export const DEFAULT_DRAFT_DIR = path.join(REPO_ROOT, 'models/default/draft');
export const DEFAULT_WEB_ROOT = path.join(REPO_ROOT, 'web/dist');

export interface EdgeNodeOptions {
  modelDir?: string;
  /** Draft model folder served to browsers at /models/draft/. */
  draftDir?: string;
  webRoot?: string;
  port?: number;
  host?: string;
  maxSessions?: number;
  limits?: Partial<EdgeLimits>;
  iceServers?: RTCIceServer[];
  tls?: { cert: string; key: string };
  log?: Logger;
  /** Pads each target forward pass to a + b·tokens ms (benchmarks; labelled as emulation). */
  targetDelayMs?: { a: number; b: number };
  plantedBug?: 'inverted-ratio';
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

  private constructor(
    readonly model: LanguageModel,
    readonly opts: EdgeNodeOptions,
  ) {
    this.log = opts.log ?? new Logger('info');
    this.statics = [
      ['/ort/', path.dirname(require.resolve('onnxruntime-web'))],
      ['/models/draft/', opts.draftDir ?? DEFAULT_DRAFT_DIR],
      ['/', opts.webRoot ?? DEFAULT_WEB_ROOT],
    ];
  }

  static async start(opts: EdgeNodeOptions = {}): Promise<EdgeNode> {
    const model = opts.model ?? (await loadNodeModel(opts.modelDir ?? DEFAULT_TARGET_DIR));
    const node = new EdgeNode(model, opts);
    await node.listen();
    return node;
  }

  get identity() {
    const c = this.model.config;
    return {
      tokenizerHash: this.model.tokenizerHash,
      vocabSize: c.vocabSize,
      maxContext: c.maxContext,
      eosTokenId: c.eosTokenId,
      name: c.name,
    };
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
    this.wss.on('connection', (ws) => void this.onSignal(ws));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(o.port ?? 8080, o.host ?? '127.0.0.1', () => resolve());
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
  }

  private async onSignal(ws: import('ws').WebSocket): Promise<void> {
    const max = this.opts.maxSessions ?? 64;
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
        timeoutMs: 15_000,
      });
    } catch (e) {
      this.log.warn('peer connection failed', { error: (e as Error).message });
      return;
    }
    const id = this.nextId++;
    const transport = new FrameTransport(channel, {
      maxFrameBytes: this.opts.limits?.maxFrameBytes ?? 64 * 1024 * 1024,
    });
    const live: Live = { edge: null as unknown as EdgeSession, transport, target: null };
    live.edge = new EdgeSession({
      sessionId: id,
      model: this.identity,
      createTarget: () => (live.target = this.model.createSession()),
      secretSeed: randomInt(2 ** 47),
      limits: { maxContext: this.model.config.maxContext, ...this.opts.limits },
      targetDelayMs: this.opts.targetDelayMs,
      plantedBug: this.opts.plantedBug,
      send: (f) => transport.send(f),
      onError: (code, message) => {
        this.metrics.countError(code);
        this.log.info('error frame sent', { session: id, code, message });
      },
      onVerify: (ms, kind) => (kind === 'verify' ? this.metrics.verify : this.metrics.arStep).observe(ms),
    });
    this.sessions.set(id, live);
    this.metrics.sessionsTotal++;
    this.log.info('session connected', { session: id, sessions: this.sessions.size });
    transport.onFrame((f) => void live.edge.handle(f));
    transport.onClose(() => {
      live.edge.close();
      this.metrics.fold(live.edge.metrics, {
        up: transport.counters.bytesReceived,
        down: transport.counters.bytesSent,
      });
      this.sessions.delete(id);
      live.target?.dispose();
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
    return this.serveStatic(url.pathname, res);
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

  private serveStatic(pathname: string, res: http.ServerResponse): void {
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
      });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }

  private noWebApp(res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(
      `<!doctype html><title>dssd edge</title><h1>dssd edge node</h1><p>Serving ${escapeHtml(this.model.config.name)} ` +
        `(|V| = ${this.model.config.vocabSize}). The web app is not built: run <code>npm run build</code>.</p>`,
    );
  }

  async close(): Promise<void> {
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
