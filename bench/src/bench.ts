/**
 * `npm run bench [-- options]`: ar, dsd and dssd with the real default models through the real protocol over
 * shaped links. Writes bench/results/<date>[-quick].json (rows appended as they finish; a rerun resumes),
 * a Markdown report and SVG plots next to it, and prints a summary.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadNodeModel } from '@dssd/models/node';
import { DEFAULT_MODEL_DIRS } from '@dssd/models/node';
import { identityOf, parseTargetCost } from '@dssd/protocol';
import { REPO_ROOT } from './paths.js';
import { EMULATED_7B, GRIDS, KERNEL_CELLS, PROFILES, PROMPTS, type Grid, type GridCell } from './grid.js';
import { METHODS, SETTINGS, runSpec, type Models, type SettingName } from './run.js';
import { fillSpeedups, makeRow, rowKey, SHAPING_KERNEL, SHAPING_SIMULATED, type Row } from './rows.js';
import {
  DEVICE_PORTS,
  KernelNamespace,
  KernelRunner,
  KernelShapingError,
  BURST_BYTES,
  LO_MTU,
} from './kernel.js';
import { pooledAdaptiveReport, writeReport } from './report.js';

const HELP = `npm run bench -- [options]

  --quick               the quick grid (under 5 minutes on 2 cores)
  --adaptive            the adaptive-γ check: ar, the dssd-auto γ sweep and adaptive γ on rtt20-50M and
                        mobile-10/50, greedy / t1 / top-k 10, both target modes, 16 prompts × 128 tokens per
                        run (about 35 minutes)
  --target-ms A,B       emulated target cost: pad each target pass to A + B·tokens ms (default 25,0.5: a 7B
                        model on an edge GPU); labelled as emulation. The grid runs with the real CPU target and
                        with the emulation unless --target cpu|emulated picks one
  --target MODE         cpu, emulated or both (default both)
  --profiles LIST       only these link profiles (${Object.keys(PROFILES).join(', ')})
  --methods LIST        only these methods (${Object.keys(METHODS).join(', ')})
  --settings LIST       only these settings (greedy, t1, topk10)
  --tokens N            new tokens per prompt (grid default)
  --prompts N           prompts per run (grid default)
  --seed N              prompt i of every run samples with seed N + i (default 1000); another N is an
                        independent replicate of the same grid
  --out FILE            results JSON (default bench/results/<date>[-quick|-adaptive][-kernel].json); an
                        existing file resumes
  --fresh               ignore rows already in the results file
  --report-only         rebuild the report and plots from the results file without running
  --pool A.json,B.json  only the adaptive-γ comparison, pooled over results files of one grid run with
                        different --seed (written next to the first, as <A>-pooled.md)
  --docs                also write docs/benchmarks.md and its plots from this run
  --kernel              only the kernel-shaped subset (ar, dsd-f32, dssd-auto, dssd-candidates at γ 4 on
                        rtt20-10M and rtt20-50M, temperature 1) over real WebRTC with kernel rate shaping in a
                        private network namespace (needs root, ip and tc), plus the same cells simulated
  --no-kernel           skip the kernel-shaped rows of the default grid
`;

function list(v: string | undefined): string[] | undefined {
  return v
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
}

interface ResultsFile {
  meta: Record<string, unknown>;
  rows: Row[];
}

async function main(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      adaptive: { type: 'boolean' },
      'target-ms': { type: 'string' },
      target: { type: 'string' },
      profiles: { type: 'string' },
      methods: { type: 'string' },
      settings: { type: 'string' },
      tokens: { type: 'string' },
      prompts: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      fresh: { type: 'boolean' },
      'report-only': { type: 'boolean' },
      pool: { type: 'string' },
      docs: { type: 'boolean' },
      kernel: { type: 'boolean' },
      'no-kernel': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  if (v.pool) {
    const files = list(v.pool)!.map((p) => ({
      path: path.resolve(p),
      results: JSON.parse(fs.readFileSync(p, 'utf8')) as ResultsFile,
    }));
    if (files.length < 2) throw new Error('--pool takes two or more results files');
    const out = files[0].path.replace(/\.json$/, '-pooled.md');
    process.stdout.write(pooledAdaptiveReport(files, out) + `\n  → ${path.relative(process.cwd(), out)}\n`);
    return;
  }
  if (v.quick && v.adaptive) throw new Error('--quick and --adaptive pick different grids; give one');
  const grid: Grid = v.quick ? GRIDS.quick : v.adaptive ? GRIDS.adaptive : GRIDS.default;
  const emu = v['target-ms'] ? parseTargetCost(v['target-ms']) : EMULATED_7B;
  const targetMode = v.target ?? 'both';
  if (!['cpu', 'emulated', 'both'].includes(targetMode)) throw new Error('--target is cpu, emulated or both');
  const targets = grid.targets
    .map((t) => (t ? emu : null))
    .filter((t) => targetMode === 'both' || (targetMode === 'cpu') === (t === null));
  const maxNewTokens = v.tokens ? Number(v.tokens) : grid.maxNewTokens;
  const nPrompts = v.prompts ? Number(v.prompts) : grid.prompts;
  if (!(maxNewTokens >= 2) || !(nPrompts >= 1 && nPrompts <= PROMPTS.length)) {
    throw new Error(`--tokens must be >= 2 and --prompts in [1, ${PROMPTS.length}]`);
  }
  const seedBase = v.seed ? Number(v.seed) : 1000;
  if (!Number.isSafeInteger(seedBase) || seedBase < 0)
    throw new Error('--seed must be a non-negative integer');
  const only = { profiles: list(v.profiles), methods: list(v.methods), settings: list(v.settings) };
  for (const p of only.profiles ?? []) if (!PROFILES[p]) throw new Error(`unknown profile ${p}`);
  for (const m of only.methods ?? []) if (!METHODS[m]) throw new Error(`unknown method ${m}`);
  for (const s of only.settings ?? []) if (!(s in SETTINGS)) throw new Error(`unknown setting ${s}`);
  const keep = (c: { method: string; profile: string; setting: string }) =>
    (!only.profiles || only.profiles.includes(c.profile)) &&
    (!only.methods || only.methods.includes(c.method) || c.method === 'ar') &&
    (!only.settings || only.settings.includes(c.setting));
  const cells = v.kernel ? KERNEL_CELLS.map((c) => ({ ...c, part: 'methods' as const })) : grid.cells;
  const kernelCells = v['no-kernel'] ? [] : (v.kernel ? KERNEL_CELLS : grid.kernelCells).filter(keep);
  const simCells = cells.filter(keep);

  const date = new Date().toISOString().slice(0, 10);
  const out = path.resolve(
    v.out ??
      path.join(
        REPO_ROOT,
        'bench/results',
        `${date}${v.quick ? '-quick' : ''}${v.adaptive ? '-adaptive' : ''}${v.kernel ? '-kernel' : ''}.json`,
      ),
  );
  fs.mkdirSync(path.dirname(out), { recursive: true });
  let results: ResultsFile = { meta: {}, rows: [] };
  if (fs.existsSync(out) && !v.fresh) {
    results = JSON.parse(fs.readFileSync(out, 'utf8')) as ResultsFile;
  }
  const command = `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`;
  const subset = v.kernel
    ? `the kernel-shaped subset and the same cells simulated (${command})`
    : only.profiles ||
        only.methods ||
        only.settings ||
        v.tokens ||
        v.prompts ||
        v.seed ||
        targetMode !== 'both' ||
        v['no-kernel']
      ? `a subset of the ${grid.name} grid (${command})`
      : `the ${grid.name} grid`;
  if (v['report-only']) {
    fillSpeedups(results.rows);
    fs.writeFileSync(out, JSON.stringify(results, null, 1) + '\n');
    finish(results, out, !!v.docs);
    return;
  }
  results.meta = {
    ...results.meta,
    command,
    grid: grid.name,
    gridDescription: grid.description,
    subset,
    maxNewTokens,
    prompts: PROMPTS.slice(0, nPrompts),
    seed: seedBase,
    targets: targets.map((t) => (t ? { emulated: true, ...t } : { emulated: false })),
    node: process.version,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    started: (results.meta.started as string | undefined) ?? new Date().toISOString(),
  };
  const save = () => {
    fillSpeedups(results.rows);
    fs.writeFileSync(out, JSON.stringify(results, null, 1) + '\n');
  };
  process.stdout.write(`dssd bench: ${subset}\n  results → ${path.relative(process.cwd(), out)}\n`);
  process.stdout.write(
    `  shaping: ${SHAPING_SIMULATED}${kernelCells.length ? `; ${kernelCells.length * targets.length} runs: ${SHAPING_KERNEL}` : ''}` +
      `${targets.some((t) => t) ? `; target cost emulation ${emu.a} ms + ${emu.b} ms/token` : ''}\n`,
  );
  const t0 = Date.now();
  const models: Models = {
    target: await loadNodeModel(DEFAULT_MODEL_DIRS.target),
    draft: await loadNodeModel(DEFAULT_MODEL_DIRS.draft),
  };
  const V = models.target.config.vocabSize;
  const prompts = PROMPTS.slice(0, nPrompts).map((p) => models.target.tokenizer.encode(p));
  results.meta.models = { target: identityOf(models.target), draft: identityOf(models.draft) };
  // Warm up ONNX sessions and JIT so the first measured run is not penalised.
  await runSpec(models, {
    method: METHODS['dssd-auto'],
    gamma: 4,
    profile: PROFILES['rtt0-100M'],
    setting: 't1',
    targetMs: null,
    prompts: [prompts[0]],
    maxNewTokens: 24,
    seed: 1,
  });
  await runSpec(models, {
    method: METHODS.ar,
    gamma: 0,
    profile: PROFILES['rtt0-100M'],
    setting: 't1',
    targetMs: null,
    prompts: [prompts[0]],
    maxNewTokens: 16,
    seed: 1,
  });

  const done = new Set(results.rows.map((r) => r.key));
  type Job = { cell: GridCell; targetMs: { a: number; b: number } | null; shaping: string };
  const jobs: Job[] = [];
  for (const targetMs of targets)
    for (const cell of simCells) jobs.push({ cell, targetMs, shaping: SHAPING_SIMULATED });
  // Kernel rows last, grouped by target mode (the edge process restarts when it changes).
  for (const targetMs of targets)
    for (const cell of kernelCells) jobs.push({ cell, targetMs, shaping: SHAPING_KERNEL });
  const kernelSetup =
    `real WebRTC between two processes (EdgeNode.start and the Node device, onnxruntime-node) on 127.0.0.1 ` +
    `inside a network namespace this run creates; lo (MTU ${LO_MTU}) shaped by htb, one class per direction ` +
    `told apart by the device's pinned ICE ports ${DEVICE_PORTS.min}–${DEVICE_PORTS.max} (tbf, one shared ` +
    `bucket, if htb fails), ${BURST_BYTES}-byte buckets; no netem on this kernel, so RTT/2 per direction is ` +
    `added by the transport shaper on the device's data channel`;
  const todo = jobs.filter(
    (j) => !done.has(rowKey(j.cell, j.targetMs ? 'emulated' : 'cpu', j.shaping, maxNewTokens)),
  );
  process.stdout.write(
    `  ${jobs.length} runs in the grid, ${jobs.length - todo.length} already in the results file\n`,
  );
  let kernel: { ns: KernelNamespace; runner: KernelRunner; warmed: Set<string> } | null = null;
  let kernelSkip: string | null = null;
  let kernelRows = 0;
  const kernelErrors: string[] = [];
  try {
    for (let i = 0; i < todo.length; i++) {
      const j = todo[i];
      const method = METHODS[j.cell.method];
      const profile = PROFILES[j.cell.profile];
      const spec = {
        method,
        gamma: j.cell.gamma,
        profile,
        setting: j.cell.setting as SettingName,
        targetMs: j.targetMs,
        prompts,
        maxNewTokens,
        seed: seedBase,
      };
      let m;
      let counters;
      if (j.shaping === SHAPING_KERNEL) {
        if (kernelSkip) continue;
        try {
          if (!kernel) {
            const ns = KernelNamespace.create();
            kernel = { ns, runner: new KernelRunner(ns), warmed: new Set() };
            process.stdout.write(`  kernel shaping: namespace ${ns.name}; ${kernelSetup}\n`);
          }
          const wk = j.targetMs ? 'emulated' : 'cpu';
          if (!kernel.warmed.has(wk)) {
            // New edge process: warm its ONNX session and both processes' JIT, as for the simulated runs.
            const warm = { ...spec, prompts: [prompts[0]], seed: 1 };
            await kernel.runner.runSpec({
              ...warm,
              method: METHODS['dssd-auto'],
              gamma: 4,
              maxNewTokens: 24,
            });
            await kernel.runner.runSpec({ ...warm, method: METHODS.ar, gamma: 0, maxNewTokens: 16 });
            kernel.warmed.add(wk);
          }
          ({ m, kernel: counters } = await kernel.runner.runSpec(spec));
          if (counters.qdisc === 'tbf')
            process.stdout.write(`  htb failed, tbf used: ${kernel.ns.htbError}\n`);
        } catch (e) {
          if (!(e instanceof KernelShapingError)) throw e;
          const msg = `${e.code}: ${e.message}`;
          if (!kernel || ['not-root', 'no-tools', 'setup-failed'].includes(e.code)) {
            kernelSkip = msg;
            process.stdout.write(`  kernel-shaped rows skipped: ${msg}\n`);
          } else {
            kernelErrors.push(`${j.cell.method} ${j.cell.profile}: ${msg}`);
            process.stdout.write(`  kernel-shaped run failed (${kernelErrors.length}): ${msg}\n`);
            kernel.runner.close();
            kernel.runner = new KernelRunner(kernel.ns);
            kernel.warmed.clear();
            if (kernelErrors.length >= 3) kernelSkip = `${kernelErrors.length} runs failed; the rest skipped`;
          }
          continue;
        }
        kernelRows++;
      } else {
        m = await runSpec(models, spec);
      }
      const row = makeRow(j.cell, method, profile, j.targetMs, j.shaping, m, V, maxNewTokens, prompts.length);
      if (counters) row.kernel = counters;
      results.rows.push(row);
      save();
      const sp = results.rows.find((r) => r.key === row.key)!.speedupVsAr;
      process.stdout.write(
        `[${i + 1}/${todo.length}] ${row.method.padEnd(15)} γ${String(row.gamma).padEnd(2)} ${row.profile.padEnd(14)} ` +
          `${row.setting.padEnd(6)} ${row.target === 'cpu' ? 'cpu-target' : 'emulated  '} ` +
          `${row.shaping === SHAPING_KERNEL ? 'KERNEL ' : ''}` +
          `${row.tokensPerSecond.toFixed(1).padStart(7)} tok/s ` +
          `(model ${row.predictedTokensPerSecond.toFixed(1)})` +
          `${sp !== null ? ` ×${sp.toFixed(2)} vs ar` : ''}  α ${row.alpha.toFixed(2)}  ` +
          `${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
      );
    }
  } finally {
    kernel?.runner.close();
    kernel?.ns.destroy();
  }
  const kernelTotal = jobs.filter((j) => j.shaping === SHAPING_KERNEL).length;
  const kernelHave = results.rows.filter((r) => r.shaping === SHAPING_KERNEL).length;
  if (kernelTotal) {
    results.meta.kernelShaping =
      `${kernelHave} of ${kernelTotal} kernel-shaped runs in the results (${kernelRows} this time): ${kernelSetup}` +
      `${kernelSkip ? `. Skipped: ${kernelSkip}` : ''}` +
      `${kernelErrors.length ? `. Failures: ${kernelErrors.join('; ')}` : ''}`;
  } else {
    results.meta.kernelShaping = 'not run (--no-kernel or a grid without the kernel-shaped subset)';
  }
  results.meta.finished = new Date().toISOString();
  results.meta.elapsedS = Math.round((Date.now() - t0) / 1000);
  save();
  finish(results, out, !!v.docs);
}

function finish(results: ResultsFile, out: string, docs: boolean): void {
  const summary = writeReport(results, out, docs);
  process.stdout.write('\n' + summary + '\n');
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
