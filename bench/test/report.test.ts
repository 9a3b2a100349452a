import test from 'node:test';
import assert from 'node:assert/strict';
import { pairedRatioInterval } from '../src/report.js';
import type { Row } from '../src/rows.js';
import { standinSection } from '../src/standin-docs.js';

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

test('pooling replicates: per-prompt figures concatenate, the ratio is of pooled totals', async () => {
  const { pooledAdaptiveReport } = await import('../src/report.js');
  const { SHAPING_SIMULATED } = await import('../src/rows.js');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const mk = (method: string, gamma: number, wall: number[]) =>
    ({
      key: `${method}|${gamma}|rtt20-50M|t1|cpu|${SHAPING_SIMULATED}|128`,
      method,
      mode: 'dssd',
      adaptive: method === 'dssd-adaptive',
      lossy: false,
      gamma,
      profile: 'rtt20-50M',
      setting: 't1',
      target: 'cpu',
      targetMs: null,
      shaping: SHAPING_SIMULATED,
      prompts: wall.length,
      generatedTokens: 100 * wall.length,
      wallMs: wall.reduce((a, b) => a + b, 0),
      tokensPerSecond: (1000 * 100 * wall.length) / wall.reduce((a, b) => a + b, 0),
      perPromptTokensPerSecond: wall.map((w) => (1000 * 100) / w),
      perPromptTokens: wall.map(() => 100),
      perPromptWallMs: wall,
      rounds: 10 * wall.length,
      roundsByGamma: [],
      meanGamma: gamma,
      acceptancePerPosition: [],
      speedupVsAr: null,
      predictedTokensPerSecond: 0,
    }) as unknown as Row;
  // Replicate 1 favours γ 8 over adaptive, replicate 2 the other way round; pooled they tie.
  const rep = (w8: number[], wa: number[]) => ({
    meta: { command: 'test', prompts: [1, 2, 3, 4], maxNewTokens: 100 },
    rows: [
      mk('dssd-auto', 2, [3000, 3000, 3000, 3000]),
      mk('dssd-auto', 4, [2000, 2000, 2000, 2000]),
      mk('dssd-auto', 6, [1500, 1500, 1500, 1500]),
      mk('dssd-auto', 8, w8),
      mk('dssd-adaptive', 8, wa),
    ],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pool-'));
  const md = pooledAdaptiveReport(
    [
      { path: path.join(dir, 'a.json'), results: rep([1000, 1000, 1000, 1000], [1100, 1100, 1100, 1100]) },
      { path: path.join(dir, 'b.json'), results: rep([1100, 1100, 1100, 1100], [1000, 1000, 1000, 1000]) },
    ],
    path.join(dir, 'a-pooled.md'),
  );
  const line = md.split('\n').find((l) => l.startsWith('| cpu rtt20-50M t1'));
  assert.ok(line, md);
  const cells = line.split('|').map((c) => c.trim());
  assert.equal(cells[2], '8'); // best fixed γ
  assert.equal(cells[5], '1.000'); // pooled adaptive / best
  assert.equal(fs.readFileSync(path.join(dir, 'a-pooled.md'), 'utf8'), md);
});

test('stand-in section: every row, and the fastest exact DSSD row against each DSD precision per cell', () => {
  const r = (method: string, mode: string, tps: number, up: number, lossy = false) =>
    ({
      method,
      mode,
      lossy,
      gamma: mode === 'ar' ? 0 : 4,
      target: 'cpu',
      profile: 'rtt20-10M',
      tokensPerSecond: tps,
      speedupVsAr: tps / 100,
      uplinkBytesPerToken: up,
      downlinkBytesPerToken: 10,
      alpha: 0.5,
    }) as unknown as Row;
  const rows = [
    r('ar', 'ar', 100, 10),
    r('dsd-f32', 'dsd', 1, 1_062_495),
    r('dsd-f16', 'dsd', 2, 531_265, true),
    r('dssd-candidates', 'dssd', 27, 51),
    r('dssd-f16', 'dssd', 40, 43, true), // lossy: never the headline
  ];
  const md = standinSection(
    rows,
    { command: 'npm run bench -- --pair qwen3-standin', prompts: [1], maxNewTokens: 8 },
    '/x.json',
  );
  assert.equal(md.split('\n').filter((l) => l.startsWith('| cpu |')).length, 5);
  assert.match(
    md,
    /dssd-candidates 27\.0 tok\/s \(uplink 51 B\/token\) vs dsd-f16 \(lossy\) 2\.0 tok\/s.*\*\*×13\.5\*\*; vs dsd-f32 1\.0 tok\/s.*\*\*×27\.0\*\*/,
  );
});
