/**
 * Capacity benchmark (issue 17): how many devices one edge serves, DSSD against edge-only decoding (ar), batched
 * and unbatched, with the real CPU target and with an EMULATED H200 batch cost. Writes the section
 * "## Batched verification" of docs/capacity.md (other sections of that file are kept) with its plots, and prints
 * one JSON line per point.
 *
 * Real CPU points: `runLoad` (a real edge process, real WebRTC devices drafting with the real draft model).
 * EMULATED points: the production BatchScheduler with a table cost T(B, tokens) (settings home,
 * BATCH_COST_PRESETS) over a STUB target (no compute) and STUB devices (no model: each round sleeps γ·draft ms
 * and the RTT, sends γ + 1 tokens, and has its drafts accepted with probability α each, which replays the
 * acceptance the H200 tables were read with: ≈ 3.2 tokens per round at γ 4). A point whose passes took longer than
 * the emulated time in more than 5% of cases is marked invalid.
 *
 * npm run capacity -- [--devices 1,4,16,32,64,128] [--cpu-devices LIST] [--seconds 20] [--targets cpu,h200-7b]
 *   [--modes dssd,ar] [--no-write]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  BATCH_COST_PRESETS,
  BatchScheduler,
  batchCostMs,
  type BatchBackend,
  type LmSession,
} from '@dssd/protocol';
import { runLoad } from '@dssd/edge-node';
import { prng } from '@dssd/protocol/testing';
import { capacityPlot, type CapacityPoint } from './plots.js';
import { renderSvg } from './render.js';
import { REPO_ROOT } from './paths.js';

/** Stub-device parameters of the EMULATED points (labelled in the report). */
export const EMULATED_DEVICE = Object.freeze({
  gamma: 4,
  /** Per-draft acceptance: (1 − α^{γ+1}) / (1 − α) ≈ 3.2 tokens per round at γ 4, as in scale.md. */
  alpha: 0.77,
  /** Browser draft cost per token (WebLLM ≈ 140 tok/s for a 0.5B draft: scale.md). */
  draftMs: 7,
  rttMs: 20,
  /** A GPU pass takes up to the table's largest batch at its largest k. */
  tokenBudget: 256 * 9,
});
/** Tokens/s per device that count as "served". */
export const SERVED_TOKENS_PER_S = 20;
/** Share of emulated passes allowed to overrun their emulated time. */
export const MAX_OVERRUN_SHARE = 0.05;

export interface CapacityRow extends CapacityPoint {
  batch: boolean;
  mode: 'dssd' | 'ar';
  roundsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  passesPerToken: number;
  batchPerToken: number;
  meanBatch: number;
  rssMb: number;
  cpu: number;
  overrunShare: number;
  /** EMULATED points: tokens per second of (emulated) target busy time, the H200 tables' measure; NaN for CPU. */
  tokensPerGpuSecond: number;
  seconds: number;
}

const quantile = (xs: number[], q: number) =>
  xs.length ? xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] : NaN;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A stub target session: counts positions, returns empty rows (the cost is the table's). */
class StubLm implements LmSession {
  length = 0;
  async forward(tokens: number[]): Promise<Float32Array[]> {
    this.length += tokens.length;
    return tokens.map(() => new Float32Array(0));
  }
  truncate(n: number): void {
    this.length = n;
  }
}

/** One EMULATED point: stub devices and a stub target behind the production scheduler with a table cost. */
export async function emulatedPoint(o: {
  devices: number;
  mode: 'dssd' | 'ar';
  batch: boolean;
  target: string;
  seconds: number;
}): Promise<CapacityRow> {
  const table = BATCH_COST_PRESETS[o.target];
  const E = EMULATED_DEVICE;
  const backend: BatchBackend<StubLm> = {
    run: async (items) => Promise.all(items.map((it) => it.session.forward([...it.tokens]))),
  };
  const sched = new BatchScheduler(backend, {
    cost: table,
    tokenBudget: E.tokenBudget,
    maxItems: o.batch ? Infinity : 1,
  });
  const end = performance.now() + o.seconds * 1000;
  let tokens = 0;
  let rounds = 0;
  const lat: number[] = [];
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: o.devices }, async (_, i) => {
      const lm = sched.wrap(new StubLm());
      const draw = prng(i + 1); // the stub devices' acceptance draws, seeded per device
      // Stagger the starts over one round so the devices do not move in lockstep.
      await sleep(draw() * (E.gamma * E.draftMs + E.rttMs));
      while (performance.now() < end) {
        if (o.mode === 'ar') {
          const t0 = performance.now();
          await lm.forward([1]); // edge-only: the edge decodes back to back, tokens stream down
          lat.push(performance.now() - t0);
          tokens++;
          continue;
        }
        await sleep(E.gamma * E.draftMs + E.rttMs / 2);
        const t0 = performance.now();
        await lm.forward(Array.from({ length: E.gamma + 1 }, () => 1));
        await sleep(E.rttMs / 2);
        lat.push(performance.now() - t0 + E.rttMs / 2);
        let acc = 0;
        while (acc < E.gamma && draw() < E.alpha) acc++;
        if (performance.now() > end) break;
        tokens += acc + 1;
        rounds++;
      }
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  const s = sched.stats;
  const total = tokens / o.seconds;
  const overrunShare = s.passes ? s.overruns / s.passes : 0;
  return {
    devices: o.devices,
    method: `${o.mode === 'ar' ? 'edge-only' : 'DSSD'}, ${o.batch ? 'batched' : 'unbatched'}`,
    target: `${o.target} (EMULATION)`,
    batch: o.batch,
    mode: o.mode,
    totalTokensPerSecond: total,
    perDeviceTokensPerSecond: total / o.devices,
    roundsPerSecond: (o.mode === 'ar' ? tokens : rounds) / o.seconds,
    p50Ms: quantile(lat, 0.5),
    p99Ms: quantile(lat, 0.99),
    passesPerToken: s.passes / Math.max(1, tokens),
    batchPerToken: s.items / Math.max(1, tokens),
    meanBatch: s.passes ? s.items / s.passes : 0,
    rssMb: process.memoryUsage().rss / 2 ** 20,
    cpu: (cpu.user + cpu.system) / 1e6 / o.seconds,
    overrunShare,
    tokensPerGpuSecond: tokens / (s.passMs / 1000),
    valid: overrunShare <= MAX_OVERRUN_SHARE,
    seconds: o.seconds,
  };
}

/** One real CPU point: a real edge process and real WebRTC devices (runLoad, steady state for `seconds`). */
export async function cpuPoint(o: {
  devices: number;
  mode: 'dssd' | 'ar';
  batch: boolean;
  seconds: number;
}): Promise<CapacityRow> {
  const r = await runLoad({ devices: o.devices, mode: o.mode, batch: o.batch, durationS: o.seconds });
  if (r.errors > 0 || r.crossTalk > 0) throw new Error(`load point failed: ${r.errorMessages.join('; ')}`);
  return {
    devices: o.devices,
    method: `${o.mode === 'ar' ? 'edge-only' : 'DSSD'}, ${o.batch ? 'batched' : 'unbatched'}`,
    target: 'CPU (real target)',
    batch: o.batch,
    mode: o.mode,
    totalTokensPerSecond: r.tokensPerSecond,
    perDeviceTokensPerSecond: r.tokensPerSecond / o.devices,
    roundsPerSecond: r.roundsPerSecond,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    passesPerToken: r.passesPerToken,
    batchPerToken: r.passesPerToken * r.meanBatch,
    meanBatch: r.meanBatch,
    rssMb: r.peakRssMb,
    cpu: r.edgeCpu,
    overrunShare: 0,
    tokensPerGpuSecond: NaN,
    valid: true,
    seconds: r.wallS,
  };
}

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

/** The section's Markdown: per target a table, devices served, the DSSD/edge-only ratio and its crossover. */
export function capacitySection(
  rows: CapacityRow[],
  plots: { file: string; title: string }[],
  cmd: string,
): string {
  const out: string[] = ['## Batched verification', ''];
  out.push(
    `Produced by \`${cmd}\`. Every figure is measured; rows whose target is marked EMULATION use a stub target ` +
      'whose batched pass costs T(B, tokens) interpolated from the H200 tables (`BATCH_COST_PRESETS` in ' +
      '`packages/protocol/src/settings.ts`, read from ../shared/reference/scale.md) and stub devices (no draft model: ' +
      `each round sleeps γ·${EMULATED_DEVICE.draftMs} ms of drafting and ${EMULATED_DEVICE.rttMs} ms RTT, γ = ` +
      `${EMULATED_DEVICE.gamma}, each draft accepted with probability ${EMULATED_DEVICE.alpha}). "overrun" is the ` +
      `share of passes whose real work took longer than the emulated time; above ${MAX_OVERRUN_SHARE * 100}% a point ` +
      "is INVALID. CPU rows: the real default target on this machine's CPU and real WebRTC devices drafting with the " +
      'real draft model (the devices share the machine with the edge).',
    '',
  );
  out.push(
    '**KV layout.** Measured while choosing it (32 sessions, histories 50–400, 5 new tokens each, default target, ' +
      'one ORT thread, on the shared 2-core machine): 32 separate passes 123 ms; one pass padded to the longest ' +
      'history with caches copied in and out 556 ms (0.22×); the same pass fed from caches already in place but ' +
      'still fetching the present caches 193 ms (0.64×); fetching only the logits 33 ms. onnxruntime-node copies ' +
      'every present cache into fresh JS memory, so that copy, not the compute, made batches slow. Chosen: one ' +
      "slab row per session that is never copied, the new positions' K/V exposed as extra graph outputs and " +
      'written into the row, per pass either the rows as they are or the used prefixes gathered (whichever is ' +
      'less to concatenate); `npm run bench:batch` re-measures it (2.0–2.25× cheaper per session-round here, ' +
      "1.6× while other jobs loaded the machine). The Qwen3 stand-in's export derives causality from " +
      'position_ids, so masked gaps break it: `createSlab` refuses it (BadLayout) and its edge serves unbatched.',
    '',
  );
  for (const target of [...new Set(rows.map((r) => r.target))]) {
    const rs = rows.filter((r) => r.target === target);
    out.push(`### ${target}`, '');
    out.push(
      '| devices | method | tokens/s total | tokens/s per device | tokens per target-second | rounds/s | p50 ms | p99 ms | passes per token | sessions per pass | batch rows per token | edge RSS MiB | edge CPU | overrun | valid |',
      '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const r of rs)
      out.push(
        `| ${r.devices} | ${r.method} | ${f(r.totalTokensPerSecond)} | ${f(r.perDeviceTokensPerSecond)} | ${f(r.tokensPerGpuSecond, 0)} | ` +
          `${f(r.roundsPerSecond)} | ${f(r.p50Ms)} | ${f(r.p99Ms)} | ${f(r.passesPerToken, 3)} | ${f(r.meanBatch)} | ` +
          `${f(r.batchPerToken, 2)} | ${f(r.rssMb, 0)} | ${f(r.cpu, 2)} | ${f(100 * r.overrunShare)}% | ${r.valid ? 'yes' : 'INVALID'} |`,
      );
    out.push('');
    const methods = [...new Set(rs.map((r) => r.method))];
    const served = methods.map((m) => {
      const ok = rs.filter(
        (r) => r.method === m && r.valid && r.perDeviceTokensPerSecond >= SERVED_TOKENS_PER_S,
      );
      return `${m}: ${ok.length ? Math.max(...ok.map((r) => r.devices)) : 0}`;
    });
    out.push(
      `Devices served at ≥ ${SERVED_TOKENS_PER_S} tokens/s each (largest measured count): ${served.join('; ')}.`,
      '',
    );
    for (const batch of [true, false]) {
      const ratios = [...new Set(rs.map((r) => r.devices))].flatMap((n) => {
        const d = rs.find((r) => r.devices === n && r.mode === 'dssd' && r.batch === batch);
        const a = rs.find((r) => r.devices === n && r.mode === 'ar' && r.batch === batch);
        return d && a && d.valid && a.valid
          ? [
              {
                n,
                x: d.totalTokensPerSecond / a.totalTokensPerSecond,
                g: d.tokensPerGpuSecond / a.tokensPerGpuSecond,
              },
            ]
          : [];
      });
      if (!ratios.length) continue;
      const cross = ratios.find((r, i) => i > 0 && ratios[i - 1].x >= 1 && r.x < 1);
      out.push(
        `DSSD / edge-only total tokens/s, ${batch ? 'batched' : 'unbatched'}: ` +
          ratios.map((r) => `${r.n} → ${r.x.toFixed(2)}×`).join(', ') +
          `. Crossover: ${
            cross
              ? `between ${ratios[ratios.indexOf(cross) - 1].n} and ${cross.n} devices`
              : ratios.every((r) => r.x >= 1)
                ? 'none in the measured range (DSSD ahead throughout)'
                : ratios.every((r) => r.x < 1)
                  ? 'none in the measured range (edge-only ahead throughout)'
                  : 'not monotone (see the table)'
          }.` +
          (ratios.some((r) => Number.isFinite(r.g))
            ? ` Per second of target busy time (the tables' measure): ${ratios.map((r) => `${r.n} → ${r.g.toFixed(2)}×`).join(', ')}.`
            : ''),
        '',
      );
    }
  }
  out.push(
    'For comparison, the H200 tables (scale.md) read directly: batched DSSD gives ≈ 2.5× (flash) / 1.9× (masked) the ' +
      'tokens per GPU-second of batched edge-only decoding at 16 sessions, ≈ 1.2× / 0.84× at 64, and < 1× from ≈ 128 ' +
      '(flash) / below 64 (masked).',
    '',
  );
  const E = EMULATED_DEVICE;
  const perRound = (1 - E.alpha ** (E.gamma + 1)) / (1 - E.alpha);
  for (const name of Object.keys(BATCH_COST_PRESETS)) {
    if (!rows.some((r) => r.target.startsWith(name + ' '))) continue;
    const t = BATCH_COST_PRESETS[name];
    const eq = [...new Set(rows.map((r) => r.devices))].map(
      (b) =>
        `${b} → ${((perRound * batchCostMs(t, b, b)) / batchCostMs(t, b, b * (E.gamma + 1))).toFixed(2)}×`,
    );
    out.push(
      `The ${name} table at EQUAL batch size (B DSSD sessions of γ + 1 = ${E.gamma + 1} tokens and ${perRound.toFixed(2)} ` +
        `tokens per round against B edge-only sessions of 1 token; a saturated target): ${eq.join(', ')}. The ` +
        'emulated runs above differ where DSSD passes are not full: stub devices spend γ·draft + RTT between ' +
        'rounds, so at a given device count a DSSD pass holds fewer sessions than an edge-only pass, and a small ' +
        'pass costs almost as much as a full one.',
      '',
    );
  }
  out.push(
    'Latency columns: DSSD rows time each round from uplink sent to verdict received; edge-only rows time each ' +
      'target step (EMULATION) or, on the CPU, a turn frame to its first token.',
    '',
  );
  for (const p of plots) out.push(`![${p.title}](${p.file})`, '');
  return out.join('\n');
}

/** Replaces (or appends) the "## Batched verification" section of a Markdown file, keeping every other section. */
export function withSection(doc: string | null, section: string): string {
  if (doc === null) return `# Edge capacity\n\n${section.trimEnd()}\n`;
  const start = doc.search(/^## Batched verification\s*$/m);
  if (start < 0) return `${doc.trimEnd()}\n\n${section.trimEnd()}\n`;
  const rest = doc.slice(start + 1);
  const next = rest.search(/^## /m);
  const end = next < 0 ? doc.length : start + 1 + next;
  return `${doc.slice(0, start)}${section.trimEnd()}\n${next < 0 ? '' : '\n' + doc.slice(end)}`;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      devices: { type: 'string', default: '1,4,16,32,64,128' },
      /** Device counts for the real CPU target only (default: --devices). */
      'cpu-devices': { type: 'string' },
      seconds: { type: 'string', default: '20' },
      targets: { type: 'string', default: 'cpu,h200-7b' },
      modes: { type: 'string', default: 'dssd,ar' },
      'no-write': { type: 'boolean' },
    },
  });
  const devices = v.devices.split(',').map(Number);
  const cpuDevices = v['cpu-devices'] ? v['cpu-devices'].split(',').map(Number) : devices;
  const seconds = Number(v.seconds);
  const targets = v.targets.split(',');
  const modes = v.modes.split(',') as ('dssd' | 'ar')[];
  for (const t of targets)
    if (t !== 'cpu' && !BATCH_COST_PRESETS[t])
      throw new Error(
        `--targets: ${t} is neither cpu nor one of ${Object.keys(BATCH_COST_PRESETS).join(', ')}`,
      );
  const rows: CapacityRow[] = [];
  for (const target of targets)
    for (const n of target === 'cpu' ? cpuDevices : devices)
      for (const mode of modes)
        for (const batch of [true, false]) {
          const r =
            target === 'cpu'
              ? await cpuPoint({ devices: n, mode, batch, seconds })
              : await emulatedPoint({ devices: n, mode, batch, target, seconds });
          rows.push(r);
          process.stdout.write(JSON.stringify(r) + '\n');
        }
  const cmd =
    `npm run capacity -- --devices ${v.devices}` +
    (v['cpu-devices'] ? ` --cpu-devices ${v['cpu-devices']}` : '') +
    ` --seconds ${v.seconds} --targets ${v.targets}`;
  if (v['no-write']) return;
  const docs = path.join(REPO_ROOT, 'docs');
  const plots: { file: string; title: string }[] = [];
  for (const t of [...new Set(rows.map((r) => r.target))]) {
    const p = capacityPlot(rows, t, 'DSSD and edge-only decoding, batched and unbatched; points measured');
    const file = `${p.name.toLowerCase().replace(/-+$/, '')}.svg`;
    fs.writeFileSync(path.join(docs, file), await renderSvg(p.spec));
    plots.push({ file, title: p.title });
  }
  const file = path.join(docs, 'capacity.md');
  const doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
  fs.writeFileSync(file, withSection(doc, capacitySection(rows, plots, cmd)));
  process.stderr.write(`wrote ${path.relative(REPO_ROOT, file)} and ${plots.length} plots\n`);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main();
