/**
 * Micro-benchmark (issue 17): one batched target pass for N sessions with histories spread over [50, 400] against
 * N separate passes, γ + 1 = 5 new tokens each (a verify round). Prints one JSON line; per session-round ms and the
 * ratio separate / batched (target ≥ 1.5). `-- --sessions 32 --reps 20 --threads 1` (defaults; separate
 * passes always use one thread, so --threads 2 is not like for like); each rep rolls both back.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_MODEL_DIRS, loadNodeModel } from '../src/node.js';

const { values: v } = parseArgs({
  options: {
    sessions: { type: 'string', default: '32' },
    reps: { type: 'string', default: '20' },
    threads: { type: 'string', default: '1' },
  },
});
const N = Number(v.sessions);
const reps = Number(v.reps);
const K = 5;
const m = await loadNodeModel(DEFAULT_MODEL_DIRS.target);
const threads = Number(v.threads);
const slab = await m.createSlab(N, { threads });
const hist = Array.from({ length: N }, (_, i) => 50 + Math.round((350 * i) / Math.max(1, N - 1)));
const ids = (s: number, n: number) => Array.from({ length: n }, (_, j) => (s * 131 + j * 17 + 3) % 4000);
const singles = hist.map(() => m.createSession());
const rows = hist.map(() => slab.acquire());
for (let i = 0; i < N; i++) {
  await singles[i].forward(ids(i, hist[i]), { keep: 1 });
  await rows[i].forward(ids(i, hist[i]));
}
const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sep: number[] = [];
const bat: number[] = [];
for (let r = 0; r < reps; r++) {
  let t0 = performance.now();
  for (let i = 0; i < N; i++) await singles[i].forward(ids(r + i, K));
  sep.push(performance.now() - t0);
  t0 = performance.now();
  await slab.run(rows.map((session, i) => ({ session, tokens: ids(r + i, K) })));
  bat.push(performance.now() - t0);
  for (let i = 0; i < N; i++) {
    singles[i].truncate(hist[i]);
    rows[i].truncate(hist[i]);
  }
}
const s = median(sep);
const b = median(bat);
console.log(
  JSON.stringify({
    sessions: N,
    histories: [hist[0], hist[N - 1]],
    newTokens: K,
    batchedThreads: threads,
    reps,
    separateMsPerSessionRound: +(s / N).toFixed(3),
    batchedMsPerSessionRound: +(b / N).toFixed(3),
    batchedPassMs: +b.toFixed(2),
    ratio: +(s / b).toFixed(2),
  }),
);
