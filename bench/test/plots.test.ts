// The plot specs built from the committed default-grid results: house rules checked on the Vega-Lite objects,
// then rendered to SVG with vega.
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../src/paths.js';
import { reportSections } from '../src/report.js';
import { MAX_SERIES, type Plot } from '../src/plots.js';
import { renderSvg } from '../src/render.js';
import type { Row } from '../src/rows.js';

const results = JSON.parse(
  fs.readFileSync(path.join(REPO_ROOT, 'bench/results/2026-11-28.json'), 'utf8'),
) as { meta: Record<string, unknown>; rows: Row[] };
const { plots } = reportSections(results);

type Node = {
  data?: { values?: Record<string, unknown>[] };
  encoding?: Record<string, { field?: string; scale?: { type?: string } } | undefined>;
  layer?: Node[];
  vconcat?: Node[];
  hconcat?: Node[];
  concat?: Node[];
};

/** Every view of a spec with the data it draws (inline values, inherited from the enclosing view). */
function views(
  n: Node,
  data: Record<string, unknown>[] = [],
): { view: Node; data: Record<string, unknown>[] }[] {
  const d = n.data?.values ?? data;
  const kids = [...(n.layer ?? []), ...(n.vconcat ?? []), ...(n.hconcat ?? []), ...(n.concat ?? [])];
  return [{ view: n, data: d }, ...kids.flatMap((k) => views(k, d))];
}

/** Distinct colour series per panel (a concat member or a top-level chart). */
function seriesPerPanel(p: Plot): number[] {
  const spec = p.spec as Node;
  const panels = spec.vconcat ?? spec.hconcat ?? spec.concat ?? [spec];
  return panels.map((panel) => {
    const names = new Set<unknown>();
    for (const { view, data } of views(panel, spec.data?.values)) {
      const field = view.encoding?.color?.field;
      if (field) for (const row of data) names.add(row[field]);
    }
    return names.size;
  });
}

const plot = (name: string) => {
  const p = plots.find((x) => x.name === name);
  assert.ok(p, `no ${name} plot among ${plots.map((x) => x.name).join(', ')}`);
  return p;
};

test('plots: the bytes plot has a logarithmic y scale', () => {
  const ys = views(plot('bytes').spec as Node)
    .map(({ view }) => view.encoding?.y)
    .filter((y) => y?.field === 'bytes');
  assert.ok(ys.length > 0);
  for (const y of ys) assert.equal(y!.scale?.type, 'log');
});

test('plots: no panel has more than four series; the speedup plots keep every method', () => {
  assert.equal(plots.length, 9);
  for (const p of plots) {
    const counts = seriesPerPanel(p);
    assert.ok(counts.length > 0 && counts.every((c) => c <= MAX_SERIES), `${p.name}: ${counts.join(', ')}`);
  }
  // The default grid has 9 methods besides ar: split into panels, none dropped.
  const speedup = plot('speedup-cpu').spec as Node;
  const methods = new Set(
    (speedup.vconcat ?? []).flatMap((panel) => (panel.data?.values ?? []).map((v) => v.method)),
  );
  assert.equal(methods.size, 9);
  assert.ok(seriesPerPanel(plot('speedup-cpu')).length >= 3);
});

test('plots: render to SVG with the labelled 1.0 reference line and no wider than a docs column', async () => {
  const svg = await renderSvg(plot('speedup-emulated').spec);
  assert.match(svg, /^<svg /);
  assert.match(svg, /ar = 1\.0/);
  const width = Number(/width="(\d+)"/.exec(svg)![1]);
  assert.ok(width <= 720, `width ${width}`);
});
