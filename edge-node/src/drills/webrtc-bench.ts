/**
 * `dssd webrtc-bench`: the Node WebRTC stacks compared as the edge runs them. Per stack, an edge-side process of
 * its own (so its memory, descriptors, threads and CPU are measured alone) answers peers through the real
 * signaling (acceptPeer) and echoes frames over FrameTransport; this process is the devices' side, on the same
 * stack. At 16, 64 and 128 peers it measures memory, descriptors and threads per peer, connection setup time,
 * the edge's CPU per message and the time of a 600 KB frame edge → device (an f32 P_j at |V| = 151,936); the
 * churn test opens and closes hundreds of connections in a bounded loop and reports the edge process's RSS and
 * open descriptors before and after (and whether it survived).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WebSocket, WebSocketServer } from 'ws';
import {
  FrameTransport,
  WEBRTC_STACKS,
  connectEdge,
  type EdgeConnection,
  type WebrtcStack,
} from '@dssd/protocol';
import { nodeWebrtc } from '@dssd/protocol/node';
import { acceptPeer } from '../signaling.js';
import { num, webrtcStack } from '../flags.js';

/** A downlink P_j in f32 at |V| = 151,936 (≈ 600 KB), the largest frame an edge sends routinely. */
export const BIG_FRAME_BYTES = 151_936 * 4;
const REQUEST_BIG = 1;

/** What the edge-side process reports about itself (Linux /proc; NaN elsewhere). */
export interface ProcStats {
  rssKiB: number;
  fds: number;
  threads: number;
  /** User + system CPU since start, µs. */
  cpuUs: number;
  peers: number;
}

function selfStats(peers: number): ProcStats {
  let rssKiB = NaN;
  let threads = NaN;
  let fds = NaN;
  try {
    const s = fs.readFileSync('/proc/self/status', 'utf8');
    rssKiB = Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? NaN);
    threads = Number(/Threads:\s+(\d+)/.exec(s)?.[1] ?? NaN);
    fds = fs.readdirSync('/proc/self/fd').length;
  } catch {
    // not Linux: NaN
  }
  const c = process.cpuUsage();
  return { rssKiB, fds, threads, cpuUs: c.user + c.system, peers };
}

/**
 * The edge side (a child process): signaling on 127.0.0.1, each peer's frames echoed, a 1-byte frame answered
 * with a BIG_FRAME_BYTES frame. Prints `{ready: url}`, then answers `stats` lines on stdin with ProcStats.
 */
async function serveChild(stack: WebrtcStack): Promise<void> {
  const wrtc = nodeWebrtc(stack);
  const big = new Uint8Array(BIG_FRAME_BYTES).map((_, i) => i * 7);
  let peers = 0;
  const server = http.createServer((_q, r) => r.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/signal', maxPayload: 256 * 1024 });
  wss.on('connection', (ws) => {
    acceptPeer(ws, { wrtc, timeoutMs: 30_000 }).then(
      (ch) => {
        peers++;
        const t = new FrameTransport(ch);
        t.onFrame((f) => void t.send(f.byteLength === 1 && f[0] === REQUEST_BIG ? big : f).catch(() => {}));
        t.onClose(() => peers--);
      },
      () => undefined,
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  process.stdout.write(JSON.stringify({ ready: `ws://127.0.0.1:${port}/signal` }) + '\n');
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line.trim() === 'stats') process.stdout.write(JSON.stringify(selfStats(peers)) + '\n');
  }
  process.exit(0);
}

/** A running edge-side process. */
interface EdgeSide {
  url: string;
  child: ChildProcess;
  stats(): Promise<ProcStats>;
  /** Exit code or signal once it ended, else null. */
  ended(): string | null;
  stop(): void;
}

async function startEdgeSide(stack: WebrtcStack): Promise<EdgeSide> {
  const bin = fileURLToPath(new URL('../../../bin/dssd.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'webrtc-bench', '--serve', '--webrtc', stack], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let end: string | null = null;
  child.on('exit', (code, sig) => (end = sig ?? `exit ${code}`));
  const lines = readline.createInterface({ input: child.stdout! });
  const waiting: ((l: string) => void)[] = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${stack} edge side did not answer`)), 30_000);
      waiting.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  const ready = JSON.parse(await next()) as { ready: string };
  return {
    url: ready.ready,
    child,
    async stats() {
      if (end) throw new Error(`the ${stack} edge side ended (${end})`);
      const p = next();
      child.stdin!.write('stats\n');
      return JSON.parse(await p) as ProcStats;
    },
    ended: () => end,
    stop: () => child.kill('SIGKILL'),
  };
}

/** One device-side connection with a FrameTransport and a queue of received frames. */
interface Peer {
  conn: EdgeConnection;
  t: FrameTransport;
  next(): Promise<Uint8Array>;
}

async function connectPeer(url: string, stack: WebrtcStack): Promise<{ peer: Peer; ms: number }> {
  const t0 = performance.now();
  const conn = await connectEdge({
    url,
    WebSocket: WebSocket as never,
    wrtc: nodeWebrtc(stack),
    timeoutMs: 30_000,
  });
  const ms = performance.now() - t0;
  const t = new FrameTransport(conn.channel);
  const inbox: Uint8Array[] = [];
  const waiters: ((f: Uint8Array) => void)[] = [];
  t.onFrame((f) => {
    const w = waiters.shift();
    if (w) w(f);
    else inbox.push(f);
  });
  const next = () =>
    new Promise<Uint8Array>((resolve, reject) => {
      const f = inbox.shift();
      if (f) return resolve(f);
      const timer = setTimeout(() => reject(new Error('no frame within 30 s')), 30_000);
      waiters.push((x) => {
        clearTimeout(timer);
        resolve(x);
      });
    });
  return { peer: { conn, t, next }, ms };
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

export interface ScaleRow {
  stack: WebrtcStack;
  peers: number;
  /** Connection setup as the device sees it (signaling socket → open data channel), ms. */
  setupP50Ms: number;
  setupP95Ms: number;
  /** Edge-side process, per peer above its idle state. */
  rssPerPeerKiB: number;
  fdsPerPeer: number;
  threadsPerPeer: number;
  /** Edge-side CPU (user + system) per 1 KiB message received and echoed, µs. */
  cpuUsPerMessage: number;
  /** A 600 KB frame edge → device with `peers` connections open: ms (median of 5) and MB/s. */
  bigFrameMs: number;
  bigFrameMBps: number;
}

export interface ChurnReport {
  stack: WebrtcStack;
  cycles: number;
  failed: number;
  /** Edge-side process before the loop and 2 s after it. */
  before: ProcStats;
  after: ProcStats | null;
  /** Whether the edge-side process survived (else how it ended). */
  survived: boolean;
  ended: string | null;
  /** This (device-side) process's open descriptors before and after. */
  deviceFdsBefore: number;
  deviceFdsAfter: number;
  wallS: number;
}

/** Connections at 16, 64, 128 peers (cumulative) on one stack. */
export async function runScale(o: {
  stack: WebrtcStack;
  peers: number[];
  messages: number;
  log?: (l: string) => void;
}): Promise<ScaleRow[]> {
  const log = o.log ?? (() => undefined);
  const edge = await startEdgeSide(o.stack);
  const rows: ScaleRow[] = [];
  const peers: Peer[] = [];
  try {
    await sleep(200);
    const idle = await edge.stats();
    for (const n of [...o.peers].sort((a, b) => a - b)) {
      const setup: number[] = [];
      while (peers.length < n) {
        // A few at a time: handshakes run in parallel as they would for joining visitors.
        const batch = await Promise.all(
          Array.from({ length: Math.min(8, n - peers.length) }, () => connectPeer(edge.url, o.stack)),
        );
        for (const b of batch) {
          peers.push(b.peer);
          setup.push(b.ms);
        }
      }
      await sleep(500);
      const s = await edge.stats();
      // CPU per message: 1 KiB frames round-robin over every peer, each echoed.
      const msg = new Uint8Array(1024).fill(9);
      const c0 = await edge.stats();
      const perPeer = Math.ceil(o.messages / n);
      await Promise.all(
        peers.map(async (p) => {
          for (let i = 0; i < perPeer; i++) {
            void p.t.send(msg);
            await p.next();
          }
        }),
      );
      const c1 = await edge.stats();
      const big: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        void peers[0].t.send(new Uint8Array([REQUEST_BIG]));
        const f = await peers[0].next();
        if (f.byteLength !== BIG_FRAME_BYTES) throw new Error(`big frame arrived as ${f.byteLength} B`);
        big.push(performance.now() - t0);
      }
      const bigMs = quantile(big, 0.5);
      const row: ScaleRow = {
        stack: o.stack,
        peers: n,
        setupP50Ms: round(quantile(setup, 0.5)),
        setupP95Ms: round(quantile(setup, 0.95)),
        rssPerPeerKiB: round((s.rssKiB - idle.rssKiB) / n, 0),
        fdsPerPeer: round((s.fds - idle.fds) / n, 2),
        threadsPerPeer: round((s.threads - idle.threads) / n, 2),
        cpuUsPerMessage: round((c1.cpuUs - c0.cpuUs) / (perPeer * n), 1),
        bigFrameMs: round(bigMs),
        bigFrameMBps: round(BIG_FRAME_BYTES / 1e6 / (bigMs / 1000)),
      };
      rows.push(row);
      log(JSON.stringify(row));
    }
  } finally {
    for (const p of peers) p.conn.close();
    edge.stop();
  }
  return rows;
}

function ownFds(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return NaN;
  }
}

/**
 * Churn: `cycles` connections, `concurrency` at a time, each opened, used for one echoed frame and closed
 * (bounded: never more than `concurrency` open). The edge side must survive; its RSS and descriptors are read
 * before and 2 s after.
 */
export async function runChurn(o: {
  stack: WebrtcStack;
  cycles: number;
  concurrency?: number;
  log?: (l: string) => void;
}): Promise<ChurnReport> {
  const edge = await startEdgeSide(o.stack);
  const t0 = performance.now();
  const concurrency = o.concurrency ?? 8;
  let failed = 0;
  let started = 0;
  try {
    await sleep(200);
    const before = await edge.stats();
    const deviceFdsBefore = ownFds();
    const worker = async () => {
      while (started < o.cycles && !edge.ended()) {
        started++;
        let p: Peer | undefined;
        try {
          p = (await connectPeer(edge.url, o.stack)).peer;
          void p.t.send(new Uint8Array(64).fill(3));
          await p.next();
        } catch {
          failed++;
        } finally {
          p?.conn.close();
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await sleep(2000);
    const ended = edge.ended();
    const after = ended ? null : await edge.stats();
    const r: ChurnReport = {
      stack: o.stack,
      cycles: started,
      failed,
      before,
      after,
      survived: ended === null,
      ended,
      deviceFdsBefore,
      deviceFdsAfter: ownFds(),
      wallS: round((performance.now() - t0) / 1000),
    };
    o.log?.(JSON.stringify(r));
    return r;
  } finally {
    edge.stop();
  }
}

/** `dssd webrtc-bench [--webrtc S] [--peers 16,64,128] [--messages N] [--churn N] [--json]`. */
export async function webrtcBenchCommand(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      serve: { type: 'boolean' },
      webrtc: { type: 'string' },
      peers: { type: 'string' },
      messages: { type: 'string' },
      churn: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (v.serve) return serveChild(webrtcStack(v.webrtc));
  const stacks = v.webrtc ? [webrtcStack(v.webrtc)] : [...WEBRTC_STACKS];
  const peers = (v.peers ?? '16,64,128').split(',').map((x) => num(x.trim(), 'peers', 16, true));
  const messages = num(v.messages, 'messages', 4096, true);
  const churn = num(v.churn, 'churn', 400, true);
  const log = (l: string) => process.stderr.write(l + '\n');
  const out: { scale: ScaleRow[]; churn: ChurnReport[] } = { scale: [], churn: [] };
  for (const stack of stacks) {
    log(`== ${stack}: ${peers.join(', ')} peers`);
    out.scale.push(...(await runScale({ stack, peers, messages, log })));
    if (churn > 0) {
      log(`== ${stack}: churn, ${churn} connections`);
      out.churn.push(await runChurn({ stack, cycles: churn, log }));
    }
  }
  if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
  else {
    process.stdout.write(
      '| stack | peers | setup p50 / p95 (ms) | RSS per peer (KiB) | fds per peer | threads per peer | edge CPU per 1 KiB message (µs) | 600 KB frame (ms, MB/s) |\n' +
        '| --- | --- | --- | --- | --- | --- | --- | --- |\n',
    );
    for (const r of out.scale)
      process.stdout.write(
        `| ${r.stack} | ${r.peers} | ${r.setupP50Ms} / ${r.setupP95Ms} | ${r.rssPerPeerKiB} | ${r.fdsPerPeer} | ${r.threadsPerPeer} | ${r.cpuUsPerMessage} | ${r.bigFrameMs}, ${r.bigFrameMBps} |\n`,
      );
    for (const c of out.churn)
      process.stdout.write(
        `churn ${c.stack}: ${c.cycles} connections (${c.failed} failed) in ${c.wallS} s; edge side ${c.survived ? 'survived' : `ENDED (${c.ended})`}; ` +
          `RSS ${Math.round(c.before.rssKiB / 1024)} → ${c.after ? Math.round(c.after.rssKiB / 1024) : '?'} MiB, ` +
          `fds ${c.before.fds} → ${c.after?.fds ?? '?'}, threads ${c.before.threads} → ${c.after?.threads ?? '?'}; ` +
          `device side fds ${c.deviceFdsBefore} → ${c.deviceFdsAfter}\n`,
      );
  }
  if (out.churn.some((c) => !c.survived)) process.exitCode = 1;
}
