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
import { DEFAULT_DRAFT_DIR, DEFAULT_TARGET_DIR, REPO_ROOT } from '@dssd/edge-node';
import { EMULATED_7B, GRIDS, PROFILES, PROMPTS, type Grid, type GridCell } from './grid.js';
import { METHODS, SETTINGS, runSpec, identityOf, type Models, type SettingName } from './run.js';
import { fillSpeedups, makeRow, rowKey, SHAPING_SIMULATED, type Row } from './rows.js';
import { writeReport } from './report.js';

const HELP = `npm run bench -- [options]

  --quick               the quick grid (under 5 minutes on 2 cores)
  --target-ms A,B       emulated target cost: pad each target pass to A + B·tokens ms (default 25,0.5: a 7B
                        model on an edge GPU); labelled as emulation. The grid runs with the real CPU target and
                        with the emulation unless --target cpu|emulated picks one
  --target MODE         cpu, emulated or both (default both)
  --profiles LIST       only these link profiles (${Object.keys(PROFILES).join(', ')})
  --methods LIST        only these methods (${Object.keys(METHODS).join(', ')})
  --settings LIST       only these settings (greedy, t1, topk10)
  --tokens N            new tokens per prompt (grid default)
  --prompts N           prompts per run (grid default)
  --out FILE            results JSON (default bench/results/<date>[-quick].json); an existing file resumes
  --fresh               ignore rows already in the results file
  --report-only         rebuild the report and plots from the results file without running
  --docs                also write docs/benchmarks.md and its plots from this run
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
      'target-ms': { type: 'string' },
      target: { type: 'string' },
      profiles: { type: 'string' },
      methods: { type: 'string' },
      settings: { type: 'string' },
      tokens: { type: 'string' },
      prompts: { type: 'string' },
      out: { type: 'string' },
      fresh: { type: 'boolean' },
      'report-only': { type: 'boolean' },
      docs: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const grid: Grid = v.quick ? GRIDS.quick : GRIDS.default;
  let emu = EMULATED_7B;
  if (v['target-ms']) {
    const [a, b] = v['target-ms'].split(',').map(Number);
    if (!Number.isFinite(a) || a < 0 || !Number.isFinite(b ?? 0) || (b ?? 0) < 0) {
      throw new Error('--target-ms takes A,B: milliseconds per pass and per scored token');
    }
    emu = { a, b: b ?? 0 };
  }
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
  const only = { profiles: list(v.profiles), methods: list(v.methods), settings: list(v.settings) };
  for (const p of only.profiles ?? []) if (!PROFILES[p]) throw new Error(`unknown profile ${p}`);
  for (const m of only.methods ?? []) if (!METHODS[m]) throw new Error(`unknown method ${m}`);
  for (const s of only.settings ?? []) if (!(s in SETTINGS)) throw new Error(`unknown setting ${s}`);
  const keep = (c: { method: string; profile: string; setting: string }) =>
    (!only.profiles || only.profiles.includes(c.profile)) &&
    (!only.methods || only.methods.includes(c.method) || c.method === 'ar') &&
    (!only.settings || only.settings.includes(c.setting));
  const cells = grid.cells.filter(keep);

  const date = new Date().toISOString().slice(0, 10);
  const out = path.resolve(
    v.out ?? path.join(REPO_ROOT, 'bench/results', `${date}${v.quick ? '-quick' : ''}.json`),
  );
  fs.mkdirSync(path.dirname(out), { recursive: true });
  let results: ResultsFile = { meta: {}, rows: [] };
  if (fs.existsSync(out) && !v.fresh) {
    results = JSON.parse(fs.readFileSync(out, 'utf8')) as ResultsFile;
  }
  const command = `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`;
  const subset =
    only.profiles || only.methods || only.settings || v.tokens || v.prompts || targetMode !== 'both'
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
    `  shaping: ${SHAPING_SIMULATED}${targets.some((t) => t) ? `; target cost emulation ${emu.a} ms + ${emu.b} ms/token` : ''}\n`,
  );
  const t0 = Date.now();
  const models: Models = {
    target: await loadNodeModel(DEFAULT_TARGET_DIR),
    draft: await loadNodeModel(DEFAULT_DRAFT_DIR),
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
    for (const cell of cells) jobs.push({ cell, targetMs, shaping: SHAPING_SIMULATED });

  // Only the transport shaper runs here: a real-WebRTC subset over kernel rate shaping (netns + veth + tbf) is
  // not implemented yet, so every row says which shaping it used.
  results.meta.kernelShaping = 'not run (the real-WebRTC kernel-shaped subset is not implemented yet)';
  const todo = jobs.filter(
    (j) => !done.has(rowKey(j.cell, j.targetMs ? 'emulated' : 'cpu', j.shaping, maxNewTokens)),
  );
  process.stdout.write(
    `  ${jobs.length} runs in the grid, ${jobs.length - todo.length} already in the results file\n`,
  );
  {
    for (let i = 0; i < todo.length; i++) {
      const j = todo[i];
      const method = METHODS[j.cell.method];
      const profile = PROFILES[j.cell.profile];
      const m = await runSpec(models, {
        method,
        gamma: j.cell.gamma,
        profile,
        setting: j.cell.setting as SettingName,
        targetMs: j.targetMs,
        prompts,
        maxNewTokens,
        seed: 1000,
      });
      const row = makeRow(j.cell, method, profile, j.targetMs, j.shaping, m, V, maxNewTokens, prompts.length);
      results.rows.push(row);
      save();
      const sp = results.rows.find((r) => r.key === row.key)!.speedupVsAr;
      process.stdout.write(
        `[${i + 1}/${todo.length}] ${row.method.padEnd(15)} γ${String(row.gamma).padEnd(2)} ${row.profile.padEnd(14)} ` +
          `${row.setting.padEnd(6)} ${row.target === 'cpu' ? 'cpu-target' : 'emulated  '} ` +
          `${row.tokensPerSecond.toFixed(1).padStart(7)} tok/s ` +
          `(model ${row.predictedTokensPerSecond.toFixed(1)})` +
          `${sp !== null ? ` ×${sp.toFixed(2)} vs ar` : ''}  α ${row.alpha.toFixed(2)}  ` +
          `${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
      );
    }
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
