/** Hand-written SVG charts (no plotting dependency): grouped bars and lines, one y axis, a legend. */

const COLORS = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function frame(
  title: string,
  subtitle: string,
  yLabel: string,
  w: number,
  h: number,
  yMax: number,
  body: string[],
  legend: string[],
): string {
  const L = 60;
  const T = 48;
  const B = h - 70;
  const ticks: string[] = [];
  for (let i = 0; i <= 5; i++) {
    const v = (yMax * i) / 5;
    const y = B - ((B - T) * i) / 5;
    ticks.push(
      `<line x1="${L}" x2="${w - 10}" y1="${y}" y2="${y}" stroke="#ddd"/>` +
        `<text x="${L - 6}" y="${y + 4}" text-anchor="end">${+v.toPrecision(3)}</text>`,
    );
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${L}" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="${L}" y="34" fill="#555">${esc(subtitle)}</text>`,
    ...ticks,
    `<text transform="translate(14 ${(T + B) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    ...body,
    `<line x1="${L}" x2="${w - 10}" y1="${B}" y2="${B}" stroke="#333"/>`,
    ...legend,
    `</svg>`,
  ].join('\n');
}

function legendRow(names: string[], w: number, y: number, colors?: number[]): string[] {
  const out: string[] = [];
  let x = 60;
  let yy = y;
  for (let i = 0; i < names.length; i++) {
    const width = 24 + names[i].length * 6.2;
    if (x + width > w - 10) {
      x = 60;
      yy += 14;
    }
    out.push(
      `<rect x="${x}" y="${yy - 9}" width="10" height="10" fill="${COLORS[(colors?.[i] ?? i) % COLORS.length]}"/>` +
        `<text x="${x + 14}" y="${yy}">${esc(names[i])}</text>`,
    );
    x += width;
  }
  return out;
}

/** Grouped bars: groups along x, one bar per series; NaN leaves a gap. refLine draws a dashed y = value. */
export function barChart(o: {
  title: string;
  subtitle: string;
  yLabel: string;
  groups: string[];
  series: { name: string; values: number[] }[];
  refLine?: number;
  width?: number;
}): string {
  const w = o.width ?? Math.max(640, 60 + o.groups.length * (o.series.length * 9 + 24));
  const h = 380;
  const L = 60;
  const T = 48;
  const B = h - 70;
  const yMax = niceMax(
    Math.max(o.refLine ?? 0, ...o.series.flatMap((s) => s.values.filter(Number.isFinite))),
  );
  const gw = (w - 10 - L) / o.groups.length;
  const bw = Math.min(16, (gw - 10) / o.series.length);
  const body: string[] = [];
  o.groups.forEach((g, gi) => {
    const x0 = L + gi * gw + (gw - bw * o.series.length) / 2;
    o.series.forEach((s, si) => {
      const v = s.values[gi];
      if (!Number.isFinite(v)) return;
      const y = B - ((B - T) * v) / yMax;
      body.push(
        `<rect x="${(x0 + si * bw).toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${(B - y).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${s.name} ${g}: ${+v.toPrecision(4)}`)}</title></rect>`,
      );
    });
    body.push(
      `<text x="${(L + gi * gw + gw / 2).toFixed(1)}" y="${B + 14}" text-anchor="middle">${esc(g)}</text>`,
    );
  });
  if (o.refLine !== undefined) {
    const y = B - ((B - T) * o.refLine) / yMax;
    body.push(`<line x1="${L}" x2="${w - 10}" y1="${y}" y2="${y}" stroke="#000" stroke-dasharray="4 3"/>`);
  }
  return frame(
    o.title,
    o.subtitle,
    o.yLabel,
    w,
    h,
    yMax,
    body,
    legendRow(
      o.series.map((s) => s.name),
      w,
      B + 34,
    ),
  );
}

/** Lines over numeric x; `dashed` series are drawn dashed (e.g. the model's prediction). */
export function lineChart(o: {
  title: string;
  subtitle: string;
  yLabel: string;
  xLabel: string;
  xs: number[];
  series: { name: string; values: number[]; dashed?: boolean; color?: number }[];
  width?: number;
}): string {
  const w = o.width ?? 640;
  const h = 380;
  const L = 60;
  const T = 48;
  const B = h - 70;
  const R = w - 20;
  const yMax = niceMax(Math.max(...o.series.flatMap((s) => s.values.filter(Number.isFinite))));
  const xMin = Math.min(...o.xs);
  const xMax = Math.max(...o.xs);
  const X = (x: number) =>
    xMax === xMin ? (L + R) / 2 : L + 10 + ((R - L - 20) * (x - xMin)) / (xMax - xMin);
  const Y = (y: number) => B - ((B - T) * y) / yMax;
  const body: string[] = o.xs.map(
    (x) => `<text x="${X(x).toFixed(1)}" y="${B + 14}" text-anchor="middle">${x}</text>`,
  );
  body.push(`<text x="${(L + R) / 2}" y="${B + 28}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  o.series.forEach((s, si) => {
    const c = COLORS[(s.color ?? si) % COLORS.length];
    const pts = o.xs
      .map((x, i) => [x, s.values[i]] as const)
      .filter(([, y]) => Number.isFinite(y))
      .map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`);
    if (!pts.length) return;
    body.push(
      `<polyline points="${pts.join(' ')}" fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
    );
    for (const p of pts) {
      const [x, y] = p.split(',');
      body.push(`<circle cx="${x}" cy="${y}" r="3" fill="${c}"/>`);
    }
  });
  const legend = legendRow(
    o.series.map((s) => s.name + (s.dashed ? ' (model)' : '')),
    w,
    B + 46,
    o.series.map((s, i) => s.color ?? i),
  );
  return frame(o.title, o.subtitle, o.yLabel, w, h + 10, yMax, body, legend);
}
