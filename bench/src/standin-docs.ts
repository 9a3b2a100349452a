/**
 * The stand-in pair's section of docs/benchmarks.md (`npm run bench -- --pair qwen3-standin --docs`): DSSD
 * against DSD tokens/s at |V| = 151,936 on the 10 Mbps-uplink profiles, between its own markers above the
 * generated part (which stays the default pair's).
 */
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './paths.js';
import type { Row } from './rows.js';

const START = '<!-- qwen3-standin:start -->';
const END = '<!-- qwen3-standin:end -->';

const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

/** The section's Markdown from the rows of one run. */
export function standinSection(rows: Row[], meta: Record<string, unknown>, results: string): string {
  const lines = [
    '## DSSD vs DSD at |V| = 151,936 (Qwen3-vocabulary stand-in)',
    '',
    `One run of \`${String(meta.command)}\` (${Array.isArray(meta.prompts) ? meta.prompts.length : '?'} chat ` +
      `prompts × ${String(meta.maxNewTokens)} tokens per row, ${String(meta.cpus ?? '')}, ` +
      `${String(meta.finished ?? meta.started ?? '')}): the generated stand-in pair (\`npm run models:standin\`: ` +
      'Qwen3 tokenizer, 151,936 logits rows, fp16 KV caches) with its 4-bit draft, over the transport shaper. ' +
      "At this vocabulary a DSD draft frame carries γ full distributions (f32: 608 KB per drafted token), DSSD's " +
      'one id and one q per drafted token. Rows with an `emulated` target pad each target pass to the edge-7b ' +
      'preset (EMULATION of a 7B target on an edge GPU); `cpu` rows use the stand-in target as it is.',
    '',
    '| target | profile | method | γ | tokens/s | × ar | uplink B/token | downlink B/token | α |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const sorted = [...rows].sort(
    (a, b) =>
      a.target.localeCompare(b.target) ||
      a.profile.localeCompare(b.profile) ||
      a.method.localeCompare(b.method),
  );
  for (const r of sorted) {
    lines.push(
      `| ${r.target === 'emulated' ? 'emulated (EMULATION)' : 'cpu'} | ${r.profile} | ${r.method}` +
        `${r.lossy ? ' (lossy)' : ''} | ${r.gamma} | ${f(r.tokensPerSecond)} | ` +
        `${r.speedupVsAr === null ? '–' : '×' + f(r.speedupVsAr, 2)} | ${f(r.uplinkBytesPerToken, 0)} | ` +
        `${f(r.downlinkBytesPerToken, 0)} | ${r.mode === 'ar' ? '–' : f(r.alpha, 2)} |`,
    );
  }
  lines.push('');
  // The headline per cell: the fastest exact DSSD row against each DSD uplink precision.
  const cells = new Map<string, Row[]>();
  for (const r of rows) {
    const k = `${r.target}|${r.profile}`;
    cells.set(k, [...(cells.get(k) ?? []), r]);
  }
  for (const [k, rs] of cells) {
    const dssd = rs
      .filter((r) => r.mode === 'dssd' && !r.lossy)
      .sort((a, b) => b.tokensPerSecond - a.tokensPerSecond)[0];
    const dsds = rs.filter((r) => r.mode === 'dsd').sort((a, b) => a.method.localeCompare(b.method));
    if (!dssd || dsds.length === 0) continue;
    const [target, profile] = k.split('|');
    const vs = dsds.map(
      (d) =>
        `${d.method}${d.lossy ? ' (lossy)' : ''} ${f(d.tokensPerSecond)} tok/s, uplink ` +
        `${f(d.uplinkBytesPerToken, 0)} B/token: **×${f(dssd.tokensPerSecond / d.tokensPerSecond, 1)}**`,
    );
    lines.push(
      `- ${target === 'emulated' ? 'emulated target (EMULATION)' : 'cpu target'}, ${profile}: ${dssd.method} ` +
        `${f(dssd.tokensPerSecond)} tok/s (uplink ${f(dssd.uplinkBytesPerToken, 0)} B/token) vs ${vs.join('; vs ')}.`,
    );
  }
  lines.push('', `Results: \`${path.relative(REPO_ROOT, results)}\` and its report next to it.`);
  return lines.join('\n');
}

/** Writes (or replaces) the section in docs/benchmarks.md; returns the file's path. */
export function writeStandinDocs(rows: Row[], meta: Record<string, unknown>, out: string): string {
  const docs = path.join(REPO_ROOT, 'docs/benchmarks.md');
  const text = fs.existsSync(docs) ? fs.readFileSync(docs, 'utf8') : '# Benchmarks\n';
  const section = `${START}\n\n${standinSection(rows, meta, out)}\n\n${END}`;
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  let next: string;
  if (a >= 0 && b > a) next = text.slice(0, a) + section + text.slice(b + END.length);
  else {
    // Above the generated part, which `npm run bench -- --docs` rewrites.
    const m = /\n<!-- generated[^\n]*-->/.exec(text);
    next = m
      ? `${text.slice(0, m.index)}\n${section}\n${text.slice(m.index)}`
      : `${text.trimEnd()}\n\n${section}\n`;
  }
  fs.writeFileSync(docs, next);
  return path.relative(process.cwd(), docs);
}
