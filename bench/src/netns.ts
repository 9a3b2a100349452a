/**
 * The kernel-shaped subset: the real edge node and the real Node device as two processes joined by real WebRTC,
 * inside a network namespace this run creates, on its loopback device, with the link rates set by the kernel
 * (htb: one class per direction, told apart by the device's pinned UDP ports; tbf, one shared bucket, as the
 * fallback for symmetric links). This kernel has no netem, so propagation delay stays in the transport shaper
 * (the device's delay line). Traffic never leaves the namespace: it only ever goes to 127.0.0.1 inside it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { TurnStats } from '@dssd/protocol';
import type { LinkProfile } from './shaper.js';
import { runSpecWith, type Measurement, type RunSpec } from './run.js';
import { DEVICE_PORTS, type DeviceJob } from './netns-job.js';

export { DEVICE_PORTS };

/** Ephemeral ports for everything else in the namespace (the edge's ICE sockets, signaling). */
export const EPHEMERAL_PORTS = '32768 60999';
/** Loopback MTU inside the namespace: Ethernet-sized packets, so a one-packet bucket holds any packet. */
export const LO_MTU = 1500;
/** Bucket size: one packet, so the rate holds from the first packet on (no burst beyond a packet). */
export const BURST_BYTES = 1600;

export type Qdisc = 'htb' | 'tbf';

/** Why kernel shaping could not run (fixed codes). */
export type NetnsErrorCode =
  'not-root' | 'no-tools' | 'setup-failed' | 'asymmetric-needs-htb' | 'child-failed' | 'timeout';

export class NetnsShapingError extends Error {
  constructor(
    readonly code: NetnsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'NetnsShapingError';
  }
}

const mbit = (mbps: number) => `${mbps}mbit`;

/** The tc argument lists (after `tc`) that shape lo for a profile; pure, so tests can check them. */
export function tcCommands(profile: LinkProfile, qdisc: Qdisc): string[][] {
  if (qdisc === 'tbf') {
    if (profile.upMbps !== profile.downMbps) {
      throw new NetnsShapingError(
        'asymmetric-needs-htb',
        `${profile.name} has different up and down rates; tbf on lo shapes both directions as one`,
      );
    }
    return [
      ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'tbf', 'rate', mbit(profile.upMbps)].concat([
        'burst',
        String(BURST_BYTES),
        'latency',
        '500ms',
      ]),
    ];
  }
  const cls = (id: number, rate: string, burst = String(BURST_BYTES)) => [
    ...['class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', `1:${id}`, 'htb', 'rate', rate, 'ceil', rate],
    ...['burst', burst, 'cburst', burst, 'quantum', '1514'],
  ];
  const filter = (family: 'ip' | 'ip6', field: 'sport' | 'dport', flow: string) => [
    ...[
      'filter',
      'add',
      'dev',
      'lo',
      'parent',
      '1:',
      'protocol',
      family === 'ip' ? 'ip' : 'ipv6',
      // One priority per protocol: the kernel refuses two protocols at the same priority.
      'prio',
      family === 'ip' ? '1' : '2',
    ],
    ...['u32', 'match', family, 'protocol', '17', '0xff'],
    ...[
      'match',
      family,
      field,
      String(DEVICE_PORTS.min),
      `0x${DEVICE_PORTS.mask.toString(16)}`,
      'flowid',
      flow,
    ],
  ];
  return [
    ['qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '30'],
    cls(10, mbit(profile.upMbps)), // device → edge: from a device port
    cls(20, mbit(profile.downMbps)), // edge → device: to a device port
    cls(30, '10gbit', '64k'), // everything else (signaling): unshaped
    filter('ip', 'sport', '1:10'),
    filter('ip', 'dport', '1:20'),
    filter('ip6', 'sport', '1:10'),
    filter('ip6', 'dport', '1:20'),
  ];
}

export interface ClassCounters {
  bytes: number;
  packets: number;
  dropped: number;
}

/** Parses `tc -s class show dev lo` (htb) into counters per class id ('1:10' …). */
export function parseClassStats(text: string): Map<string, ClassCounters> {
  const out = new Map<string, ClassCounters>();
  let cur: string | null = null;
  for (const line of text.split('\n')) {
    const c = /^class \S+ (\S+)/.exec(line);
    if (c) cur = c[1];
    const s = /Sent (\d+) bytes (\d+) pkt \(dropped (\d+)/.exec(line);
    if (s && cur) {
      out.set(cur, { bytes: Number(s[1]), packets: Number(s[2]), dropped: Number(s[3]) });
      cur = null;
    }
  }
  return out;
}

/** What the kernel counted for one run: proof the classes saw the traffic. */
export interface TcCounters {
  qdisc: Qdisc;
  /** htb only: bytes as tc counts them (whole packets, headers included), packets and drops per direction. */
  up?: ClassCounters;
  down?: ClassCounters;
}

const diff = (a?: ClassCounters, b?: ClassCounters): ClassCounters | undefined =>
  a && b ? { bytes: b.bytes - a.bytes, packets: b.packets - a.packets, dropped: b.dropped - a.dropped } : b;

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return {
    ok: r.status === 0,
    out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim(),
  };
}

const live = new Set<ShapedNamespace>();
const children = new Set<ChildProcess>();
let hooked = false;
function cleanupAll(): void {
  for (const c of children) c.kill('SIGKILL');
  for (const ns of live) ns.destroy();
}

/** A network namespace of this run, with lo up; deleted on destroy() and, failing that, at process exit. */
export class ShapedNamespace {
  private qdisc: Qdisc | null = null;
  private destroyed = false;
  /** Why htb was not used, when shape() fell back to tbf. */
  htbError: string | null = null;

  private constructor(readonly name: string) {}

  /** Creates the namespace, or throws a NetnsShapingError saying why kernel shaping cannot run here. */
  static create(): ShapedNamespace {
    if (process.getuid?.() !== 0) {
      throw new NetnsShapingError('not-root', 'kernel shaping needs root (ip netns, tc)');
    }
    for (const [cmd, arg] of [
      ['ip', '-V'],
      ['tc', '-V'],
    ]) {
      const r = run(cmd, [arg]);
      if (!r.ok) throw new NetnsShapingError('no-tools', `${cmd} is not usable: ${r.out}`);
    }
    const ns = new ShapedNamespace(`dssd-bench-${process.pid}`);
    if (!hooked) {
      hooked = true;
      process.on('exit', cleanupAll);
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        process.once(sig, () => {
          cleanupAll();
          process.exit(130);
        });
      }
    }
    const add = run('ip', ['netns', 'add', ns.name]);
    if (!add.ok) throw new NetnsShapingError('setup-failed', `ip netns add failed: ${add.out}`);
    live.add(ns);
    try {
      ns.must(['ip', 'link', 'set', 'lo', 'mtu', String(LO_MTU)]);
      ns.must(['ip', 'link', 'set', 'lo', 'up']);
      ns.must(['sysctl', '-q', '-w', `net.ipv4.ip_local_port_range=${EPHEMERAL_PORTS}`]);
    } catch (e) {
      ns.destroy();
      throw e;
    }
    return ns;
  }

  /** argv prefix that runs a command inside the namespace. */
  execArgs(cmd: string[]): string[] {
    return ['ip', 'netns', 'exec', this.name, ...cmd];
  }

  private must(cmd: string[]): string {
    const [c, ...a] = this.execArgs(cmd);
    const r = run(c, a);
    if (!r.ok) throw new NetnsShapingError('setup-failed', `${cmd.join(' ')} failed: ${r.out}`);
    return r.out;
  }

  /** Shapes lo for the profile: htb per direction, else (symmetric links) tbf. Returns the qdisc used. */
  shape(profile: LinkProfile): Qdisc {
    const clear = () => {
      const [c, ...a] = this.execArgs(['tc', 'qdisc', 'del', 'dev', 'lo', 'root']);
      run(c, a); // fails when there is none: fine
    };
    let firstError: unknown;
    for (const q of ['htb', 'tbf'] as const) {
      clear();
      try {
        for (const cmd of tcCommands(profile, q)) this.must(['tc', ...cmd]);
        this.qdisc = q;
        return q;
      } catch (e) {
        firstError ??= e;
        if (q === 'htb') this.htbError = (e as Error).message;
      }
    }
    clear();
    throw firstError;
  }

  /** Current htb class counters (undefined with tbf). */
  counters(): { up?: ClassCounters; down?: ClassCounters } {
    if (this.qdisc !== 'htb') return {};
    const m = parseClassStats(this.must(['tc', '-s', 'class', 'show', 'dev', 'lo']));
    return { up: m.get('1:10'), down: m.get('1:20') };
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    run('ip', ['netns', 'del', this.name]);
  }
}

/** A child process speaking JSON lines. */
class Child {
  readonly proc: ChildProcess;
  private readonly waiters: ((o: Record<string, unknown>) => boolean)[] = [];
  private exited: string | null = null;
  stderr = '';

  constructor(argv: string[], onLine: (o: Record<string, unknown>) => void) {
    this.proc = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(this.proc);
    readline.createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return; // a library's stray output
      }
      onLine(o);
      for (let i = 0; i < this.waiters.length; i++) {
        if (this.waiters[i](o)) this.waiters.splice(i--, 1);
      }
    });
    this.proc.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    this.proc.on('exit', (code, sig) => {
      children.delete(this.proc);
      this.exited = `exited (${code ?? sig})`;
      for (const w of this.waiters.splice(0)) w({ error: `child ${this.exited}: ${this.stderr.trim()}` });
    });
  }

  /** Resolves with the first line `match` accepts (or an {error} line), rejecting after timeoutMs. */
  wait(match: (o: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(new NetnsShapingError('child-failed', `child ${this.exited}`));
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new NetnsShapingError('timeout', `no answer in ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const w = (o: Record<string, unknown>) => {
        if (!match(o) && !('error' in o && !('id' in o))) return false;
        clearTimeout(timer);
        if ('error' in o && !('id' in o)) {
          reject(new NetnsShapingError('child-failed', String(o.error)));
        } else resolve(o);
        return true;
      };
      this.waiters.push(w);
    });
  }

  send(o: unknown): void {
    this.proc.stdin!.write(JSON.stringify(o) + '\n');
  }

  stop(): void {
    if (this.exited) return;
    this.proc.stdin!.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    t.unref();
  }
}

const here = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs specs over the namespace: one edge child per target mode (restarted when it changes), one long-lived
 * device child (the draft model loads once), lo reshaped per profile.
 */
export class NetnsRunner {
  private edge: { child: Child; url: string; key: string; passes: number[][] } | null = null;
  private device: Child | null = null;
  private nextJob = 1;

  constructor(readonly ns: ShapedNamespace) {}

  private async ensureEdge(targetMs: RunSpec['targetMs']): Promise<{ url: string; passes: number[][] }> {
    const key = targetMs ? `${targetMs.a},${targetMs.b}` : '';
    if (this.edge?.key === key) return this.edge;
    this.edge?.child.stop();
    const passes: number[][] = [[]];
    const child = new Child(
      this.ns.execArgs([process.execPath, path.join(here, 'netns-edge.js'), ...(key ? [key] : [])]),
      (o) => {
        // Passes belong to the newest session: the runs are sequential.
        if ('session' in o) passes.push([]);
        else if ('pass' in o) passes[passes.length - 1].push(Number(o.pass));
      },
    );
    const ready = await child.wait((o) => 'ready' in o, 60_000);
    this.edge = { child, url: String(ready.ready), key, passes };
    return this.edge;
  }

  private async ensureDevice(): Promise<Child> {
    if (this.device) return this.device;
    const child = new Child(
      this.ns.execArgs([process.execPath, path.join(here, 'netns-device.js')]),
      () => {},
    );
    await child.wait((o) => 'ready' in o, 60_000);
    this.device = child;
    return child;
  }

  /** One spec, every prompt in a fresh session over real WebRTC; shaped by the kernel for spec.profile. */
  async runSpec(spec: RunSpec): Promise<{ m: Measurement; kernel: TcCounters }> {
    const edge = await this.ensureEdge(spec.targetMs);
    const device = await this.ensureDevice();
    const qdisc = this.ns.shape(spec.profile);
    const before = this.ns.counters();
    const m = await runSpecWith(spec, async (prompt, seed) => {
      const first = edge.passes.length;
      const job: DeviceJob = {
        id: this.nextJob++,
        url: edge.url,
        method: spec.method,
        gamma: spec.gamma,
        rttMs: spec.profile.rttMs,
        setting: spec.setting,
        prompt,
        maxNewTokens: spec.maxNewTokens,
        seed,
      };
      device.send(job);
      const r = await device.wait((o) => o.id === job.id, 180_000);
      if ('error' in r) throw new NetnsShapingError('child-failed', `device: ${String(r.error)}`);
      // The edge timed its last pass before sending the answer the device just got; let its line arrive.
      await sleep(50);
      const passMs = edge.passes.slice(first).flat();
      const stats = r.stats as TurnStats;
      const tokens = stats.rounds ? (stats.draftedTokens + stats.rounds) / stats.rounds : 1;
      return { stats, passMs, passTokens: [tokens] };
    });
    const after = this.ns.counters();
    return { m, kernel: { qdisc, up: diff(before.up, after.up), down: diff(before.down, after.down) } };
  }

  close(): void {
    this.device?.stop();
    this.edge?.child.stop();
    this.device = null;
    this.edge = null;
  }
}
