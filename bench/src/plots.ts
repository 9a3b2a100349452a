/**
 * The benchmark plots as Vega-Lite specs, one builder per plot, each taking rows (or figures derived from them)
 * and returning a Plot; render.ts turns a spec into SVG. A new plot is a new builder here plus one
 * `plots.push(...)` in report.ts. House rules, checked by test/plots.test.ts: byte counts on log scales, at most
 * four colour series per panel, labelled reference lines, measured figures as points and model figures as lines
 * or ticks, sized for a ~700 px documentation column.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { Row } from './rows.js';

export interface Plot {
  /** File name part: <results base>-<name>.svg. */
  name: string;
  /** Alt text / caption in the Markdown report. */
  title: string;
  spec: TopLevelSpec;
}

/** Plot area width: with the y axis and its title the figure is about 700 px wide. */
export const PANEL_WIDTH = 560;
export const MAX_SERIES = 4;

const CONFIG = {
  background: 'white',
  font: 'DejaVu Sans, Verdana, sans-serif',
  padding: 8,
  title: { anchor: 'start', fontSize: 15, subtitleFontSize: 12, subtitleColor: '#444', offset: 10 },
  axis: { labelFontSize: 12, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#e4e4e4' },
  legend: { labelFontSize: 12, titleFontSize: 12, orient: 'top', direction: 'horizontal', labelLimit: 260 },
  header: { labelFontSize: 13, titleFontSize: 13 },
  // Tableau 10 (what the old plots used): distinct in print and for common colour-vision deficiencies.
  range: { category: { scheme: 'tableau10' } },
} as const;

/**
 * Words wrapped into lines of at most `max` characters. Without a canvas vega estimates text as 0.8 em per
 * character, so one long line would widen the figure far past what it draws; 55 title / 70 subtitle characters
 * keep the estimate within ~700 px.
 */
function wrap(text: string, max: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > max) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return line ? [...lines, line] : lines;
}

const title = (text: string, subtitle?: string) => ({
  text: wrap(text, 55),
  ...(subtitle ? { subtitle: wrap(subtitle, 70) } : {}),
});

/** A top-level spec: the schema and the house config around a view. */
const chart = (view: object): TopLevelSpec =>
  ({ $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: CONFIG, ...view }) as TopLevelSpec;

/** A horizontal reference line at y with its label at the right end of the panel. */
function refLine(y: number, label: string) {
  return [
    {
      data: { values: [{}] }, // one line, not one per row of the panel's data
      mark: { type: 'rule', color: '#333', strokeDash: [4, 3], strokeWidth: 1.5 },
      encoding: { y: { datum: y } },
    },
    {
      data: { values: [{}] },
      mark: { type: 'text', align: 'right', baseline: 'bottom', dx: -2, dy: -3, fontSize: 12, color: '#333' },
      encoding: { y: { datum: y }, x: { value: PANEL_WIDTH }, text: { value: label } },
    },
  ];
}

/** [lo, hi] for a log axis holding every value (and 1 when `withOne`), a little beyond both ends. */
function logDomain(values: number[], withOne = false): [number, number] {
  const vs = values.filter((v) => v > 0 && Number.isFinite(v));
  if (withOne) vs.push(1);
  if (!vs.length) return [0.1, 10];
  // Quarter decades: room around the extreme points without empty decades.
  const lo = 10 ** (Math.floor(Math.log10(Math.min(...vs)) * 4) / 4);
  const hi = 10 ** (Math.ceil(Math.log10(Math.max(...vs)) * 4) / 4);
  return [lo, hi];
}

/**
 * Methods per speedup panel: like with like, at most MAX_SERIES each. A method may appear in two panels
 * (dssd-auto is the reference for adaptive γ); methods in no group here get panels of their own, MAX_SERIES at a time.
 */
export const SPEEDUP_PANELS: { title: string; methods: string[] }[] = [
  { title: 'Full distributions: DSD against DSSD', methods: ['dsd-f32', 'dsd-f16', 'dssd-f32', 'dssd-f16'] },
  {
    title: 'DSSD with compact downlink codecs',
    methods: ['dssd-sparse', 'dssd-topk', 'dssd-candidates', 'dssd-auto'],
  },
  { title: 'Fixed γ 4 against adaptive γ', methods: ['dssd-auto', 'dssd-adaptive'] },
];

function speedupPanels(methods: string[]): { title: string; methods: string[] }[] {
  const panels = SPEEDUP_PANELS.map((p) => ({ ...p, methods: p.methods.filter((m) => methods.includes(m)) }));
  const placed = new Set(panels.flatMap((p) => p.methods));
  const rest = methods.filter((m) => !placed.has(m));
  for (let i = 0; i < rest.length; i += MAX_SERIES)
    panels.push({ title: 'Other methods', methods: rest.slice(i, i + MAX_SERIES) });
  return panels.filter((p) => p.methods.length);
}

/**
 * Speedup over ar per link profile: measured (points) and the latency model (ticks), one panel per method
 * group, log y (speedups are ratios), the 1.0 line labelled.
 */
export function speedupPlot(
  name: string,
  caption: string,
  heading: string,
  subtitle: string,
  rows: Row[],
): Plot {
  const profiles = [...new Set(rows.map((r) => r.profile))];
  const methods = [...new Set(rows.map((r) => r.method))].filter((m) => m !== 'ar');
  const values = rows
    .filter((r) => r.method !== 'ar')
    .map((r) => ({
      profile: r.profile,
      method: r.method,
      measured: r.speedupVsAr,
      model: r.predictedSpeedup,
    }));
  const domain = logDomain(
    values.flatMap((v) => [v.measured ?? NaN, v.model ?? NaN]),
    true,
  );
  const y = (field: string) => ({
    field,
    type: 'quantitative' as const,
    title: 'tokens/s ÷ ar tokens/s',
    scale: { type: 'log' as const, domain },
  });
  const panel = (p: { title: string; methods: string[] }) => {
    const color = {
      field: 'method',
      type: 'nominal' as const,
      title: null,
      scale: { domain: p.methods },
      legend: { orient: 'top' as const, title: null },
    };
    const x = {
      field: 'profile',
      type: 'nominal' as const,
      sort: profiles,
      title: null,
      axis: { labelAngle: -35 },
    };
    const xOffset = { field: 'method', type: 'nominal' as const, sort: p.methods };
    return {
      title: { text: p.title, fontSize: 13 },
      width: PANEL_WIDTH,
      height: 170,
      data: { values: values.filter((v) => p.methods.includes(v.method)) },
      layer: [
        {
          mark: { type: 'tick', thickness: 2, size: 10 },
          encoding: { x, xOffset, y: y('model'), color },
        },
        {
          mark: { type: 'point', filled: true, size: 45, opacity: 1 },
          encoding: { x, xOffset, y: y('measured'), color },
        },
        ...refLine(1, 'ar = 1.0'),
      ],
    };
  };
  return {
    name,
    title: caption,
    spec: chart({
      title: title(heading, `${subtitle}; dots: measured, dashes: latency model`),
      vconcat: speedupPanels(methods).map(panel),
      resolve: { scale: { color: 'independent', xOffset: 'independent' } },
    }),
  };
}

/** Uplink and downlink application bytes per generated token per method, log y, values printed on the bars. */
export function bytesPlot(heading: string, subtitle: string, rows: Row[]): Plot {
  const methods = rows.filter((r) => r.mode !== 'ar').map((r) => r.method);
  const values = rows
    .filter((r) => r.mode !== 'ar')
    .flatMap((r) => [
      { method: r.method, direction: 'uplink', bytes: r.uplinkBytesPerToken },
      { method: r.method, direction: 'downlink', bytes: r.downlinkBytesPerToken },
    ]);
  const [lo, hi] = logDomain(values.map((v) => v.bytes));
  const enc = {
    x: { field: 'method', type: 'nominal', sort: methods, title: null, axis: { labelAngle: -30 } },
    xOffset: { field: 'direction', type: 'nominal', sort: ['uplink', 'downlink'] },
    y: {
      field: 'bytes',
      type: 'quantitative',
      title: 'bytes per token (log scale)',
      scale: { type: 'log', domain: [Math.min(lo, 1), hi * 3] },
    },
    // Log bars need an explicit base: 0 is off the scale.
    y2: { datum: Math.min(lo, 1) },
    color: { field: 'direction', type: 'nominal', title: null, sort: ['uplink', 'downlink'] },
  };
  return {
    name: 'bytes',
    title: 'Bytes per generated token',
    spec: chart({
      title: title(heading, subtitle),
      width: PANEL_WIDTH,
      height: 300,
      data: { values },
      layer: [
        { mark: { type: 'bar' }, encoding: enc },
        {
          mark: { type: 'text', baseline: 'bottom', dy: -2, fontSize: 10 },
          encoding: { ...enc, y2: undefined, color: undefined, text: { field: 'bytes', format: ',.0f' } },
        },
      ],
    }),
  };
}

/** A γ sweep: measured tokens/s (points) and the model (dashed lines) per method; ar and adaptive γ as labelled lines. */
export function gammaPlot(
  name: string,
  caption: string,
  heading: string,
  subtitle: string,
  gammas: number[],
  sweep: { method: string; gamma: number; measured: number; model: number }[],
  refs: { label: string; tokensPerSecond: number }[],
): Plot {
  const methods = [...new Set(sweep.map((s) => s.method))];
  const x = {
    field: 'gamma',
    type: 'quantitative',
    title: 'γ (drafted tokens per round)',
    scale: { domain: [Math.min(...gammas) - 0.5, Math.max(...gammas) + 0.5] },
    axis: { values: gammas, format: 'd' },
  };
  const color = { field: 'method', type: 'nominal', title: null, scale: { domain: methods } };
  const yTitle = 'tokens/s';
  const top = Math.max(...sweep.flatMap((s) => [s.measured, s.model]), ...refs.map((r) => r.tokensPerSecond));
  const yScale = { domain: [0, Number.isFinite(top) ? top * 1.12 : 1] };
  return {
    name,
    title: caption,
    spec: chart({
      title: title(heading, `${subtitle}; dots: measured, dashed lines: latency model`),
      width: PANEL_WIDTH,
      height: 260,
      data: { values: sweep },
      layer: [
        {
          mark: { type: 'line', strokeDash: [6, 4], strokeWidth: 2 },
          encoding: { x, y: { field: 'model', type: 'quantitative', title: yTitle, scale: yScale }, color },
        },
        {
          mark: { type: 'point', filled: true, size: 60, opacity: 1 },
          encoding: {
            x,
            y: { field: 'measured', type: 'quantitative', title: yTitle, scale: yScale },
            color,
          },
        },
        ...refs.flatMap((r) => refLine(r.tokensPerSecond, r.label)),
      ],
    }),
  };
}

/** P(first k drafts accepted) per position and sampling setting (all measured: points joined by lines). */
export function acceptancePlot(series: { setting: string; values: number[] }[]): Plot {
  const values = series.flatMap((s) => s.values.map((p, k) => ({ setting: s.setting, k: k + 1, p })));
  return {
    name: 'acceptance',
    title: 'Acceptance per position',
    spec: chart({
      title: title(
        'Acceptance per position of the default pair',
        'P(first k drafts accepted), pooled over exact-codec dssd rows, real CPU target; measured',
      ),
      width: PANEL_WIDTH,
      height: 240,
      data: { values },
      mark: { type: 'line', point: { filled: true, size: 50 }, strokeWidth: 2 },
      encoding: {
        x: { field: 'k', type: 'quantitative', title: 'position k', axis: { tickMinStep: 1, format: 'd' } },
        y: { field: 'p', type: 'quantitative', title: 'probability', scale: { domain: [0, 1] } },
        color: { field: 'setting', type: 'nominal', title: null, sort: series.map((s) => s.setting) },
      },
    }),
  };
}

/** PROJECTION (latency model, assumed hardware): speedup over ar per hardware pair and codec; 1.0 labelled. */
export function projectionPlot(bars: { pair: string; codec: string; speedup: number }[]): Plot {
  const pairs = [...new Set(bars.map((b) => b.pair))];
  const codecs = [...new Set(bars.map((b) => b.codec))];
  return {
    name: 'projection',
    title: 'Projection',
    spec: chart({
      title: title(
        'PROJECTION: speedup over edge-only ar on mobile-10/50 (|V| = 151,936)',
        'latency model + measured per-position acceptance of the default pair; hardware times assumed (see text)',
      ),
      width: PANEL_WIDTH,
      height: 260,
      data: { values: bars },
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            x: { field: 'pair', type: 'nominal', sort: pairs, title: null, axis: { labelAngle: 0 } },
            xOffset: { field: 'codec', type: 'nominal', sort: codecs },
            y: { field: 'speedup', type: 'quantitative', title: 'projected speedup over ar' },
            color: { field: 'codec', type: 'nominal', title: null, sort: codecs, legend: { columns: 2 } },
          },
        },
        ...refLine(1, 'ar = 1.0'),
      ],
    }),
  };
}

/** One pipelined-benchmark cell's tokens/s: measured per method, and the model's prediction for pipelined. */
export interface PipelinePoint {
  cell: string;
  setting: string;
  method: 'edge-only (ar)' | 'serial DSSD' | 'pipelined DSSD';
  tokensPerSecond: number;
  /** Model prediction (pipelined and serial rows), from costs measured in the serial run. */
  model?: number;
}

/** Pipelined vs serial DSSD vs edge-only per cell (EMULATED costs): measured as points, model as ticks. */
export function pipelinedPlot(points: PipelinePoint[], setting: string): Plot {
  const data = points.filter((p) => p.setting === setting);
  return {
    name: `pipelined-${setting}`,
    title: `Pipelined vs serial DSSD vs edge-only, ${setting} (EMULATED draft and target costs)`,
    spec: chart({
      title: title(
        `Tokens/s with emulated costs, ${setting}`,
        'cells: draft ms per token / target preset / RTT. Points measured; ticks: model from the serial run.',
      ),
      data: { values: data },
      width: PANEL_WIDTH,
      height: 300,
      layer: [
        {
          mark: { type: 'point', filled: true, size: 70 },
          encoding: {
            x: { field: 'cell', type: 'nominal', title: null, axis: { labelAngle: -30 } },
            y: { field: 'tokensPerSecond', type: 'quantitative', title: 'tokens/s (measured)' },
            color: { field: 'method', type: 'nominal', title: null },
            shape: { field: 'method', type: 'nominal', title: null },
          },
        },
        {
          transform: [{ filter: 'isValid(datum.model)' }],
          mark: { type: 'tick', thickness: 2, size: 18 },
          encoding: {
            x: { field: 'cell', type: 'nominal' },
            y: { field: 'model', type: 'quantitative' },
            color: { field: 'method', type: 'nominal', title: null },
          },
        },
      ],
    }),
  };
}

/** One capacity point (capacity.ts): tokens/s in total against devices, per method and target. */
export interface CapacityPoint {
  devices: number;
  method: string;
  target: string;
  totalTokensPerSecond: number;
  perDeviceTokensPerSecond: number;
  valid: boolean;
}

/** Capacity per target: total tokens/s (log) against devices (log), DSSD and edge-only, batched and not. */
export function capacityPlot(points: CapacityPoint[], target: string, subtitle: string): Plot {
  const data = points.filter((p) => p.target === target && p.valid);
  return {
    name: `capacity-${target.replace(/[^\w-]+/g, '-')}`,
    title: `Edge capacity, ${target}: total tokens/s against devices`,
    spec: chart({
      title: title(`Edge capacity: ${target}`, subtitle),
      data: { values: data },
      width: PANEL_WIDTH,
      height: 300,
      mark: { type: 'line', point: { filled: true, size: 60 } },
      encoding: {
        x: { field: 'devices', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'devices' },
        y: {
          field: 'totalTokensPerSecond',
          type: 'quantitative',
          scale: { type: 'log', domain: logDomain(data.map((d) => d.totalTokensPerSecond)) },
          title: 'tokens/s, all devices (measured)',
        },
        color: { field: 'method', type: 'nominal', title: null },
        shape: { field: 'method', type: 'nominal', title: null },
      },
    }),
  };
}
