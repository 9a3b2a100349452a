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
import { DEFAULT_MODEL_DIRS, QWEN_STANDIN_DIRS, qwenStandinMissing } from '@dssd/models/node';
import { identityOf, parseTargetCost, type TargetCost } from '@dssd/protocol';
import { REPO_ROOT } from './paths.js';
import { EMULATED_7B, GRIDS, KERNEL_CELLS, PROFILES, PROMPTS, type Grid, type GridCell } from './grid.js';
import {
  METHODS,
  SETTINGS,
  runSpec,
  type Measurement,
  type Models,
  type RunSpec,
  type SettingName,
} from './run.js';
import { fillSpeedups, makeRow, rowKey, SHAPING_KERNEL, SHAPING_SIMULATED, type Row } from './rows.js';
import {
  DEVICE_PORTS,
  ShapedNamespace,
  NetnsRunner,
  NetnsShapingError,
  BURST_BYTES,
  LO_MTU,
} from './netns.js';
import { pooledAdaptiveReport, writeReport } from './report.js';
import { writeStandinDocs } from './standin-docs.js';

/** The model pairs a run can use: the embedded default pair, or the generated Qwen3-vocabulary stand-in. */
const PAIRS = {
  default: { target: DEFAULT_MODEL_DIRS.target, draft: DEFAULT_MODEL_DIRS.draft },
  // The browser's draft: 4-bit (MatMulNBits), fp16 KV cache; onnxruntime-node runs it on the CPU.
  'qwen3-standin': { target: QWEN_STANDIN_DIRS.target, draft: QWEN_STANDIN_DIRS.draftQ4 },
} as const;
type PairName = keyof typeof PAIRS;

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
  --pair NAME           the model pair: default, or qwen3-standin (|V| = 151,936, its 4-bit draft; generate it
                        with \`npm run models:standin\`): runs the standin grid (DSD f32/f16 against DSSD
                        candidates/auto/f16 on the 10 Mbps-uplink profiles, chat prompts); --docs then writes
                        its own section of docs/benchmarks.md
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

type Options = ReturnType<typeof parseOptions>;

function parseOptions(argv: string[]) {
  return parseArgs({
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
      pair: { type: 'string' },
      'no-kernel': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
}

/** --pool: the adaptive comparison over replicate results files, nothing run. */
function poolReplicates(pool: string): void {
  const files = list(pool)!.map((p) => ({
    path: path.resolve(p),
    results: JSON.parse(fs.readFileSync(p, 'utf8')) as ResultsFile,
  }));
  if (files.length < 2) throw new Error('--pool takes two or more results files');
  const out = files[0].path.replace(/\.json$/, '-pooled.md');
  process.stdout.write(pooledAdaptiveReport(files, out) + `\n  → ${path.relative(process.cwd(), out)}\n`);
}

type TargetMs = { a: number; b: number } | null;

/** What to run: the grid, its target modes and cells after the filters, and the per-run sizes. */
interface Plan {
  grid: Grid;
  emu: { a: number; b: number };
  targetMode: string;
  targets: TargetMs[];
  maxNewTokens: number;
  nPrompts: number;
  seedBase: number;
  filtered: boolean;
  simCells: GridCell[];
  kernelCells: GridCell[];
}

function pairOf(v: Options): PairName {
  const p = v.pair ?? 'default';
  if (!(p in PAIRS)) throw new Error(`--pair must be one of ${Object.keys(PAIRS).join(', ')}, got ${p}`);
  return p as PairName;
}

function makePlan(v: Options): Plan {
  if (v.quick && v.adaptive) throw new Error('--quick and --adaptive pick different grids; give one');
  const standin = pairOf(v) === 'qwen3-standin';
  // The stand-in has its own grid; the kernel-shaped runs' processes load the default pair only.
  if (standin && (v.quick || v.adaptive || v.kernel))
    throw new Error('--pair qwen3-standin runs its own grid: drop --quick, --adaptive and --kernel');
  const grid: Grid = standin
    ? GRIDS.standin
    : v.quick
      ? GRIDS.quick
      : v.adaptive
        ? GRIDS.adaptive
        : GRIDS.default;
  const emu: TargetCost = v['target-ms'] ? parseTargetCost(v['target-ms']) : EMULATED_7B;
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
  const filtered = !!(
    only.profiles ||
    only.methods ||
    only.settings ||
    v.tokens ||
    v.prompts ||
    v.seed ||
    targetMode !== 'both' ||
    v['no-kernel']
  );
  return {
    grid,
    emu,
    targetMode,
    targets,
    maxNewTokens,
    nPrompts,
    seedBase,
    filtered,
    simCells: cells.filter(keep),
    kernelCells: v['no-kernel'] ? [] : (v.kernel ? KERNEL_CELLS : grid.kernelCells).filter(keep),
  };
}

function resultsPath(v: Options): string {
  const date = new Date().toISOString().slice(0, 10);
  const pair = pairOf(v) === 'default' ? '' : `-${pairOf(v)}`;
  const name = `${date}${pair}${v.quick ? '-quick' : ''}${v.adaptive ? '-adaptive' : ''}${v.kernel ? '-kernel' : ''}.json`;
  return path.resolve(v.out ?? path.join(REPO_ROOT, 'bench/results', name));
}

function loadResults(out: string, fresh: boolean): ResultsFile {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  if (fs.existsSync(out) && !fresh) return JSON.parse(fs.readFileSync(out, 'utf8')) as ResultsFile;
  return { meta: {}, rows: [] };
}

function saveResults(results: ResultsFile, out: string): void {
  fillSpeedups(results.rows);
  fs.writeFileSync(out, JSON.stringify(results, null, 1) + '\n');
}

function describeSubset(v: Options, plan: Plan, command: string): string {
  if (v.kernel) return `the kernel-shaped subset and the same cells simulated (${command})`;
  return plan.filtered ? `a subset of the ${plan.grid.name} grid (${command})` : `the ${plan.grid.name} grid`;
}

function runMeta(results: ResultsFile, plan: Plan, command: string, subset: string): Record<string, unknown> {
  return {
    ...results.meta,
    command,
    grid: plan.grid.name,
    gridDescription: plan.grid.description,
    subset,
    maxNewTokens: plan.maxNewTokens,
    prompts: PROMPTS.slice(0, plan.nPrompts),
    seed: plan.seedBase,
    targets: plan.targets.map((t) => (t ? { emulated: true, ...t } : { emulated: false })),
    node: process.version,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    started: (results.meta.started as string | undefined) ?? new Date().toISOString(),
  };
}

/** One dssd-auto and one ar run on the first prompt, so the first measured run pays no ONNX or JIT warm-up. */
async function warmUp(run: (spec: RunSpec) => Promise<unknown>, base: RunSpec): Promise<void> {
  const warm = { ...base, prompts: [base.prompts[0]], seed: 1 };
  await run({ ...warm, method: METHODS['dssd-auto'], gamma: 4, maxNewTokens: 24 });
  await run({ ...warm, method: METHODS.ar, gamma: 0, maxNewTokens: 16 });
}

interface Job {
  cell: GridCell;
  targetMs: TargetMs;
  shaping: string;
}

/** Simulated jobs first; kernel-shaped ones last, grouped by target mode (the edge process restarts when it changes). */
function planJobs(plan: Plan): Job[] {
  const jobs: Job[] = [];
  for (const targetMs of plan.targets)
    for (const cell of plan.simCells) jobs.push({ cell, targetMs, shaping: SHAPING_SIMULATED });
  for (const targetMs of plan.targets)
    for (const cell of plan.kernelCells) jobs.push({ cell, targetMs, shaping: SHAPING_KERNEL });
  return jobs;
}

const KERNEL_SETUP =
  `real WebRTC between two processes (EdgeNode.start and the Node device, onnxruntime-node) on 127.0.0.1 ` +
  `inside a network namespace this run creates; lo (MTU ${LO_MTU}) shaped by htb, one class per direction ` +
  `told apart by the device's pinned ICE ports ${DEVICE_PORTS.min}–${DEVICE_PORTS.max} (tbf, one shared ` +
  `bucket, if htb fails), ${BURST_BYTES}-byte buckets; no netem on this kernel, so RTT/2 per direction is ` +
  `added by the transport shaper on the device's data channel`;

/**
 * The kernel-shaped (netns + tc) runs: the namespace and its two processes, created on first use; a machine that
 * cannot shape skips the rest, and three failed runs end them.
 */
class NetnsJobs {
  private state: { ns: ShapedNamespace; runner: NetnsRunner; warmed: Set<string> } | null = null;
  skip: string | null = null;
  rows = 0;
  readonly errors: string[] = [];

  /** The measurement and tc counters, or null when the run was skipped or failed (reason printed). */
  async run(job: Job, spec: RunSpec): Promise<Awaited<ReturnType<NetnsRunner['runSpec']>> | null> {
    if (this.skip) return null;
    try {
      const k = this.open();
      const mode = job.targetMs ? 'emulated' : 'cpu';
      if (!k.warmed.has(mode)) {
        // New edge process: warm its ONNX session and both processes' JIT, as for the simulated runs.
        await warmUp((s) => k.runner.runSpec(s), spec);
        k.warmed.add(mode);
      }
      const r = await k.runner.runSpec(spec);
      if (r.kernel.qdisc === 'tbf') process.stdout.write(`  htb failed, tbf used: ${k.ns.htbError}\n`);
      this.rows++;
      return r;
    } catch (e) {
      if (!(e instanceof NetnsShapingError)) throw e;
      this.failed(job, e);
      return null;
    }
  }

  private open() {
    if (!this.state) {
      const ns = ShapedNamespace.create();
      this.state = { ns, runner: new NetnsRunner(ns), warmed: new Set() };
      process.stdout.write(`  kernel shaping: namespace ${ns.name}; ${KERNEL_SETUP}\n`);
    }
    return this.state;
  }

  private failed(job: Job, e: NetnsShapingError): void {
    const msg = `${e.code}: ${e.message}`;
    if (!this.state || ['not-root', 'no-tools', 'setup-failed'].includes(e.code)) {
      this.skip = msg;
      process.stdout.write(`  kernel-shaped rows skipped: ${msg}\n`);
      return;
    }
    this.errors.push(`${job.cell.method} ${job.cell.profile}: ${msg}`);
    process.stdout.write(`  kernel-shaped run failed (${this.errors.length}): ${msg}\n`);
    this.state.runner.close();
    this.state.runner = new NetnsRunner(this.state.ns);
    this.state.warmed.clear();
    if (this.errors.length >= 3) this.skip = `${this.errors.length} runs failed; the rest skipped`;
  }

  close(): void {
    this.state?.runner.close();
    this.state?.ns.destroy();
  }

  /** The results' meta line on kernel shaping. */
  summary(jobs: Job[], rows: Row[]): string {
    const total = jobs.filter((j) => j.shaping === SHAPING_KERNEL).length;
    if (!total) return 'not run (--no-kernel or a grid without the kernel-shaped subset)';
    const have = rows.filter((r) => r.shaping === SHAPING_KERNEL).length;
    return (
      `${have} of ${total} kernel-shaped runs in the results (${this.rows} this time): ${KERNEL_SETUP}` +
      `${this.skip ? `. Skipped: ${this.skip}` : ''}` +
      `${this.errors.length ? `. Failures: ${this.errors.join('; ')}` : ''}`
    );
  }
}

function progressLine(row: Row, speedup: number | null, i: number, n: number, t0: number): string {
  return (
    `[${i + 1}/${n}] ${row.method.padEnd(15)} γ${String(row.gamma).padEnd(2)} ${row.profile.padEnd(14)} ` +
    `${row.setting.padEnd(6)} ${row.target === 'cpu' ? 'cpu-target' : 'emulated  '} ` +
    `${row.shaping === SHAPING_KERNEL ? 'KERNEL ' : ''}` +
    `${row.tokensPerSecond.toFixed(1).padStart(7)} tok/s ` +
    `(model ${row.predictedTokensPerSecond.toFixed(1)})` +
    `${speedup !== null ? ` ×${speedup.toFixed(2)} vs ar` : ''}  α ${row.alpha.toFixed(2)}  ` +
    `${((Date.now() - t0) / 1000).toFixed(0)} s\n`
  );
}

/** Runs the jobs not yet in the results, saving after each row. */
async function runJobs(
  jobs: Job[],
  results: ResultsFile,
  out: string,
  plan: Plan,
  models: Models,
  prompts: number[][],
  netns: NetnsJobs,
  t0: number,
): Promise<void> {
  const done = new Set(results.rows.map((r) => r.key));
  const todo = jobs.filter(
    (j) => !done.has(rowKey(j.cell, j.targetMs ? 'emulated' : 'cpu', j.shaping, plan.maxNewTokens)),
  );
  process.stdout.write(
    `  ${jobs.length} runs in the grid, ${jobs.length - todo.length} already in the results file\n`,
  );
  const V = models.target.config.vocabSize;
  for (let i = 0; i < todo.length; i++) {
    const j = todo[i];
    const method = METHODS[j.cell.method];
    const profile = PROFILES[j.cell.profile];
    const spec: RunSpec = {
      method,
      gamma: j.cell.gamma,
      profile,
      setting: j.cell.setting as SettingName,
      targetMs: j.targetMs,
      prompts,
      maxNewTokens: plan.maxNewTokens,
      seed: plan.seedBase,
    };
    let m: Measurement;
    let counters;
    if (j.shaping === SHAPING_KERNEL) {
      const r = await netns.run(j, spec);
      if (!r) continue;
      ({ m, kernel: counters } = r);
    } else {
      m = await runSpec(models, spec);
    }
    const row = makeRow(
      j.cell,
      method,
      profile,
      j.targetMs,
      j.shaping,
      m,
      V,
      plan.maxNewTokens,
      prompts.length,
    );
    if (counters) row.kernel = counters;
    results.rows.push(row);
    saveResults(results, out);
    const sp = results.rows.find((r) => r.key === row.key)!.speedupVsAr;
    process.stdout.write(progressLine(row, sp, i, todo.length, t0));
  }
}

async function main(argv: string[]): Promise<void> {
  const v = parseOptions(argv);
  if (v.help) return void process.stdout.write(HELP);
  if (v.pool) return poolReplicates(v.pool);
  const plan = makePlan(v);
  const out = resultsPath(v);
  const results = loadResults(out, !!v.fresh);
  if (v['report-only']) {
    saveResults(results, out);
    return finish(results, out, !!v.docs, pairOf(v));
  }
  const command = `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`;
  const subset = describeSubset(v, plan, command);
  results.meta = runMeta(results, plan, command, subset);
  process.stdout.write(`dssd bench: ${subset}\n  results → ${path.relative(process.cwd(), out)}\n`);
  process.stdout.write(
    `  shaping: ${SHAPING_SIMULATED}${plan.kernelCells.length ? `; ${plan.kernelCells.length * plan.targets.length} runs: ${SHAPING_KERNEL}` : ''}` +
      `${plan.targets.some((t) => t) ? `; target cost emulation ${plan.emu.a} ms + ${plan.emu.b} ms/token` : ''}\n`,
  );
  const t0 = Date.now();
  const pair = pairOf(v);
  if (pair === 'qwen3-standin') {
    const missing = qwenStandinMissing();
    if (missing) throw new Error(missing);
  }
  const models: Models = {
    target: await loadNodeModel(PAIRS[pair].target),
    draft: await loadNodeModel(PAIRS[pair].draft),
  };
  // A chat model answers user turns: each prompt becomes one, rendered with the model's template.
  const chat = models.target.chatTemplate;
  const prompts = PROMPTS.slice(0, plan.nPrompts).map((p) =>
    models.target.tokenizer.encode(chat ? chat.render([{ role: 'user', content: p }]) : p),
  );
  results.meta.pair = pair;
  results.meta.models = { target: identityOf(models.target), draft: identityOf(models.draft) };
  const warmSpec: RunSpec = {
    method: METHODS.ar,
    gamma: 0,
    profile: PROFILES['rtt0-100M'],
    setting: 't1',
    targetMs: null,
    prompts,
    maxNewTokens: 16,
    seed: 1,
  };
  await warmUp((s) => runSpec(models, s), warmSpec);

  const jobs = planJobs(plan);
  const netns = new NetnsJobs();
  try {
    await runJobs(jobs, results, out, plan, models, prompts, netns, t0);
  } finally {
    netns.close();
  }
  results.meta.kernelShaping = netns.summary(jobs, results.rows);
  results.meta.finished = new Date().toISOString();
  results.meta.elapsedS = Math.round((Date.now() - t0) / 1000);
  saveResults(results, out);
  await finish(results, out, !!v.docs, pair);
}

async function finish(results: ResultsFile, out: string, docs: boolean, pair: PairName): Promise<void> {
  // The stand-in's rows get their own section of docs/benchmarks.md; the generated part stays the default pair's.
  const summary = await writeReport(results, out, docs && pair === 'default');
  process.stdout.write('\n' + summary + '\n');
  if (docs && pair === 'qwen3-standin')
    process.stdout.write(`  docs: ${writeStandinDocs(results.rows, results.meta, out)}\n`);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
