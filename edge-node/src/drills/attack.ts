/**
 * Attack drill (`dssd drill`): starts a real edge process (loopback only, --max-sessions 4, a shared secret and a
 * token key), runs a well-behaved greedy device unloaded, then again while hostile peers attack the edge:
 * concurrent joins beyond the session cap, partial-frame flooding, /score floods, ping-only peers, a rebinding
 * Host, a bad-chunk log flood, join-token reuse and build-file requests. Prints one JSON line: the edge's peak RSS,
 * open file descriptors, live/pending/held sessions (from /metrics), whether the device's greedy answer stayed
 * equal to the `ar` reference, and its latency against the unloaded run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { encodeFrame } from '@dssd/codec';
import { DEFAULT_MODEL_DIRS, loadNodeModel } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import {
  EDGE_NODE_DEFAULTS,
  FrameTransport,
  PROTOCOL_VERSION,
  completeSettings,
  connectEdge,
  identityOf,
  type EdgeConnection,
  type WrtcLike,
} from '@dssd/protocol';
import { connectNodeDevice } from '../device/node.js';
import { issueJoinToken } from '../access.js';
import { num } from '../flags.js';

const require = createRequire(import.meta.url);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const greedy = { temperature: 0, topK: 0, topP: 1 };
const SECRET = 'drill-secret-0123456789abcdef';
const KEY = 'drill-token-key-0123456789abcdef';

export interface DrillReport {
  edgePeakRssMb: number;
  openFds: number;
  peakFds: number;
  live: number | null;
  pending: number | null;
  held: number | null;
  exact: boolean;
  latencyRatio: number;
  unloadedMs: number;
  loadedMs: number;
  joinsAccepted: string;
  pingPeersOpen: number;
  scoreAccepted: string;
  rebindAccepted: string;
  buildFilesServed: string;
  tokenReuseAccepted: boolean;
  badChunkLogBytes: number;
  badChunksSent: number;
  wallS: number;
}

/** A raw data channel to an edge (real WebRTC), for hostile peers and tests. */
export function rawPeer(url: string, token?: string, timeoutMs = 15_000): Promise<EdgeConnection> {
  return connectEdge({
    url,
    WebSocket: WebSocket as never,
    wrtc: require('@roamhq/wrtc') as WrtcLike,
    token,
    timeoutMs,
  });
}

/** A hello frame for `model` (greedy dssd at γ 4), with an optional resume claim. */
export function helloFrame(
  model: LanguageModel,
  resume?: { sessionId: number; secret: string; committed: number },
): Uint8Array {
  return encodeFrame(
    {
      kind: 'hello',
      body: {
        protocol: PROTOCOL_VERSION,
        model: { ...identityOf(model) },
        settings: completeSettings({ mode: 'dssd', gamma: 4, sampling: greedy }),
        ...(resume ? { resume } : {}),
      },
    },
    { sessionId: 0, round: 0 },
  );
}

/** One chunk of a message `id` of `length` bytes split into `count` chunks (the codec's chunk layout). */
export function craftChunk(id: number, length: number, count: number, index: number): Uint8Array {
  const stride = Math.ceil(length / count);
  const data = Math.min(stride, length - index * stride);
  const c = new Uint8Array(12 + data);
  const dv = new DataView(c.buffer);
  dv.setUint32(0, id, true);
  dv.setUint32(4, length, true);
  dv.setUint16(8, index, true);
  dv.setUint16(10, count, true);
  c.fill(0x5a, 12);
  return c;
}

/** Open file descriptors of a process (Linux /proc), NaN elsewhere. */
export function openFds(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

function peakRssMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

interface EdgeProcess {
  url: string;
  child: ChildProcess;
  /** Bytes the edge wrote to stderr (its log) so far. */
  logBytes(): number;
  stop(): void;
}

async function startEdge(extra: string[]): Promise<EdgeProcess> {
  const bin = fileURLToPath(new URL('../../../bin/dssd.js', import.meta.url));
  const args = ['serve', '--port', '0', '--log-level', 'info', '--max-sessions', '4'];
  args.push('--secret', SECRET, '--token-key', KEY, ...extra);
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logBytes = 0;
  child.stderr!.on('data', (d: Buffer) => (logBytes += d.length));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the edge did not start in 60 s')), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /Open (\S+) in a browser/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`the edge exited with ${code}`)));
  });
  return { url, child, logBytes: () => logBytes, stop: () => child.kill('SIGKILL') };
}

/** An HTTP request with a chosen Host header; resolves with the status (0 on a network error). */
function request(
  url: string,
  p: string,
  o: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: p, method: o.method ?? 'GET', headers: o.headers },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.setTimeout(o.timeoutMs ?? 10_000, () => req.destroy());
    req.end(o.body);
  });
}

async function metricsOf(url: string): Promise<Record<string, number>> {
  const t = await fetch(new URL('/metrics', url), { headers: { authorization: `Bearer ${SECRET}` } })
    .then((r) => r.text())
    .catch(() => '');
  const out: Record<string, number> = {};
  for (const m of t.matchAll(/^(dssd_sessions_(?:active|pending|held)) (\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}

/** Whether a socket to /signal with a rebinding Host and Origin gets past the origin check. */
function rebindSignal(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const evil = `evil.example:${u.port}`;
    const ws = new WebSocket(`ws://127.0.0.1:${u.port}/signal`, {
      headers: { host: evil, origin: `http://${evil}` },
    });
    const timer = setTimeout(() => {
      ws.terminate();
      resolve(true); // not refused at once: the socket was taken as a join attempt
    }, 1500);
    ws.on('message', (d) => {
      clearTimeout(timer);
      ws.terminate();
      resolve(!/Unauthorized|not allowed|may not/.test(String(d)));
    });
    ws.on('unexpected-response', () => {
      clearTimeout(timer);
      resolve(false);
    });
    ws.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Joins with `token` and says hello; true when the edge welcomes the session. */
async function joinAndHello(url: string, token: string, model: LanguageModel): Promise<boolean> {
  let conn: EdgeConnection | null = null;
  try {
    conn = await rawPeer(url, token, 10_000);
    const t = new FrameTransport(conn.channel);
    const got = new Promise<boolean>((resolve) => {
      t.onFrame((f) => resolve(f[0] !== undefined && f.length > 20 && isWelcome(f)));
      t.onClose(() => resolve(false));
      setTimeout(() => resolve(false), 5000);
    });
    await t.send(helloFrame(model));
    return await got;
  } catch {
    return false;
  } finally {
    conn?.close();
  }
}

function isWelcome(f: Uint8Array): boolean {
  // Header byte 0 holds the kind; the welcome's body is JSON that names a resume secret.
  return new TextDecoder().decode(f.subarray(20)).includes('resumeSecret');
}

export async function runDrill(o: { tokens?: number; log?: (m: string) => void } = {}): Promise<DrillReport> {
  const log = o.log ?? (() => undefined);
  const t0 = performance.now();
  const n = o.tokens ?? 32;
  // Flags the edge understands (the drill also runs against builds that predate them).
  const extra = 'singleUseTokens' in EDGE_NODE_DEFAULTS ? ['--single-use-tokens'] : [];
  const draft = await loadNodeModel(DEFAULT_MODEL_DIRS.draft);
  const edge = await startEdge(extra);
  const pid = edge.child.pid!;
  log(`edge at ${edge.url} (pid ${pid})`);
  const conns: EdgeConnection[] = [];
  try {
    const prompt = draft.tokenizer.encode('The history of the city begins');
    const settings = { mode: 'dssd' as const, gamma: 4, sampling: greedy };
    // The reference and the unloaded run.
    const ar = await connectNodeDevice({
      edge: edge.url,
      draft,
      token: SECRET,
      settings: { mode: 'ar', sampling: greedy },
    });
    const ref = (await ar.session.generate(prompt, { maxNewTokens: n })).tokens;
    ar.close();
    const a = await connectNodeDevice({ edge: edge.url, draft, token: SECRET, settings });
    let s = performance.now();
    const unloaded = (await a.session.generate(prompt, { maxNewTokens: n })).tokens;
    const unloadedMs = performance.now() - s;
    a.close();
    await sleep(300);
    // Token reuse: one signed token, two fresh joins.
    const token = issueJoinToken(KEY, 120);
    const first = await joinAndHello(edge.url, token, draft);
    const second = first && (await joinAndHello(edge.url, token, draft));
    log(`token reuse: first ${first}, second ${second}`);
    await sleep(300);
    const b = await connectNodeDevice({ edge: edge.url, draft, token: SECRET, settings, timeoutMs: 60_000 });
    let peakFds = openFds(pid);
    const fdTimer = setInterval(() => (peakFds = Math.max(peakFds, openFds(pid))), 100);

    // Attacks, all at once.
    const closed = new Set<EdgeConnection>();
    const attackers = Array.from({ length: 16 }, () =>
      rawPeer(edge.url, SECRET, 15_000).then(
        (c) => {
          conns.push(c);
          c.channel.onClose(() => closed.add(c));
          return c;
        },
        () => null,
      ),
    );
    const pingPeers: EdgeConnection[] = [];
    let stop = false;
    const peersDone = Promise.all(attackers).then(async (cs) => {
      const open = cs.filter((c): c is EdgeConnection => c !== null);
      open.forEach((c, i) => {
        const ch = c.channel;
        if (i % 2 === 0) {
          // Ping-only peer: never says hello.
          pingPeers.push(c);
          const t = new FrameTransport(ch);
          const tick = async () => {
            while (!stop) {
              await t
                .send(encodeFrame({ kind: 'ping', t: 1 }, { sessionId: 0, round: 0 }))
                .catch(() => undefined);
              await sleep(500);
            }
          };
          void tick();
        } else {
          // Partial frames: first chunks of 60 MiB messages, a quarter of each message's chunks.
          void (async () => {
            const L = 60 * 1024 * 1024;
            const count = 4000;
            for (let id = 1; id <= 4 && !stop; id++) {
              for (let k = 0; k < count - 1 && !stop; k += 4) {
                try {
                  ch.send(craftChunk(id, L, count, k));
                } catch {
                  return;
                }
                while (ch.bufferedAmount() > 1 << 20 && !stop) await sleep(2);
              }
            }
          })();
        }
      });
      return open.length;
    });
    // /score floods: text/plain, no credential, large bodies.
    const scoreBody = JSON.stringify({
      prompt: prompt,
      continuations: Array.from({ length: 4000 }, (_, i) => [(i * 7) % 1000, (i * 13) % 1000, 5, 6]),
      sampling: { temperature: 1, topK: 0, topP: 1 },
    });
    // Status of each: 0 while still queued or running (taken on), else the HTTP status.
    const scoreStatus = new Array<number>(12).fill(0);
    for (let i = 0; i < 12; i++) {
      void request(edge.url, '/score', {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: scoreBody,
        timeoutMs: 60_000,
      }).then((st) => (scoreStatus[i] = st === 0 ? -1 : st));
    }
    // A rebinding Host: HTTP and signaling.
    const rebind = [
      await request(edge.url, '/', { headers: { host: `evil.example:${new URL(edge.url).port}` } }),
      await request(edge.url, '/healthz', { headers: { host: `evil.example:${new URL(edge.url).port}` } }),
      (await rebindSignal(edge.url)) ? 200 : 403,
    ];
    // Build files.
    const web = path.dirname(require.resolve('@dssd/web/package.json'));
    const testJs = firstFile(path.join(web, 'dist', 'test'));
    const builds = ['/app.js.map', '/tsconfig.tsbuildinfo', '/widget.js.map'];
    if (testJs) builds.push('/test/' + testJs);
    const buildStatus = await Promise.all(builds.map((p) => request(edge.url, p)));
    // Bad chunks: 20 KB of 1-byte messages from one peer.
    const flood = await rawPeer(edge.url, SECRET, 15_000).catch(() => null);
    const logBefore = edge.logBytes();
    let badChunksSent = 0;
    if (flood) {
      conns.push(flood);
      for (let i = 0; i < 20_000; i++) {
        try {
          flood.channel.send(new Uint8Array([i & 0xff]));
        } catch {
          break;
        }
        badChunksSent++;
        if (i % 1000 === 0) await sleep(5);
      }
    }
    await sleep(2000);
    const badChunkLogBytes = edge.logBytes() - logBefore;
    // The well-behaved device, under attack.
    s = performance.now();
    const loaded = (await b.session.generate(prompt, { maxNewTokens: n })).tokens;
    const loadedMs = performance.now() - s;
    const joined = await peersDone;
    // Give ping-only peers time to be dropped (a few seconds after their channel opened).
    await sleep(6000);
    const pingOpen = pingPeers.filter((c) => !closed.has(c)).length;
    stop = true;
    const m = await metricsOf(edge.url);
    clearInterval(fdTimer);
    const report: DrillReport = {
      edgePeakRssMb: Math.round(peakRssMb(pid)),
      openFds: openFds(pid),
      peakFds,
      live: m.dssd_sessions_active ?? null,
      pending: m.dssd_sessions_pending ?? null,
      held: m.dssd_sessions_held ?? null,
      exact: arrEq(unloaded, ref) && arrEq(loaded, ref),
      latencyRatio: Math.round((loadedMs / unloadedMs) * 100) / 100,
      unloadedMs: Math.round(unloadedMs),
      loadedMs: Math.round(loadedMs),
      joinsAccepted: `${joined}/16 (max-sessions 4, one slot held by the device)`,
      pingPeersOpen: pingOpen,
      scoreAccepted: `${scoreStatus.filter((x) => x === 200 || x === 0).length}/12`,
      rebindAccepted: `${rebind.filter((x) => x === 200).length}/3`,
      buildFilesServed: `${buildStatus.filter((x) => x === 200).length}/${builds.length}`,
      tokenReuseAccepted: second,
      badChunkLogBytes,
      badChunksSent,
      wallS: Math.round((performance.now() - t0) / 1000),
    };
    b.close();
    return report;
  } finally {
    for (const c of conns) c.close();
    edge.stop();
  }
}

function firstFile(dir: string): string | undefined {
  try {
    return fs.readdirSync(dir).find((f) => f.endsWith('.js'));
  } catch {
    return undefined;
  }
}

function arrEq(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `dssd drill`: the attack drill against an edge process of its own; one JSON line on stdout. */
export async function drillCommand(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: { tokens: { type: 'string' } } });
  const r = await runDrill({
    tokens: num(v.tokens, 'tokens', 32, true),
    log: (m) => process.stderr.write(m + '\n'),
  });
  process.stdout.write(JSON.stringify(r) + '\n');
  if (!r.exact || r.latencyRatio > 2) process.exitCode = 1;
}
