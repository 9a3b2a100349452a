/** The Markdown report, the SVG plots (specs from plots.ts) and the printed summary, all from the results rows. */
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './paths.js';
import { prng } from '@dssd/protocol/testing';
import { acceptancePlot, bytesPlot, gammaPlot, projectionPlot, speedupPlot, type Plot } from './plots.js';
import { renderSvg } from './render.js';
import { SHAPING_KERNEL, SHAPING_SIMULATED, type Row } from './rows.js';
import { HARDWARE_PAIRS, projectTokensPerSecond, type ProjectionCodec } from './latency-model.js';
import { PROFILES, SWEEP_GAMMAS } from './grid.js';
import { SETTINGS, type SettingName } from './run.js';

interface Results {
  meta: Record<string, unknown>;
  rows: Row[];
}

const f = (x: number | null | undefined, d = 1) =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length ? (s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2) : NaN;
};

function table(head: string[], rows: (string | number)[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

function targetLabel(r: Pick<Row, 'target' | 'targetMs'>): string {
  return r.target === 'cpu'
    ? 'real CPU target'
    : `emulated target (EMULATION: ${r.targetMs!.a} ms + ${r.targetMs!.b} ms/token per pass)`;
}

const methodLabel = (r: Row) => `${r.method}${r.lossy ? ' (lossy)' : ''}`;

/** The ratios a reader asks for first, computed from rows (also used for the printed summary). */
export interface Headlines {
  lines: string[];
  adaptive: {
    group: string;
    best: Row;
    adaptive: Row;
    ratio: number;
    interval: [number, number] | null;
  }[];
}

/**
 * 90% interval of tokens/s(a) / tokens/s(b) by a paired bootstrap over prompts: prompt i runs with the same
 * prompt and seed in every method, so resampling prompt indices keeps each pair together. Null for rows without
 * per-prompt figures or with fewer than 4 prompts.
 */
export function pairedRatioInterval(a: Row, b: Row, resamples = 2000): [number, number] | null {
  const [ta, wa, tb, wb] = [a.perPromptTokens, a.perPromptWallMs, b.perPromptTokens, b.perPromptWallMs];
  if (!ta || !wa || !tb || !wb) return null;
  const n = ta.length;
  if (n < 4 || wa.length !== n || tb.length !== n || wb.length !== n) return null;
  const rnd = prng(n * 7919 + resamples);
  const ratios: number[] = [];
  for (let k = 0; k < resamples; k++) {
    let [sta, swa, stb, swb] = [0, 0, 0, 0];
    for (let j = 0; j < n; j++) {
      const i = Math.floor(rnd() * n);
      sta += ta[i];
      swa += wa[i];
      stb += tb[i];
      swb += wb[i];
    }
    ratios.push(sta / swa / (stb / swb));
  }
  ratios.sort((x, y) => x - y);
  return [ratios[Math.floor(0.05 * resamples)], ratios[Math.ceil(0.95 * resamples) - 1]];
}

function adaptiveChecks(rows: Row[]): Headlines['adaptive'] {
  const out: Headlines['adaptive'] = [];
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const k = [r.profile, r.setting, r.target, r.shaping].join('|');
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const [k, rs] of groups) {
    const fixed = rs.filter((r) => r.method === 'dssd-auto');
    const ad = rs.find((r) => r.method === 'dssd-adaptive');
    if (fixed.length < SWEEP_GAMMAS.length || !ad) continue;
    const best = fixed.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));
    out.push({
      group: k,
      best,
      adaptive: ad,
      ratio: ad.tokensPerSecond / best.tokensPerSecond,
      interval: pairedRatioInterval(ad, best),
    });
  }
  return out;
}

function headlines(rows: Row[]): Headlines {
  const lines: string[] = [];
  for (const target of ['cpu', 'emulated'] as const) {
    const rs = rows.filter(
      (r) => r.target === target && r.shaping === SHAPING_SIMULATED && r.setting === 't1',
    );
    const head = rs.filter((r) => r.gamma === 4 || r.mode === 'ar' || r.adaptive);
    if (!head.length) continue;
    const by = (m: string) => head.filter((r) => r.method === m && r.speedupVsAr !== null);
    const best = (m: string) => {
      const xs = by(m);
      return xs.length ? xs.reduce((a, b) => (b.speedupVsAr! > a.speedupVsAr! ? b : a)) : null;
    };
    const med = (m: string) => median(by(m).map((r) => r.speedupVsAr!));
    const t = target === 'cpu' ? 'real CPU target' : `emulated 7B-class target (emulation)`;
    const auto = best('dssd-auto');
    lines.push(
      `${t}: dssd-auto/ar median ×${f(med('dssd-auto'), 2)} (best ×${f(auto?.speedupVsAr, 2)} on ${auto?.profile ?? '–'}), ` +
        `dsd-f32/ar median ×${f(med('dsd-f32'), 2)}, dssd-candidates/ar median ×${f(med('dssd-candidates'), 2)} ` +
        `over ${by('dssd-auto').length} profiles at γ 4, temperature 1`,
    );
    // DSSD over DSD on the same profile.
    const ratios: number[] = [];
    for (const d of by('dssd-auto')) {
      const s = head.find((r) => r.method === 'dsd-f32' && r.profile === d.profile);
      if (s) ratios.push(d.tokensPerSecond / s.tokensPerSecond);
    }
    if (ratios.length)
      lines.push(
        `${t}: dssd-auto/dsd-f32 median ×${f(median(ratios), 2)} (range ×${f(Math.min(...ratios), 2)}–×${f(Math.max(...ratios), 2)})`,
      );
    const err = rs
      .filter((r) => r.predictedTokensPerSecond > 0)
      .map((r) => r.tokensPerSecond / r.predictedTokensPerSecond);
    if (err.length)
      lines.push(
        `${t}: measured/model tokens/s median ${f(median(err), 2)} (range ${f(Math.min(...err), 2)}–${f(Math.max(...err), 2)})`,
      );
  }
  const kr = rows
    .filter((r) => r.shaping === SHAPING_KERNEL)
    .map((k) => ({ k, s: simulatedTwin(rows, k) }))
    .filter((x) => x.s)
    .map((x) => x.k.tokensPerSecond / x.s!.tokensPerSecond);
  if (kr.length)
    lines.push(
      `kernel-shaped real WebRTC / simulated tokens/s for the same cells: median ×${f(median(kr), 2)} ` +
        `(range ×${f(Math.min(...kr), 2)}–×${f(Math.max(...kr), 2)}, ${kr.length} cells)`,
    );
  const ad = adaptiveChecks(rows);
  if (ad.length) {
    const ok = ad.filter((a) => a.ratio >= 0.95).length;
    const withI = ad.filter((a) => a.interval);
    const reach = withI.filter((a) => a.interval![1] >= 0.95).length;
    lines.push(
      `adaptive γ: within 5% of the best fixed γ on ${ok} of ${ad.length} profile × setting × target cells ` +
        `(adaptive/best median ×${f(median(ad.map((a) => a.ratio)), 3)}, worst ×${f(Math.min(...ad.map((a) => a.ratio)), 3)}` +
        `${withI.length ? `; the 90% paired interval reaches 0.95 on ${reach} of ${withI.length}` : ''})`,
    );
  }
  return { lines, adaptive: ad };
}

/** The adaptive-γ table with the paragraph that says how to read it. */
function adaptiveSection(ad: Headlines['adaptive']): string {
  return [
    'The best fixed γ is the fastest of the sweep as measured, so sampling noise favours it (the maximum of ' +
      'four noisy figures). At temperature 1 and top-k each γ samples different text, and which text a run ' +
      'happened to sample moves its tokens/s by more than the γ choice does; greedy text is the same at every ' +
      'γ, so the greedy cells are the exact paired comparison. The interval resamples prompts, each run with ' +
      'the same prompt and seed by every method (a paired bootstrap, 2,000 resamples; blank under 4 prompts).',
    '',
    table(
      [
        'target, profile, setting',
        'best fixed γ',
        'its tok/s',
        'adaptive tok/s',
        'adaptive / best',
        '90% interval',
        'mean γ chosen',
        'within 5%',
      ],
      ad.map((a) => [
        `${a.best.target} ${a.best.profile} ${a.best.setting}${a.best.shaping === SHAPING_KERNEL ? ' (kernel)' : ''}`,
        a.best.gamma,
        f(a.best.tokensPerSecond),
        f(a.adaptive.tokensPerSecond),
        f(a.ratio, 3),
        a.interval ? `${f(a.interval[0], 3)}–${f(a.interval[1], 3)}` : '–',
        f(a.adaptive.meanGamma, 2),
        a.ratio >= 0.95 ? 'yes' : 'NO',
      ]),
    ),
  ].join('\n');
}

/** The simulated row of the same cell as a kernel-shaped one. */
function simulatedTwin(rows: Row[], k: Row): Row | undefined {
  const key = k.key.replace(`|${SHAPING_KERNEL}|`, `|${SHAPING_SIMULATED}|`);
  return rows.find((r) => r.key === key);
}

/** Kernel-shaped against simulated tokens/s for the same cells, with what the kernel's classes counted. */
export function kernelComparison(rows: Row[], meta: Record<string, unknown>): string[] {
  const ks = rows.filter((r) => r.shaping === SHAPING_KERNEL);
  const out = ['### Kernel-shaped against simulated', ''];
  if (meta.kernelShaping) out.push(`Kernel shaping: ${meta.kernelShaping}.`, '');
  if (!ks.length) return out.length > 2 ? out : [];
  const ratios: number[] = [];
  const body = ks.map((k) => {
    const s = simulatedTwin(rows, k);
    const ratio = s ? k.tokensPerSecond / s.tokensPerSecond : NaN;
    if (s) ratios.push(ratio);
    const tok = Math.max(1, k.generatedTokens);
    const wire = (c?: { bytes: number }) => (c ? f(c.bytes / tok, 0) : '–');
    return [
      k.target === 'cpu' ? 'real CPU' : `EMULATED ${k.targetMs!.a}+${k.targetMs!.b}`,
      k.profile,
      methodLabel(k),
      f(s?.tokensPerSecond),
      f(k.tokensPerSecond),
      f(ratio, 2),
      f(k.speedupVsAr, 2),
      f(s?.speedupVsAr, 2),
      `${f(k.uplinkBytesPerToken, 0)} / ${f(k.downlinkBytesPerToken, 0)}`,
      `${wire(k.kernel?.up)} / ${wire(k.kernel?.down)}`,
      k.kernel
        ? `${k.kernel.qdisc}${k.kernel.up ? `, ${k.kernel.up.dropped + (k.kernel.down?.dropped ?? 0)} drops` : ''}`
        : '–',
    ];
  });
  out.push(
    `Same cells, prompts and device seeds, temperature 1. Kernel rows: edge and device in separate processes over ` +
      `real WebRTC (DTLS/SCTP/UDP), rates set by ` +
      `the kernel; simulated rows: one process, rates from the transport shaper's packet model. ` +
      `Kernel/simulated tokens/s median ×${f(median(ratios), 2)}` +
      `${ratios.length ? ` (range ×${f(Math.min(...ratios), 2)}–×${f(Math.max(...ratios), 2)})` : ''} over ${ratios.length} cells.`,
    '',
    table(
      [
        'target',
        'profile',
        'method',
        'simulated tok/s',
        'kernel tok/s',
        'kernel / simulated',
        'kernel ×ar',
        'simulated ×ar',
        'app B/token up / down',
        'kernel wire B/token up / down (tc)',
        'qdisc',
      ],
      body,
    ),
    '',
  );
  return out;
}

/**
 * P(the first k drafts are all accepted) per setting, pooled over the exact-codec dssd rows with the real CPU
 * target (emulated-target rows sample the same text again), each weighted by its rounds that drafted position k.
 */
function acceptanceBySetting(rows: Row[]): Map<SettingName, number[]> {
  const out = new Map<SettingName, number[]>();
  const drafted = (r: Row, k: number) =>
    r.roundsByGamma ? r.roundsByGamma.reduce((a, n, g) => a + (g > k ? n : 0), 0) : r.rounds;
  for (const s of Object.keys(SETTINGS) as SettingName[]) {
    const rs = rows.filter(
      (r) => r.setting === s && r.mode === 'dssd' && !r.adaptive && !r.lossy && r.target === 'cpu',
    );
    if (!rs.length) continue;
    const g = Math.max(...rs.map((r) => r.acceptancePerPosition.length));
    const acc: number[] = [];
    for (let k = 0; k < g; k++) {
      const xs = rs
        .filter((r) => r.acceptancePerPosition.length > k)
        .map((r) => ({ a: r.acceptancePerPosition[k], w: drafted(r, k) }));
      const w = xs.reduce((a, b) => a + b.w, 0);
      acc.push(w > 0 ? xs.reduce((a, b) => a + b.a * b.w, 0) / w : 0);
    }
    out.set(s, acc);
  }
  return out;
}

/** Body bytes of P_j at |V| for the projection; candidates from the measured mean. */
function projectionCodecs(rows: Row[]): ProjectionCodec[] {
  const cand = rows.filter((r) => r.method === 'dssd-candidates' && r.distributionBytes > 0);
  const candBytes = cand.length ? median(cand.map((r) => r.distributionBytes)) : 64;
  return [
    { id: 'ar (edge-only)', mode: 'ar', bytes: () => 0 },
    { id: 'dsd-f16 (lossy)', mode: 'dsd', bytes: (V) => 2 * V },
    { id: 'dssd-f16 (lossy)', mode: 'dssd', bytes: (V) => 2 * V + 8 },
    { id: 'dssd-f32', mode: 'dssd', bytes: (V) => 4 * V + 8 },
    { id: `dssd-candidates (${Math.round(candBytes)} B measured)`, mode: 'dssd', bytes: () => candBytes },
  ];
}

const PROJECTION_LINKS = ['rtt20-50M', 'rtt50-10M', 'mobile-10/50'];

/** What a report section adds: Markdown lines and the plots that go with them. */
interface Section {
  md: string[];
  plots: Plot[];
}

const targetShort = (target: string) => (target === 'cpu' ? 'real CPU target' : 'emulated target');

function projection(rows: Row[]): Section {
  const acc = acceptanceBySetting(rows).get('t1');
  if (!acc || acc.length < 2) return { md: ['_No temperature-1 dssd rows to project from._'], plots: [] };
  const codecs = projectionCodecs(rows);
  const md: string[] = [
    `PROJECTION, not a measurement: tokens/s from the latency model with the **measured acceptance per position of ` +
      `the real default pair at temperature 1** (${acc.map((a) => a.toFixed(2)).join(', ')}), the best γ ≤ ${acc.length} ` +
      `per method, and these assumed hardware pairs (T_SLM per drafted token, T_LLM = a + b·(γ+1) per pass, |V| = 151,936, ` +
      `ar streams tokens at a + b per step). A real 0.5B/7B pair accepts differently from our tiny pair; this shows ` +
      `the link and |V| effects, not a promise.`,
    '',
  ];
  const bars: { pair: string; codec: string; speedup: number }[] = [];
  for (const pair of HARDWARE_PAIRS) {
    md.push(`**${pair.name}**`, '');
    const body: string[][] = [];
    for (const ln of PROJECTION_LINKS) {
      const link = PROFILES[ln];
      const ar = projectTokensPerSecond(pair, link, acc, 1, codecs[0]);
      const cells = [ln, f(ar)];
      for (const c of codecs.slice(1)) {
        const { best, gamma } = bestProjectedGamma(pair, link, acc, c);
        cells.push(`${f(best)} (γ${gamma}, ×${f(best / ar, 2)})`);
        if (ln === 'mobile-10/50')
          bars.push({ pair: shortPairName(pair.name), codec: c.id, speedup: best / ar });
      }
      body.push(cells);
    }
    md.push(table(['link', 'ar tok/s', ...codecs.slice(1).map((c) => c.id)], body), '');
  }
  return { md, plots: [projectionPlot(bars)] };
}

function bestProjectedGamma(
  pair: (typeof HARDWARE_PAIRS)[number],
  link: (typeof PROFILES)[string],
  acc: number[],
  c: ProjectionCodec,
): { best: number; gamma: number } {
  let best = 0;
  let gamma = 1;
  for (let g = 1; g <= acc.length; g++) {
    const t = projectTokensPerSecond(pair, link, acc, g, c);
    if (t > best) [best, gamma] = [t, g];
  }
  return { best, gamma };
}

/** "Phone NPU (…) + 7B on an edge GPU (…)" → "Phone NPU / 7B": short enough for an axis label. */
function shortPairName(name: string): string {
  const [device, edge] = name.split(' + ');
  return `${device.replace(/ \(.*\)/, '')} / ${edge.split(' (')[0].replace(' on an edge GPU', '')}`;
}

/** Command, machine, target modes and the headline ratios. */
function introSection(meta: Record<string, unknown>, shapings: string[], h: Headlines): string[] {
  return [
    `Command: \`${meta.command}\` — ${meta.subset}. Grid: ${meta.gridDescription}.`,
    '',
    `Shaping: ${shapings.map((s) => `**${s}**`).join(' and ')}. Machine: ${meta.cpus}, Node ${meta.node}; ` +
      `with the transport shaper (simulated) device and edge share one process; with kernel shaping they are two ` +
      `processes over real WebRTC; either way they share 2 cores and other work ran concurrently, so figures are noisy ` +
      `(per-run tokens/s over ${meta.prompts instanceof Array ? meta.prompts.length : '?'} prompt(s) × ${meta.maxNewTokens} tokens).`,
    '',
    `Target cost: rows marked _real CPU target_ run the default 1.8 ms target as is; rows marked _emulated_ pad every ` +
      `target pass to a + b·tokens ms (**EMULATION** of a larger model on an edge GPU, not a real one). With the real ` +
      `CPU target any round trip dominates and edge-only decoding (ar) wins per-request latency.`,
    '',
    '### Headline ratios',
    '',
    ...h.lines.map((l) => `- ${l}`),
    '',
  ];
}

/** A method × profile table, each cell `measured (model)` from the two row fields. */
function methodProfileTable(rs: Row[], cell: (r: Row) => string): string {
  const profiles = [...new Set(rs.map((r) => r.profile))];
  const methods = [...new Set(rs.map((r) => r.method))];
  return table(
    ['method', ...profiles],
    methods.map((m) => [
      methodLabel(rs.find((r) => r.method === m)!),
      ...profiles.map((p) => {
        const r = rs.find((x) => x.method === m && x.profile === p);
        return r ? cell(r) : '–';
      }),
    ]),
  );
}

/** Speedup and tokens/s tables per target and shaping, with a speedup plot for the simulated rows. */
function speedupSections(rows: Row[]): Section {
  const out: Section = { md: [], plots: [] };
  for (const target of ['cpu', 'emulated'] as const) {
    for (const shaping of [SHAPING_SIMULATED, SHAPING_KERNEL]) {
      const rs = rows.filter(
        (r) =>
          r.target === target &&
          r.shaping === shaping &&
          r.setting === 't1' &&
          (r.part !== 'sweep' || r.gamma === 4 || r.mode === 'ar' || r.adaptive),
      );
      if (!rs.length) continue;
      const label = `${targetLabel(rs[0])}, temperature 1, γ 4 (adaptive: γ ≤ 8), shaping: ${shaping}`;
      out.md.push(
        `### Speedup over ar — ${label}`,
        '',
        'Measured speedup (model prediction in parentheses).',
        '',
        methodProfileTable(rs, (r) => `${f(r.speedupVsAr, 2)} (${f(r.predictedSpeedup, 2)})`),
        '',
        `Tokens/s — ${label}`,
        '',
        methodProfileTable(rs, (r) => `${f(r.tokensPerSecond)} (${f(r.predictedTokensPerSecond)})`),
        '',
      );
      if (shaping !== SHAPING_SIMULATED) continue;
      const who =
        target === 'cpu'
          ? 'real CPU target'
          : `EMULATED target ${rs[0].targetMs?.a} ms + ${rs[0].targetMs?.b} ms/token`;
      out.plots.push(
        speedupPlot(
          `speedup-${target}`,
          `Speedup over ar, ${targetShort(target)}`,
          `Speedup over edge-only ar — ${who}`,
          `temperature 1, γ 4 (adaptive γ ≤ 8); simulated links`,
          rs,
        ),
      );
    }
  }
  return out;
}

/** Wire figures per method, one representative profile (rtt20-50M) per target; the bytes plot for the CPU target. */
function bytesSection(rows: Row[]): Section {
  const out: Section = { md: ['### Bytes, messages and edge passes per token', ''], plots: [] };
  for (const target of ['cpu', 'emulated'] as const) {
    const rs = rows.filter(
      (r) =>
        r.target === target &&
        r.setting === 't1' &&
        r.profile === 'rtt20-50M' &&
        r.shaping === SHAPING_SIMULATED &&
        (r.gamma === 4 || r.mode === 'ar' || r.adaptive),
    );
    if (!rs.length) continue;
    out.md.push(
      `rtt20-50M, temperature 1, ${targetLabel(rs[0])}, shaping: ${SHAPING_SIMULATED}. Bytes are application bytes as sent (frames + chunk headers).`,
      '',
      wireTable(rs),
      '',
    );
    if (target === 'cpu')
      out.plots.push(
        bytesPlot(
          'Bytes per generated token',
          `rtt20-50M, temperature 1, γ 4; application bytes as sent; shaping: ${SHAPING_SIMULATED}`,
          rs,
        ),
      );
  }
  return out;
}

function wireTable(rs: Row[]): string {
  return table(
    [
      'method',
      'MAL',
      'α',
      'up B/round',
      'down B/round',
      'up B/token',
      'down B/token',
      'msgs/token',
      'LLM passes/token',
      'T_SLM ms',
      'T_LLM ms',
      'fallbacks',
    ],
    rs.map((r) => [
      methodLabel(r),
      f(r.meanAcceptanceLength, 2),
      f(r.alpha, 2),
      f(r.uplinkBytesPerRound, 0),
      f(r.downlinkBytesPerRound, 0),
      f(r.uplinkBytesPerToken, 0),
      f(r.downlinkBytesPerToken, 0),
      f(r.messagesPerToken, 2),
      f(r.llmForwardPassesPerToken, 3),
      f(r.tSlmMs, 2),
      f(r.tLlmMs, 2),
      r.fallbacks,
    ]),
  );
}

const SWEEP_METHODS = ['dssd-auto', 'dsd-f32'];

/** The γ sweep table over every swept cell, and a plot per temperature-1 simulated cell. */
function sweepSection(rows: Row[]): Section {
  const groups = [
    ...new Set(
      rows
        .filter((r) => r.part === 'sweep')
        .map((r) => [r.target, r.profile, r.setting, r.shaping].join('|')),
    ),
  ];
  if (!groups.length) return { md: [], plots: [] };
  const body: string[][] = [];
  const plots: Plot[] = [];
  for (const g of groups) {
    const [target, profile, setting, shaping] = g.split('|');
    const rs = rows.filter(
      (r) => r.target === target && r.profile === profile && r.setting === setting && r.shaping === shaping,
    );
    body.push(...sweepRows(rs, `${target === 'cpu' ? 'cpu' : 'emulated'} ${profile} ${setting}`));
    if (setting === 't1' && shaping === SHAPING_SIMULATED)
      plots.push(sweepPlot(rs, target, profile, shaping));
  }
  const md = [
    '### γ sweep',
    '',
    'Tokens/s measured (model in parentheses).',
    '',
    table(
      ['target, profile, setting', 'method', ...SWEEP_GAMMAS.map((g) => `γ ${g}`), 'adaptive γ ≤ 8', 'ar'],
      body,
    ),
    '',
  ];
  return { md, plots };
}

function sweepRows(rs: Row[], label: string): string[][] {
  const ad = rs.find((r) => r.adaptive);
  return SWEEP_METHODS.filter((m) => rs.some((r) => r.method === m)).map((m) => [
    label,
    m,
    ...SWEEP_GAMMAS.map((gm) => {
      const r = rs.find((x) => x.method === m && x.gamma === gm);
      return r ? `${f(r.tokensPerSecond)} (${f(r.predictedTokensPerSecond)})` : '–';
    }),
    m === 'dssd-auto' && ad ? `${f(ad.tokensPerSecond)} (mean γ ${f(ad.meanGamma, 1)})` : '',
    f(rs.find((r) => r.mode === 'ar')?.tokensPerSecond),
  ]);
}

function sweepPlot(rs: Row[], target: string, profile: string, shaping: string): Plot {
  const sweep = rs
    .filter((r) => SWEEP_METHODS.includes(r.method) && SWEEP_GAMMAS.includes(r.gamma))
    .map((r) => ({
      method: r.method,
      gamma: r.gamma,
      measured: r.tokensPerSecond,
      model: r.predictedTokensPerSecond,
    }));
  const refs: { label: string; tokensPerSecond: number }[] = [];
  const ad = rs.find((r) => r.adaptive);
  if (ad)
    refs.push({
      label: `adaptive γ ≤ 8 (mean γ ${f(ad.meanGamma, 1)})`,
      tokensPerSecond: ad.tokensPerSecond,
    });
  const ar = rs.find((r) => r.mode === 'ar');
  if (ar) refs.push({ label: 'ar (edge-only)', tokensPerSecond: ar.tokensPerSecond });
  const who =
    target === 'cpu'
      ? 'real CPU target'
      : `EMULATED target ${rs[0].targetMs?.a} + ${rs[0].targetMs?.b}/token ms`;
  return gammaPlot(
    `gamma-${target}-${profile.replace(/[^a-z0-9-]/gi, '_')}`,
    `γ sweep, ${targetShort(target)}, ${profile}`,
    `Tokens/s vs γ — ${profile}, ${who}`,
    `temperature 1; shaping: ${shaping}`,
    SWEEP_GAMMAS,
    sweep,
    refs,
  );
}

function acceptanceSection(rows: Row[]): Section {
  const acc = acceptanceBySetting(rows);
  if (!acc.size) return { md: [], plots: [] };
  const g = Math.max(...[...acc.values()].map((a) => a.length));
  const md = [
    '### Acceptance per position (real default pair)',
    '',
    'P(the first k drafts are all accepted), pooled over exact-codec dssd rows with the real CPU target.',
    '',
    table(
      ['setting', ...Array.from({ length: g }, (_, k) => `k=${k + 1}`)],
      [...acc].map(([s, a]) => [SETTINGS[s].label, ...Array.from({ length: g }, (_, k) => f(a[k], 3))]),
    ),
    '',
  ];
  return {
    md,
    plots: [acceptancePlot([...acc].map(([s, a]) => ({ setting: SETTINGS[s].label, values: a })))],
  };
}

function allRowsTable(rows: Row[]): string {
  return table(
    [
      'method',
      'γ',
      'profile',
      'setting',
      'target',
      'shaping',
      'tok/s',
      'model',
      '×ar',
      'MAL',
      'up B/tok',
      'down B/tok',
      'msgs/tok',
      'passes/tok',
    ],
    rows.map((r) => [
      methodLabel(r),
      r.gamma,
      r.profile,
      r.setting,
      r.target === 'cpu' ? 'cpu' : `EMULATED ${r.targetMs!.a}+${r.targetMs!.b}`,
      r.shaping === SHAPING_KERNEL ? 'kernel' : 'simulated',
      f(r.tokensPerSecond),
      f(r.predictedTokensPerSecond),
      f(r.speedupVsAr, 2),
      f(r.meanAcceptanceLength, 2),
      f(r.uplinkBytesPerToken, 0),
      f(r.downlinkBytesPerToken, 0),
      f(r.messagesPerToken, 2),
      f(r.llmForwardPassesPerToken, 3),
    ]),
  );
}

/** Every section of the report in order: its Markdown (without the plot links) and its plots. */
export function reportSections(results: Results): Section {
  const { rows, meta } = results;
  const h = headlines(rows);
  const sections: Section[] = [
    { md: introSection(meta, [...new Set(rows.map((r) => r.shaping))], h), plots: [] },
    speedupSections(rows),
    bytesSection(rows),
    sweepSection(rows),
    {
      md: h.adaptive.length
        ? ['### Adaptive γ against the best fixed γ', '', adaptiveSection(h.adaptive), '']
        : [],
      plots: [],
    },
    acceptanceSection(rows),
    (() => {
      const pj = projection(rows);
      return { md: ['### Scale projection (PROJECTION, not measured)', '', ...pj.md, ''], plots: pj.plots };
    })(),
    { md: kernelComparison(rows, meta), plots: [] },
  ];
  return { md: sections.flatMap((s) => s.md), plots: sections.flatMap((s) => s.plots) };
}

/** Renders each plot to <base>-<name>.svg. */
async function writePlots(plots: Plot[], base: string): Promise<{ title: string; file: string }[]> {
  const files: { title: string; file: string }[] = [];
  for (const p of plots) {
    const file = `${base}-${p.name}.svg`;
    fs.writeFileSync(file, (await renderSvg(p.spec)) + '\n');
    files.push({ title: p.title, file });
  }
  return files;
}

/** Writes <base>.md and its SVG plots (and docs/benchmarks.md when `docs`); returns the printed summary. */
export async function writeReport(results: Results, out: string, docs: boolean): Promise<string> {
  const { rows, meta } = results;
  const base = out.replace(/\.json$/, '');
  const { md, plots } = reportSections(results);
  const plotFiles = await writePlots(plots, base);
  const reportMd = [
    `# dssd benchmark results`,
    '',
    ...md,
    '### Plots',
    '',
    ...plotFiles.map((p) => `![${p.title}](${path.basename(p.file)})`),
    '',
    '### All rows',
    '',
    allRowsTable(rows),
    '',
  ].join('\n');
  fs.writeFileSync(`${base}.md`, reportMd);
  if (docs) writeDocs(md, plotFiles);
  const shapings = [...new Set(rows.map((r) => r.shaping))];
  return [
    `summary (${meta.subset}; shaping: ${shapings.join(' / ')})`,
    ...headlines(rows).lines.map((l) => `  ${l}`),
    `  report: ${path.relative(process.cwd(), base)}.md, plots: ${plotFiles.length} SVG files, rows: ${rows.length}`,
  ].join('\n');
}

/** docs/benchmarks.md: the hand-written introduction above the generated section, plots copied next to it. */
function writeDocs(md: string[], plots: { title: string; file: string }[]): void {
  const docsDir = path.join(REPO_ROOT, 'docs');
  const file = path.join(docsDir, 'benchmarks.md');
  const marker = '<!-- generated by npm run bench -- --docs: everything below this line -->';
  let intro = `# Benchmarks\n\n`;
  if (fs.existsSync(file)) {
    const cur = fs.readFileSync(file, 'utf8');
    const i = cur.indexOf(marker);
    intro = i >= 0 ? cur.slice(0, i) : cur + '\n';
  }
  const links: string[] = [];
  for (const p of plots) {
    const name = `benchmarks-${path.basename(p.file).replace(/^.*?-(?=(speedup|gamma|bytes|acceptance|projection))/, '')}`;
    fs.copyFileSync(p.file, path.join(docsDir, name));
    links.push(`![${p.title}](${name})`);
  }
  fs.writeFileSync(file, [intro.trimEnd(), '', marker, '', ...md, '### Plots', '', ...links, ''].join('\n'));
}

/**
 * One cell's rows from independent replicates (other seeds), pooled for the adaptive comparison: totals summed,
 * per-prompt figures concatenated in file order (so unit i is the same prompt and seed in every row of the cell,
 * and the paired bootstrap still pairs), γ histogram summed. Only the fields that comparison reads are pooled.
 */
function poolRows(rs: Row[]): Row {
  const sum = (f: (r: Row) => number) => rs.reduce((a, r) => a + f(r), 0);
  const cat = (f: (r: Row) => number[] | undefined) =>
    rs.every((r) => f(r)) ? rs.flatMap((r) => f(r)!) : undefined;
  const rounds = sum((r) => r.rounds);
  const roundsByGamma: number[] = [];
  for (const r of rs)
    (r.roundsByGamma ?? []).forEach((n, g) => (roundsByGamma[g] = (roundsByGamma[g] ?? 0) + n));
  const generatedTokens = sum((r) => r.generatedTokens);
  const wallMs = sum((r) => r.wallMs);
  return {
    ...rs[0],
    prompts: sum((r) => r.prompts),
    generatedTokens,
    wallMs,
    tokensPerSecond: (1000 * generatedTokens) / wallMs,
    perPromptTokensPerSecond: rs.flatMap((r) => r.perPromptTokensPerSecond),
    perPromptTokens: cat((r) => r.perPromptTokens),
    perPromptWallMs: cat((r) => r.perPromptWallMs),
    rounds,
    roundsByGamma: Array.from(roundsByGamma, (n) => n ?? 0),
    meanGamma: sum((r) => r.meanGamma * r.rounds) / Math.max(1, rounds),
  };
}

/** The adaptive comparison over several results files of the same grid run with different seeds, pooled. */
export function pooledAdaptiveReport(files: { path: string; results: Results }[], out: string): string {
  const byKey = new Map<string, Row[]>();
  for (const { results } of files)
    for (const r of results.rows) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
  const pooled = [...byKey.values()].filter((rs) => rs.length === files.length).map(poolRows);
  const ad = adaptiveChecks(pooled);
  const h = headlines(pooled).lines.filter((l) => l.startsWith('adaptive γ'));
  const md = [
    '# Adaptive γ, pooled over independent replicates',
    '',
    ...files.map(
      ({ path: p, results: { meta } }) =>
        `- \`${path.relative(REPO_ROOT, p)}\`: \`${meta.command}\` (${Array.isArray(meta.prompts) ? meta.prompts.length : '?'} prompts × ${meta.maxNewTokens} tokens, seeds from ${meta.seed ?? 1000})`,
    ),
    '',
    'Cells present in every file; each run of a cell contributes its prompts, in file order.',
    '',
    ...h.map((l) => `- ${l}`),
    '',
    ad.length ? adaptiveSection(ad) : '_No cell has the whole γ sweep and an adaptive run in every file._',
    '',
  ].join('\n');
  fs.writeFileSync(out, md);
  return md;
}
