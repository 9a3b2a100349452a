/**
 * `npm run bench:pipeline`: pipelined DSSD, serial DSSD and edge-only decoding side by side, in one run, with
 * EMULATED draft and target costs (each drafted token padded to --draft-ms, each target pass to a preset from the
 * settings home) over simulated links with the paper's RTTs, temperature 1 and top-k 10. Every row also reports
 * draft tokens wasted and edge passes per generated token. The latency model predicts the pipelined (and serial)
 * throughput from α and the costs measured in the serial run, never from the pipelined run itself.
 *
 * Output: bench/results/<date>-pipelined.{json,md}, its plots, and the pipelined section of docs/benchmarks.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pipelinedTokensPerSecond, serialTokensPerSecond } from '@dssd/kernel';
import { DEFAULT_MODEL_DIRS, loadNodeModel } from '@dssd/models/node';
import { PIPELINE, TARGET_COST_PRESETS, type TargetCost } from '@dssd/protocol';
import { PROFILES, PROMPTS } from './grid.js';
import { REPO_ROOT } from './paths.js';
import { pipelinedPlot, type PipelinePoint } from './plots.js';
import { renderSvg } from './render.js';
import { METHODS, SETTINGS, runSpec, type Measurement, type Models, type SettingName } from './run.js';

interface Cell {
  draftMs: number;
  target: string;
  profile: string;
  setting: SettingName;
}

interface Result {
  cell: Cell;
  method: 'ar' | 'dssd-serial' | 'dssd-pipelined';
  gamma: number;
  m: Measurement;
}

const HELP = `npm run bench:pipeline -- [options]
  --prompts N       prompts per cell (default 16)
  --headline-prompts N
                    prompts in the headline cell, where each mode's best γ is picked (default 2 × --prompts)
  --tokens N        new tokens per prompt (default 128)
  --quick           the headline cell only; 2 prompts × 32 tokens unless given (a smoke run: docs untouched)
  --report-only F   rebuild the report and plots from results file F
  --out F           results file (default bench/results/<date>-pipelined.json)
`;

/** Headline: a 7 ms/token browser draft against a 32B-class target on an H200 at RTT 20 ms. */
const HEADLINE: Omit<Cell, 'setting'> = { draftMs: 7, target: 'h200-32b', profile: 'rtt20-50M' };
const SWEEP = [2, 3, 4, 6];
const GAMMA = 4;

function cells(quick: boolean): Cell[] {
  const out: Cell[] = [];
  for (const setting of ['t1', 'topk10'] as SettingName[]) {
    if (quick) {
      out.push({ ...HEADLINE, setting });
      continue;
    }
    for (const draftMs of [7, 15])
      for (const target of ['h200-32b', 'edge-7b'])
        for (const profile of ['rtt20-50M', 'rtt50-50M']) out.push({ draftMs, target, profile, setting });
  }
  return out;
}

const isHeadline = (c: Cell) =>
  c.draftMs === HEADLINE.draftMs && c.target === HEADLINE.target && c.profile === HEADLINE.profile;
const cellName = (c: Cell) => `${c.draftMs} ms / ${c.target} / RTT ${PROFILES[c.profile].rttMs}`;
const tps = (m: Measurement) => (1000 * m.generatedTokens) / m.wallMs;
/** ms per draft, wasted ones included (verified drafts alone would charge the waste's time to fewer tokens). */
const msPerDraft = (m: Measurement) => m.draftMs / Math.max(1, m.draftSteps);

/** α by maximum likelihood from a serial run: accepted drafts over accepted drafts plus rejections. */
function alphaOf(m: Measurement): number {
  return m.spec.acceptedTokens / (m.spec.acceptedTokens + m.spec.resampledTokens);
}

/** The model's pipelined and serial tokens/s from a serial run's α, draft cost and pass cost. */
function predict(serial: Result): { pipelined: (g: number) => number; serial: (g: number) => number } {
  const m = serial.m;
  const cost = TARGET_COST_PRESETS[serial.cell.target];
  const scored = m.edgePassTokens || serial.gamma + 1;
  // The measured pass at `scored` tokens, moved along the preset's per-token slope.
  const passMs = (k: number) => m.edgePassMedianMs + cost.b * (k - scored);
  const rounds = Math.max(1, m.rounds);
  const base = {
    alpha: alphaOf(m),
    draftMs: msPerDraft(m),
    passMs,
    // The round trip plus the mean serialisation time of a round's frames on the link.
    rttMs:
      PROFILES[serial.cell.profile].rttMs +
      ((8 * (m.uplinkBytes + m.downlinkBytes)) / rounds / (PROFILES[serial.cell.profile].upMbps * 1e6)) *
        1000,
  };
  return {
    pipelined: (g) => pipelinedTokensPerSecond({ ...base, block: g, window: PIPELINE.windowBlocks * g }),
    serial: (g) => serialTokensPerSecond({ ...base, block: g }),
  };
}

async function runAll(o: {
  prompts: number;
  headlinePrompts: number;
  tokens: number;
  quick: boolean;
}): Promise<Result[]> {
  const models: Models = {
    target: await loadNodeModel(DEFAULT_MODEL_DIRS.target),
    draft: await loadNodeModel(DEFAULT_MODEL_DIRS.draft),
  };
  const all = PROMPTS.slice(0, Math.max(o.prompts, o.headlinePrompts)).map((p) =>
    models.target.tokenizer.encode(p),
  );
  const jobs: { cell: Cell; method: Result['method']; gamma: number }[] = [];
  for (const cell of cells(o.quick)) {
    jobs.push({ cell, method: 'ar', gamma: 0 });
    for (const gamma of isHeadline(cell) ? SWEEP : [GAMMA]) {
      jobs.push({ cell, method: 'dssd-serial', gamma });
      jobs.push({ cell, method: 'dssd-pipelined', gamma });
    }
  }
  const results: Result[] = [];
  const t0 = Date.now();
  for (const [i, j] of jobs.entries()) {
    const targetMs: TargetCost = TARGET_COST_PRESETS[j.cell.target];
    const m = await runSpec(models, {
      method: METHODS[j.method === 'ar' ? 'ar' : j.method === 'dssd-serial' ? 'dssd-auto' : 'dssd-pipelined'],
      gamma: j.gamma,
      profile: PROFILES[j.cell.profile],
      setting: j.cell.setting,
      targetMs,
      // The headline cell picks each mode's best γ from a sweep: more prompts there keep that pick from
      // following the noise of one run's acceptance.
      prompts: all.slice(0, isHeadline(j.cell) ? o.headlinePrompts : o.prompts),
      maxNewTokens: o.tokens,
      seed: 1000,
      draftMs: j.method === 'ar' ? 0 : j.cell.draftMs,
    });
    results.push({ ...j, m });
    const eta = ((Date.now() - t0) / (i + 1)) * (jobs.length - i - 1);
    process.stderr.write(
      `[${i + 1}/${jobs.length}] ${j.method.padEnd(15)} γ${String(j.gamma).padEnd(2)} ${cellName(j.cell).padEnd(28)} ` +
        `${j.cell.setting.padEnd(7)} ${tps(m).toFixed(1).padStart(6)} tok/s  (EMULATED costs; ~${Math.round(eta / 60000)} min left)\n`,
    );
  }
  return results;
}

interface CellSummary {
  cell: Cell;
  ar: Result;
  serial: Result;
  pipelined: Result;
  modelPipelined: number;
  modelSerial: number;
}

/** Per cell: ar, and each DSSD mode at its best measured γ; the model from that serial run. */
function summarise(results: Result[]): CellSummary[] {
  const byCell = new Map<string, Result[]>();
  for (const r of results) {
    const k = `${cellName(r.cell)}|${r.cell.setting}`;
    byCell.set(k, [...(byCell.get(k) ?? []), r]);
  }
  const best = (rs: Result[], method: Result['method']) =>
    rs.filter((r) => r.method === method).reduce((a, b) => (tps(b.m) > tps(a.m) ? b : a));
  return [...byCell.values()].map((rs) => {
    const serial = best(rs, 'dssd-serial');
    const pipelined = best(rs, 'dssd-pipelined');
    const model = predict(serial);
    return {
      cell: rs[0].cell,
      ar: rs.find((r) => r.method === 'ar')!,
      serial,
      pipelined,
      modelPipelined: model.pipelined(pipelined.gamma),
      modelSerial: model.serial(serial.gamma),
    };
  });
}

/** Why pipelined DSSD does or does not beat edge-only decoding in a cell, from the measured figures. */
function reason(s: CellSummary): string {
  const m = s.pipelined.m;
  const g = s.pipelined.gamma;
  const draftPerToken = m.draftMs / Math.max(1, m.generatedTokens);
  const arMs = 1000 / tps(s.ar.m);
  const wasted = m.wastedDrafts / Math.max(1, m.generatedTokens);
  // The window keeps the device drafting for W·t_draft while a verdict is on its way (RTT + one pass).
  const tDraft = msPerDraft(m);
  const windowMs = PIPELINE.windowBlocks * g * tDraft;
  const latencyMs = PROFILES[s.cell.profile].rttMs + s.serial.m.edgePassMedianMs;
  const beats = tps(m) > tps(s.ar.m);
  const parts = [
    `drafting costs ${draftPerToken.toFixed(1)} ms per generated token (incl. ${wasted.toFixed(2)} wasted drafts) against ${arMs.toFixed(1)} ms per edge-only token`,
    windowMs < latencyMs
      ? `the window (${PIPELINE.windowBlocks} × ${g} drafts ≈ ${windowMs.toFixed(0)} ms) is shorter than a verdict's latency (RTT + pass ≈ ${latencyMs.toFixed(0)} ms), so the device stalls`
      : `the window (≈ ${windowMs.toFixed(0)} ms of drafting) covers a verdict's latency (≈ ${latencyMs.toFixed(0)} ms)`,
  ];
  if (!beats && draftPerToken >= arMs) parts.push('the draft alone is slower than edge-only decoding');
  return parts.join('; ');
}

function table(head: string[], rows: (string | number)[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

async function writeReport(results: Result[], jsonPath: string, docs = true): Promise<string> {
  const sums = summarise(results);
  const base = jsonPath.replace(/\.json$/, '');
  const rel = (p: string) => path.relative(REPO_ROOT, p);
  const head = sums.find((s) => isHeadline(s.cell) && s.cell.setting === 't1');
  const lines: string[] = [];
  const promptsOf = (pick: (r: Result) => boolean) => results.find(pick)?.m.perPromptTokens.length ?? 0;
  lines.push(
    `Pipelined DSSD (blocks of γ drafts, the first of each epoch max(2, ⌈γ/2⌉), a window of ${PIPELINE.windowBlocks}·γ tokens, no bonus token) against serial DSSD and edge-only decoding, ` +
      `measured in one run with **EMULATED** costs: every drafted token padded to the draft cost, every target pass to the preset ` +
      `(h200-32b = ${TARGET_COST_PRESETS['h200-32b'].a} ms + ${TARGET_COST_PRESETS['h200-32b'].b} ms/token, edge-7b = ${TARGET_COST_PRESETS['edge-7b'].a} ms + ${TARGET_COST_PRESETS['edge-7b'].b} ms/token), ` +
      `simulated links, the default pair, ${promptsOf((r) => !isHeadline(r.cell))} prompts × ${results[0] ? Math.max(...results[0].m.perPromptTokens) : 0} tokens per row ` +
      `(${promptsOf((r) => isHeadline(r.cell))} prompts in the headline cell). ` +
      `Each DSSD mode at its best γ (swept over ${SWEEP.join(', ')} in the headline cell, γ ${GAMMA} elsewhere). The model predicts from α and costs measured in the serial run. ` +
      `A pad's overshoot (a late timer) is carried into the next pads; the effective cost per draft, wasted drafts included, is in the table (nominal: the cell's draft ms).`,
    '',
  );
  if (head) {
    lines.push(
      `**Headline** (7 ms/token draft, h200-32b, RTT 20 ms, T = 1): pipelined ${tps(head.pipelined.m).toFixed(1)} tok/s (γ ${head.pipelined.gamma}) vs serial ` +
        `${tps(head.serial.m).toFixed(1)} tok/s (γ ${head.serial.gamma}) = **×${(tps(head.pipelined.m) / tps(head.serial.m)).toFixed(2)}**; edge-only ${tps(head.ar.m).toFixed(1)} tok/s.`,
      '',
    );
  }
  lines.push(
    table(
      [
        'setting',
        'cell (draft / target / RTT)',
        'ar tok/s',
        'serial tok/s (γ)',
        'pipelined tok/s (γ)',
        'pipelined / serial',
        'pipelined / ar',
        'wasted drafts / token',
        'draft ms / draft (effective)',
        'edge passes / token (serial, pipelined)',
        'measured / model (pipelined, serial)',
      ],
      sums.map((s) => [
        s.cell.setting,
        cellName(s.cell),
        tps(s.ar.m).toFixed(1),
        `${tps(s.serial.m).toFixed(1)} (${s.serial.gamma})`,
        `${tps(s.pipelined.m).toFixed(1)} (${s.pipelined.gamma})`,
        `×${(tps(s.pipelined.m) / tps(s.serial.m)).toFixed(2)}`,
        `×${(tps(s.pipelined.m) / tps(s.ar.m)).toFixed(2)}`,
        (s.pipelined.m.wastedDrafts / s.pipelined.m.generatedTokens).toFixed(2),
        msPerDraft(s.pipelined.m).toFixed(1),
        `${(s.serial.m.llmForwardPasses / s.serial.m.generatedTokens).toFixed(2)}, ${(s.pipelined.m.llmForwardPasses / s.pipelined.m.generatedTokens).toFixed(2)}`,
        `${(tps(s.pipelined.m) / s.modelPipelined).toFixed(2)}, ${(tps(s.serial.m) / s.modelSerial).toFixed(2)}`,
      ]),
    ),
    '',
    '**Where pipelined DSSD beats edge-only decoding, and where not (measured):**',
    '',
    ...sums.map(
      (s) =>
        `- ${s.cell.setting}, ${cellName(s.cell)}: ${tps(s.pipelined.m) > tps(s.ar.m) ? 'beats' : 'does not beat'} edge-only (×${(tps(s.pipelined.m) / tps(s.ar.m)).toFixed(2)}): ${reason(s)}.`,
    ),
    '',
  );
  const points: PipelinePoint[] = sums.flatMap((s) => [
    {
      cell: cellName(s.cell),
      setting: s.cell.setting,
      method: 'edge-only (ar)',
      tokensPerSecond: tps(s.ar.m),
    },
    {
      cell: cellName(s.cell),
      setting: s.cell.setting,
      method: 'serial DSSD',
      tokensPerSecond: tps(s.serial.m),
      model: s.modelSerial,
    },
    {
      cell: cellName(s.cell),
      setting: s.cell.setting,
      method: 'pipelined DSSD',
      tokensPerSecond: tps(s.pipelined.m),
      model: s.modelPipelined,
    },
  ]);
  const plots = [...new Set(points.map((p) => p.setting))].map((setting) => pipelinedPlot(points, setting));
  for (const p of plots) {
    const file = `${base}-${p.name}.svg`;
    fs.writeFileSync(file, (await renderSvg(p.spec)) + '\n');
    lines.push(`![${p.title}](${path.relative(path.join(REPO_ROOT, 'docs'), file)})`, '');
  }
  lines.push(`Results: \`${rel(jsonPath)}\`; command: \`npm run bench:pipeline\`.`);
  const md = lines.join('\n');
  fs.writeFileSync(`${base}.md`, `# Pipelined drafting (EMULATED costs)\n\n${md}\n`);
  if (!docs) return md;
  // The section of docs/benchmarks.md above its generated part, between markers, replaced in place.
  const docsFile = path.join(REPO_ROOT, 'docs/benchmarks.md');
  const text = fs.readFileSync(docsFile, 'utf8');
  const [start, end] = ['<!-- pipelined:start -->', '<!-- pipelined:end -->'];
  const section = `${start}\n\n## Pipelined drafting\n\n${md}\n\n${end}`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  const next =
    a >= 0 && b > a
      ? text.slice(0, a) + section + text.slice(b + end.length)
      : insertBeforeGenerated(text, section);
  fs.writeFileSync(docsFile, next);
  return md;
}

/** Puts the section above the generated part of docs/benchmarks.md (which the main report rewrites). */
function insertBeforeGenerated(text: string, section: string): string {
  const m = /\n<!-- generated[^\n]*-->/.exec(text);
  return m
    ? `${text.slice(0, m.index)}\n${section}\n${text.slice(m.index)}`
    : `${text.trimEnd()}\n\n${section}\n`;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      prompts: { type: 'string' },
      'headline-prompts': { type: 'string' },
      tokens: { type: 'string' },
      quick: { type: 'boolean' },
      'report-only': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) return void process.stdout.write(HELP);
  if (v['report-only']) {
    const file = path.resolve(v['report-only']);
    process.stdout.write(
      (await writeReport(JSON.parse(fs.readFileSync(file, 'utf8')) as Result[], file)) + '\n',
    );
    return;
  }
  const quick = v.quick ?? false;
  const prompts = Number(v.prompts ?? (quick ? 2 : 16));
  const o = {
    prompts,
    headlinePrompts: Number(v['headline-prompts'] ?? (quick ? prompts : 2 * prompts)),
    tokens: Number(v.tokens ?? (quick ? 32 : 128)),
    quick,
  };
  const inRange = (n: number) => Number.isInteger(n) && n >= 1 && n <= PROMPTS.length;
  if (!inRange(o.prompts) || !inRange(o.headlinePrompts) || !(Number.isInteger(o.tokens) && o.tokens >= 1))
    throw new Error(
      `--prompts and --headline-prompts must be integers in [1, ${PROMPTS.length}], --tokens an integer >= 1`,
    );
  const date = new Date().toISOString().slice(0, 10);
  const out = path.resolve(
    v.out ?? path.join(REPO_ROOT, 'bench/results', `${date}-pipelined${quick ? '-quick' : ''}.json`),
  );
  const results = await runAll(o);
  fs.writeFileSync(out, JSON.stringify(results) + '\n');
  // A smoke run (--quick at its own size) never replaces the committed section of docs/benchmarks.md.
  const smoke =
    quick && v.prompts === undefined && v.tokens === undefined && v['headline-prompts'] === undefined;
  process.stdout.write((await writeReport(results, out, !smoke)) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:pipeline: ${(e as Error).message}\n`);
  process.exit(1);
});
