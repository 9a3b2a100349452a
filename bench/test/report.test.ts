import test from 'node:test';
import assert from 'node:assert/strict';
import { luckAdjustedTokensPerSecond, pairedRatioInterval } from '../src/report.js';
import type { Row } from '../src/rows.js';

const row = (tokens: number[], wallMs: number[]) =>
  ({ perPromptTokens: tokens, perPromptWallMs: wallMs }) as unknown as Row;

test('paired ratio interval: exact for a constant ratio, absent without per-prompt figures', () => {
  const b = row([128, 128, 100, 128, 64], [1000, 2000, 900, 1500, 700]);
  const a = row(
    b.perPromptTokens!,
    b.perPromptWallMs!.map((w) => w / 1.25),
  );
  const [lo, hi] = pairedRatioInterval(a, b)!;
  assert.ok(Math.abs(lo - 1.25) < 1e-12 && Math.abs(hi - 1.25) < 1e-12, `${lo}–${hi}`);
  assert.equal(pairedRatioInterval(row([1, 1, 1], [1, 1, 1]), row([1, 1, 1], [1, 1, 1])), null);
  assert.equal(pairedRatioInterval({} as Row, b), null);
});

test('paired ratio interval: brackets the ratio of totals and narrows as prompts are added', () => {
  // Prompt i of a is slower than prompt i of b by a factor in [0.8, 1.2] that varies with i.
  const make = (n: number) => {
    const tb = Array.from({ length: n }, () => 128);
    const wb = Array.from({ length: n }, (_, i) => 1000 + 37 * (i % 11));
    const wa = wb.map((w, i) => w * (0.8 + (0.4 * ((i * 7) % 13)) / 12));
    return { a: row(tb, wa), b: row(tb, wb), ratio: sum(wb) / sum(wa) };
  };
  const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
  const small = make(8);
  const large = make(128);
  const [l1, h1] = pairedRatioInterval(small.a, small.b)!;
  const [l2, h2] = pairedRatioInterval(large.a, large.b)!;
  assert.ok(l1 < small.ratio && small.ratio < h1, `${l1} < ${small.ratio} < ${h1}`);
  assert.ok(l2 < large.ratio && large.ratio < h2, `${l2} < ${large.ratio} < ${h2}`);
  assert.ok(h2 - l2 < (h1 - l1) / 2, `128 prompts (${h2 - l2}) vs 8 (${h1 - l1})`);
});

test('luck-adjusted tokens/s: expected tokens per round at each γ over the measured wall time', () => {
  const A = [0.8, 0.6, 0.4, 0.2]; // P(first k accepted)
  const r = { roundsByGamma: [0, 0, 3, 0, 2], wallMs: 500 } as unknown as Row;
  // γ 2: 1 + 0.8 + 0.6 = 2.4 tokens per round; γ 4: 1 + 0.8 + 0.6 + 0.4 + 0.2 = 3.0.
  const want = (1000 * (3 * 2.4 + 2 * 3.0)) / 500;
  assert.ok(Math.abs(luckAdjustedTokensPerSecond(r, A)! - want) < 1e-9);
  assert.equal(luckAdjustedTokensPerSecond(r, A.slice(0, 3)), null, 'A shorter than the longest draft');
  assert.equal(luckAdjustedTokensPerSecond({ wallMs: 500 } as Row, A), null, 'no round counts');
});
