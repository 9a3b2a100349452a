/**
 * Attack drill (`dssd drill`): starts a real edge process (loopback only, --max-sessions 4, a shared secret and a
 * token key), runs a well-behaved greedy device unloaded, then again while hostile peers (a process of their own,
 * so the device's event loop is not the attacker's) attack the edge:
 * concurrent joins beyond the session cap, partial-frame flooding, /score floods, ping-only peers, a rebinding
 * Host, a bad-chunk log flood, join-token reuse and build-file requests. Prints one JSON line: the edge's peak RSS,
 * open file descriptors, live/pending/held sessions (from /metrics), whether the device's greedy answer stayed
 * equal to the `ar` reference, and its latency against the unloaded run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
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
} from '@dssd/protocol';
import { connectNodeDevice, nodeWrtc } from '../device/node.js';
import { issueJoinToken } from '../access.js';
import { num } from '../flags.js';
import { peakRssMb, startEdgeProcess } from './load.js';

const require = createRequire(import.meta.url);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const greedy = { temperature: 0, topK: 0, topP: 1 };
const SECRET = 'drill-secret-0123456789abcdef';
const KEY = 'drill-token-key-0123456789abcdef';

export interface AttackReport {
  joinsAccepted: number;
  joinsTried: number;
  pingPeersOpen: number;
  pingPeers: number;
  partialChunksSent: number;
  scoreAccepted: number;
  scoreSent: number;
  rebindAccepted: number;
  buildFilesServed: number;
  buildFilesTried: number;
  badChunksSent: number;
}

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
  tokenReuseAccepted: boolean;
  edgeLogBytesDuringAttack: number;
  attacks: AttackReport;
  wallS: number;
}

/** A raw data channel to an edge (real WebRTC), for hostile peers and tests. */
export function rawPeer(url: string, token?: string, timeoutMs = 15_000): Promise<EdgeConnection> {
  return connectEdge({
    url,
    WebSocket: WebSocket as never,
    wrtc: nodeWrtc(),
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

/**
 * The attacks, for `durationMs`, from this process (the drill runs them in a child process). Calls `ready` once
 * the joins have settled.
 */
export async function runAttacks(url: string, durationMs: number, ready: () => void): Promise<AttackReport> {
  const end = Date.now() + durationMs;
  const live = () => Date.now() < end;
  const closed = new Set<EdgeConnection>();
  const conns: EdgeConnection[] = [];
  const r: AttackReport = {
    joinsAccepted: 0,
    joinsTried: 16,
    pingPeersOpen: 0,
    pingPeers: 0,
    partialChunksSent: 0,
    scoreAccepted: 0,
    scoreSent: 0,
    rebindAccepted: 0,
    buildFilesServed: 0,
    buildFilesTried: 0,
    badChunksSent: 0,
  };
  const track = (c: EdgeConnection) => {
    conns.push(c);
    c.channel.onClose(() => closed.add(c));
    return c;
  };
  try {
    // The bad-chunk peer joins first: 20 KB of 1-byte messages, paced over the attack.
    const flood = await rawPeer(url, SECRET, 15_000).then(track, () => null);
    const floodDone = (async () => {
      for (let i = 0; flood && i < 20_000 && live() && !closed.has(flood); i++) {
        try {
          flood.channel.send(new Uint8Array([i & 0xff]));
        } catch {
          break;
        }
        r.badChunksSent++;
        if (i % 500 === 499) await sleep(100);
      }
    })();
    // Concurrent joins beyond --max-sessions: half only ping, half flood partial frames.
    const peers = await Promise.all(
      Array.from({ length: r.joinsTried }, () => rawPeer(url, SECRET, 15_000).then(track, () => null)),
    );
    const open = peers.filter((c): c is EdgeConnection => c !== null);
    r.joinsAccepted = open.length;
    const pingers = open.filter((_, i) => i % 2 === 0);
    r.pingPeers = pingers.length;
    const openedAt = Date.now();
    const loops = open.map(async (c, i) => {
      if (i % 2 === 0) {
        const t = new FrameTransport(c.channel);
        const ping = encodeFrame({ kind: 'ping', t: 1 }, { sessionId: 0, round: 0 });
        while (live() && !closed.has(c)) {
          await t.send(ping).catch(() => undefined);
          await sleep(500);
        }
        return;
      }
      // First chunks of 60 MiB messages: a quarter of each message's chunks, paced.
      const L = 60 * 1024 * 1024;
      const count = 4000;
      for (let id = 1; live() && !closed.has(c); id++) {
        for (let k = 0; k < count - 1 && live() && !closed.has(c); k += 4) {
          try {
            c.channel.send(craftChunk(id, L, count, k));
          } catch {
            return;
          }
          r.partialChunksSent++;
          if (k % 256 === 0) await sleep(20);
          while (c.channel.bufferedAmount() > 1 << 20 && live()) await sleep(5);
        }
      }
    });
    ready();
    // /score floods: text/plain, no credential, 16,000 tokens each; 12 every 2 s.
    const scoreBody = JSON.stringify({
      prompt: [1, 2, 3, 4, 5, 6, 7, 8],
      continuations: Array.from({ length: 4000 }, (_, i) => [(i * 7) % 1000, (i * 13) % 1000, 5, 6]),
      sampling: { temperature: 1, topK: 0, topP: 1 },
    });
    const scoreLoop = (async () => {
      while (live()) {
        for (let i = 0; i < 12; i++) {
          r.scoreSent++;
          // Counted once: answered 200, or still queued or running when the attack ends (taken on).
          let counted = false;
          const count = () => {
            if (!counted) r.scoreAccepted++;
            counted = true;
          };
          let settled = false;
          const p = request(url, '/score', {
            method: 'POST',
            headers: { 'content-type': 'text/plain' },
            body: scoreBody,
            timeoutMs: Math.max(1000, end - Date.now()),
          }).then((st) => {
            settled = true;
            if (st === 200) count();
          });
          void p;
          setTimeout(() => !settled && count(), Math.max(0, end - Date.now() - 50)).unref();
        }
        await sleep(2000);
      }
    })();
    // A rebinding Host (HTTP and signaling) and build files.
    const port = new URL(url).port;
    const rebind = [
      await request(url, '/', { headers: { host: `evil.example:${port}` } }),
      await request(url, '/healthz', { headers: { host: `evil.example:${port}` } }),
      (await rebindSignal(url)) ? 200 : 403,
    ];
    r.rebindAccepted = rebind.filter((x) => x === 200).length;
    const web = path.dirname(require.resolve('@dssd/web/package.json'));
    const testJs = firstFile(path.join(web, 'dist', 'test'));
    const builds = ['/app.js.map', '/tsconfig.tsbuildinfo', '/widget.js.map', '/ort/ort.min.js.map'];
    if (testJs) builds.push('/test/' + testJs);
    r.buildFilesTried = builds.length;
    r.buildFilesServed = (await Promise.all(builds.map((p) => request(url, p)))).filter(
      (x) => x === 200,
    ).length;
    await Promise.all([floodDone, scoreLoop, ...loops]);
    // Ping-only peers: still connected at the end (the attack lasts well beyond a hello deadline)?
    await sleep(Math.max(0, openedAt + 8000 - Date.now()));
    r.pingPeersOpen = pingers.filter((c) => !closed.has(c)).length;
    return r;
  } finally {
    for (const c of conns) c.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runDrill(
  o: { tokens?: number; runs?: number; log?: (m: string) => void } = {},
): Promise<DrillReport> {
  const log = o.log ?? (() => undefined);
  const t0 = performance.now();
  const n = o.tokens ?? 64;
  const runs = o.runs ?? 3;
  // Flags the edge understands (the drill also runs against builds that predate them).
  const extra = 'singleUseTokens' in EDGE_NODE_DEFAULTS ? ['--single-use-tokens'] : [];
  const draft = await loadNodeModel(DEFAULT_MODEL_DIRS.draft);
  const edge = await startEdgeProcess(
    ['--log-level', 'info', '--max-sessions', '4', '--secret', SECRET, '--token-key', KEY, ...extra],
    { countLog: true },
  );
  const pid = edge.pid;
  log(`edge at ${edge.url} (pid ${pid})`);
  let attacker: ChildProcess | null = null;
  try {
    const prompt = draft.tokenizer.encode('The history of the city begins');
    const settings = { mode: 'dssd' as const, gamma: 4, sampling: greedy };
    const ar = await connectNodeDevice({
      edge: edge.url,
      draft,
      token: SECRET,
      settings: { mode: 'ar', sampling: greedy },
    });
    const ref = (await ar.session.generate(prompt, { maxNewTokens: n })).tokens;
    ar.close();
    // The same greedy answer `runs` times on one device (rewound to the prompt each time): its latency is the median.
    const answer = async (d: Awaited<ReturnType<typeof connectNodeDevice>>) => {
      const times: number[] = [];
      let exact = true;
      for (let i = 0; i < runs; i++) {
        if (i > 0) d.session.rewind(prompt.length - 1);
        const s = performance.now();
        const r = await d.session.generate(i === 0 ? prompt : prompt.slice(-1), { maxNewTokens: n });
        times.push(performance.now() - s);
        exact &&= arrEq(r.tokens, ref);
      }
      return { ms: median(times), exact };
    };
    const a = await connectNodeDevice({ edge: edge.url, draft, token: SECRET, settings });
    const unloaded = await answer(a);
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
    const logBefore = edge.logBytes();
    // The attacker: a process of its own.
    const bin = fileURLToPath(new URL('../../../bin/dssd.js', import.meta.url));
    attacker = spawn(process.execPath, [bin, 'drill', '--attack', edge.url, '--duration-ms', '15000'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = readline.createInterface({ input: attacker.stdout! });
    let onReady: () => void = () => undefined;
    const readyP = new Promise<void>((r) => (onReady = r));
    const resultP = new Promise<AttackReport>((resolve, reject) => {
      lines.on('line', (l) => {
        if (l === 'ready') onReady();
        else if (l.startsWith('{')) resolve(JSON.parse(l) as AttackReport);
      });
      attacker!.on('exit', (code) => reject(new Error(`the attacker exited with ${code}`)));
    });
    await Promise.race([readyP, resultP]);
    log('attacks under way');
    await sleep(1000);
    const loaded = await answer(b);
    log(`loaded runs done`);
    const attacks = await resultP;
    const edgeLogBytesDuringAttack = edge.logBytes() - logBefore;
    const m = await metricsOf(edge.url);
    clearInterval(fdTimer);
    b.close();
    return {
      edgePeakRssMb: Math.round(peakRssMb(pid)),
      openFds: openFds(pid),
      peakFds,
      live: m.dssd_sessions_active ?? null,
      pending: m.dssd_sessions_pending ?? null,
      held: m.dssd_sessions_held ?? null,
      exact: unloaded.exact && loaded.exact,
      latencyRatio: Math.round((loaded.ms / unloaded.ms) * 100) / 100,
      unloadedMs: Math.round(unloaded.ms),
      loadedMs: Math.round(loaded.ms),
      tokenReuseAccepted: second,
      edgeLogBytesDuringAttack,
      attacks,
      wallS: Math.round((performance.now() - t0) / 1000),
    };
  } finally {
    attacker?.kill('SIGKILL');
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
  const { values: v } = parseArgs({
    args: argv,
    options: {
      tokens: { type: 'string' },
      runs: { type: 'string' },
      attack: { type: 'string' },
      'duration-ms': { type: 'string' },
    },
  });
  if (v.attack) {
    // The attacker side, spawned by the drill.
    const r = await runAttacks(v.attack, num(v['duration-ms'], 'duration-ms', 15_000, true), () =>
      process.stdout.write('ready\n'),
    );
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const r = await runDrill({
    tokens: num(v.tokens, 'tokens', 64, true),
    runs: num(v.runs, 'runs', 3, true),
    log: (m) => process.stderr.write(m + '\n'),
  });
  process.stdout.write(JSON.stringify(r) + '\n');
  if (!r.exact || r.latencyRatio > 2) process.exitCode = 1;
}
