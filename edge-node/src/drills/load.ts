/**
 * Load test: starts its own edge (a child process, so its memory is measured alone), then N concurrent Node
 * devices over real WebRTC, each with its own prompt, greedy DSSD; each answer is checked against that
 * prompt's own `ar` reference (edge-only decoding), taken first, one device at a time. Reports rounds/s,
 * p50/p99 round latency (uplink sent → verdict received, measured on the device) and the edge's peak RSS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { num, webrtcStack } from '../flags.js';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MODEL_DIRS, defaultPrompts, loadNodeModel } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import { GAMMA, type DeviceOptions, type RawChannel, type WebrtcStack } from '@dssd/protocol';
import { connectNodeDevice } from '../device/node.js';

export interface LoadReport {
  devices: number;
  errors: number;
  crossTalk: number;
  roundsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  peakRssMb: number;
  /** Answers that differ from their reference only after a near-tie of the target (|top1 − top2| < 1e-3). */
  nearTies: number;
  rounds: number;
  tokens: number;
  wallS: number;
  /** Whether the edge ran with --batch, and the mode the devices used (ar: edge-only decoding). */
  batch: boolean;
  mode: 'dssd' | 'ar';
  tokensPerSecond: number;
  /** Target passes per generated token (batched: batched passes; unbatched: session passes). */
  passesPerToken: number;
  /** Mean sessions per batched pass (1 unbatched). */
  meanBatch: number;
  /** Edge CPU seconds (user + system) per wall second during the run. */
  edgeCpu: number;
  errorMessages: string[];
}

/** User + system CPU seconds of a process so far (Linux), NaN elsewhere. */
export function cpuSeconds(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/** One counter from the edge's /metrics (0 when absent). */
async function scrape(url: string, name: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Times each uplink message to the next downlink one: a round's latency as the device sees it. */
class TimedChannel implements RawChannel {
  readonly latencies: number[] = [];
  private pending: number | null = null;
  constructor(private readonly inner: RawChannel) {}
  send(m: Uint8Array): void {
    this.pending ??= performance.now();
    this.inner.send(m);
  }
  bufferedAmount(): number {
    return this.inner.bufferedAmount();
  }
  maxMessageSize(): number | undefined {
    return this.inner.maxMessageSize();
  }
  onMessage(cb: (m: Uint8Array) => void): void {
    this.inner.onMessage((m) => {
      if (this.pending !== null) {
        this.latencies.push(performance.now() - this.pending);
        this.pending = null;
      }
      cb(m);
    });
  }
  onClose(cb: (err?: Error) => void): void {
    this.inner.onClose(cb);
  }
  close(): void {
    this.inner.close();
  }
}

/** A greedy device on the shared draft model whose channel times each round. */
async function openTimedDevice(
  url: string,
  draft: LanguageModel,
  settings: DeviceOptions['settings'],
  webrtc?: WebrtcStack,
) {
  let timed: TimedChannel | null = null;
  const d = await connectNodeDevice({
    edge: url,
    draft,
    webrtc,
    settings,
    timeoutMs: 60_000,
    wrap: (ch) => (timed = new TimedChannel(ch)),
  });
  return { ...d, timed: timed! as TimedChannel };
}

/** An edge process of a drill's own: its URL, pid, the bytes it logged so far, and a way to stop it. */
export interface EdgeProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  /** Bytes the edge wrote to stderr (its log) so far; 0 when stderr is inherited. */
  logBytes(): number;
  stop(): void;
}

/**
 * Starts `dssd serve --port 0 …args` in a child process (so its memory and descriptors are measured alone);
 * resolves with its URL once it listens. With `countLog` its stderr is counted instead of passed through.
 */
export async function startEdgeProcess(args: string[], o: { countLog?: boolean } = {}): Promise<EdgeProcess> {
  const bin = fileURLToPath(new URL('../../../bin/dssd.js', import.meta.url));
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', o.countLog ? 'pipe' : 'inherit'],
  });
  let logBytes = 0;
  child.stderr?.on('data', (d: Buffer) => (logBytes += d.length));
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
  return { url, pid: child.pid!, child, logBytes: () => logBytes, stop: () => child.kill('SIGKILL') };
}

/** Peak resident memory of a process (Linux VmHWM), in MiB; NaN elsewhere. */
export function peakRssMb(pid: number): number {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /VmHWM:\s+(\d+) kB/.exec(s);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

export async function runLoad(o: {
  devices: number;
  maxNewTokens?: number;
  gamma?: number;
  /** WebRTC stack of the edge process and the devices (default: the settings home's). */
  webrtc?: WebrtcStack;
  /** Edge with --batch (continuous batching of all sessions' target passes). */
  batch?: boolean;
  /** ar: every device decodes edge-only (the baseline); references are then taken the same way. */
  mode?: 'dssd' | 'ar';
  /**
   * Steady state: each device repeats its answer (rewound to its prompt) until this many seconds have passed, and
   * the figures cover that window; only the first answer is checked against the reference.
   */
  durationS?: number;
  log?: (line: string) => void;
}): Promise<LoadReport> {
  const log = o.log ?? (() => undefined);
  const n = o.devices;
  const maxNewTokens = o.maxNewTokens ?? 32;
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  const draft = await loadNodeModel(DEFAULT_MODEL_DIRS.draft);
  const mode = o.mode ?? 'dssd';
  const edge = await startEdgeProcess([
    '--log-level',
    'warn',
    '--max-sessions',
    String(n + 8),
    // Every device joins from this one address: the per-address join limit is for the open internet.
    '--joins-per-second',
    '1000',
    ...(o.batch ? ['--batch'] : []),
    ...(o.webrtc ? ['--webrtc', o.webrtc] : []),
  ]);
  log(`edge at ${edge.url} (pid ${edge.pid}); ${n} devices, ${maxNewTokens} tokens each`);
  const report: LoadReport = {
    devices: n,
    errors: 0,
    crossTalk: 0,
    roundsPerSecond: 0,
    p50Ms: NaN,
    p99Ms: NaN,
    peakRssMb: NaN,
    nearTies: 0,
    rounds: 0,
    tokens: 0,
    wallS: 0,
    batch: !!o.batch,
    mode,
    tokensPerSecond: 0,
    passesPerToken: NaN,
    meanBatch: 1,
    edgeCpu: NaN,
    errorMessages: [],
  };
  try {
    const prompts = defaultPrompts(n).map((p) => draft.tokenizer.encode(p));
    // References: each prompt's own ar answer, one device at a time.
    const refs: number[][] = [];
    for (const p of prompts) {
      const d = await openTimedDevice(edge.url, draft, { mode: 'ar', sampling: greedy }, o.webrtc);
      refs.push((await d.session.generate(p, { maxNewTokens })).tokens);
      d.close();
    }
    log(`ar references done`);
    // Connect a few at a time (ICE on two cores is the bottleneck); generate all at once.
    const devs: Awaited<ReturnType<typeof openTimedDevice>>[] = [];
    const settings: DeviceOptions['settings'] = {
      mode,
      codec: 'auto',
      gamma: o.gamma ?? GAMMA.default,
      sampling: greedy,
    };
    for (let i = 0; i < n; i += 8) {
      devs.push(
        ...(await Promise.all(
          prompts.slice(i, i + 8).map(() => openTimedDevice(edge.url, draft, settings, o.webrtc)),
        )),
      );
    }
    log(`${n} devices connected`);
    const passes0 = await scrape(edge.url, o.batch ? 'dssd_batch_passes_total' : 'dssd_forward_passes_total');
    const items0 = await scrape(edge.url, 'dssd_batch_items_total');
    const cpu0 = cpuSeconds(edge.pid);
    const t0 = performance.now();
    const end = o.durationS === undefined ? 0 : t0 + 1000 * o.durationS;
    const extra = devs.map(() => ({ rounds: 0, tokens: 0 }));
    const results = await Promise.allSettled(
      devs.map(async (d, i) => {
        const first = await d.session.generate(prompts[i], { maxNewTokens });
        while (performance.now() < end) {
          d.session.rewind(0);
          const r = await d.session.generate(prompts[i], { maxNewTokens });
          extra[i].rounds += r.stats.rounds;
          extra[i].tokens += r.tokens.length;
        }
        return first;
      }),
    );
    report.wallS = (performance.now() - t0) / 1000;
    report.edgeCpu = (cpuSeconds(edge.pid) - cpu0) / report.wallS;
    const passes =
      (await scrape(edge.url, o.batch ? 'dssd_batch_passes_total' : 'dssd_forward_passes_total')) - passes0;
    if (o.batch) report.meanBatch = ((await scrape(edge.url, 'dssd_batch_items_total')) - items0) / passes;
    const lat: number[] = [];
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        report.errors++;
        report.errorMessages.push(`device ${i}: ${(r.reason as Error).message}`);
        return;
      }
      report.rounds += r.value.stats.rounds + extra[i].rounds;
      report.tokens += r.value.tokens.length + extra[i].tokens;
      lat.push(...devs[i].timed.latencies.slice(2)); // after the hello and the first turn's setup
      const got = r.value.tokens;
      const ref = refs[i];
      if (got.length === ref.length && got.every((t, k) => t === ref[k])) return;
      const other = refs.findIndex(
        (x, k) => k !== i && x.length === got.length && x.every((t, m) => t === got[m]),
      );
      if (other >= 0) {
        report.crossTalk++;
        report.errorMessages.push(`device ${i} received device ${other}'s answer`);
      } else {
        report.errors++;
        report.errorMessages.push(`device ${i}: answer differs from its ar reference`);
      }
    });
    // A mismatch may be a near-tie of the target flipped by rounding (multi-token vs one-token passes).
    for (const msg of [...report.errorMessages]) {
      const m = /^device (\d+): answer differs/.exec(msg);
      if (!m) continue;
      const i = Number(m[1]);
      const r = results[i] as PromiseFulfilledResult<{ tokens: number[] }>;
      const k = r.value.tokens.findIndex((t, j) => t !== refs[i][j]);
      if (k >= 0 && (await tieMargin(edge.url, prompts[i].concat(refs[i].slice(0, k)))) < 1e-3) {
        report.errors--;
        report.nearTies++;
      }
    }
    report.roundsPerSecond = report.rounds / report.wallS;
    report.tokensPerSecond = report.tokens / report.wallS;
    report.passesPerToken = passes / report.tokens;
    report.p50Ms = quantile(lat, 0.5);
    report.p99Ms = quantile(lat, 0.99);
    report.peakRssMb = peakRssMb(edge.pid);
    for (const d of devs) d.close();
  } finally {
    edge.stop();
  }
  return report;
}

/** |P(top1) − P(top2)| of the target at `prefix`, from the edge's /score endpoint (with its credential, if any). */
async function tieMargin(url: string, prefix: number[], token?: string): Promise<number> {
  const res = await fetch(new URL('/score', url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({
      prompt: prefix,
      continuations: [],
      sampling: { temperature: 1, topK: 0, topP: 1 },
    }),
  });
  const body = (await res.json()) as { first: number[] };
  const s = [...body.first].sort((a, b) => b - a);
  return s[0] - s[1];
}

/** `dssd load`: N concurrent devices against an edge process of its own; `--runs R` reports the median run. */
export async function loadCommand(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      devices: { type: 'string' },
      tokens: { type: 'string' },
      json: { type: 'boolean' },
      batch: { type: 'boolean' },
      mode: { type: 'string' },
      runs: { type: 'string' },
      seconds: { type: 'string' },
      webrtc: { type: 'string' },
    },
  });
  const mode = v.mode ?? 'dssd';
  if (mode !== 'dssd' && mode !== 'ar') throw new Error('--mode must be dssd or ar');
  const runs: LoadReport[] = [];
  for (let k = 0; k < num(v.runs, 'runs', 1, true); k++) {
    runs.push(
      await runLoad({
        devices: num(v.devices, 'devices', 16, true),
        maxNewTokens: num(v.tokens, 'tokens', 32, true),
        batch: v.batch,
        mode,
        durationS: v.seconds === undefined ? undefined : num(v.seconds, 'seconds', 20),
        webrtc: webrtcStack(v.webrtc),
        log: (m) => process.stderr.write(m + '\n'),
      }),
    );
  }
  // The median run by rounds/s (tokens/s in ar mode), so one figure and its p99 come from the same run.
  const key = (r: LoadReport) => (mode === 'ar' ? r.tokensPerSecond : r.roundsPerSecond);
  const r = runs.slice().sort((a, b) => key(a) - key(b))[Math.floor(runs.length / 2)];
  process.stderr.write(
    `${r.devices} devices (${mode}${r.batch ? ', batched' : ''}): ${r.tokens} tokens in ${r.rounds} rounds over ` +
      `${r.wallS.toFixed(2)} s → ${r.roundsPerSecond.toFixed(1)} rounds/s, ${r.tokensPerSecond.toFixed(1)} tokens/s; ` +
      `round latency p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms; ` +
      `${r.passesPerToken.toFixed(3)} target passes per token, ${r.meanBatch.toFixed(1)} sessions per pass; ` +
      `edge peak RSS ${r.peakRssMb.toFixed(0)} MiB, CPU ${r.edgeCpu.toFixed(2)} cores; ` +
      `errors ${r.errors}, cross-talk ${r.crossTalk}, near-ties ${r.nearTies}` +
      (runs.length > 1 ? ` (median of ${runs.length} runs)` : '') +
      '\n',
  );
  for (const m of r.errorMessages) process.stderr.write(`  ${m}\n`);
  const { errorMessages: _e, ...rest } = r;
  void _e;
  if (v.json) process.stdout.write(JSON.stringify({ ...rest, runs: runs.length }) + '\n');
  if (runs.some((x) => x.errors > 0 || x.crossTalk > 0)) process.exitCode = 1;
}
