// Codec throughput: `npx tsc -b packages/codec && node packages/codec/dist/bench/codec-bench.js`.
// Prints M values/s for distribution encodings of a 128k-entry P_j and MB/s for CRC-32C. Not a test.
import {
  crc32c,
  decodeDistribution,
  decodeF16,
  decodeFrame,
  encodeDistribution,
  encodeF16,
  encodeFrame,
  type Frame,
} from '../src/index.js';

const V = 128 * 1024;

/** Best-of-5 seconds per call, each sample running for at least ~100 ms. */
function time(fn: () => unknown): number {
  let reps = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    if (performance.now() - t0 > 100) break;
    reps *= 2;
  }
  let best = Infinity;
  for (let s = 0; s < 5; s++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    best = Math.min(best, (performance.now() - t0) / 1000 / reps);
  }
  return best;
}

function rate(label: string, values: number, fn: () => unknown, unit = 'M values/s'): void {
  const s = time(fn);
  console.log(
    `${label.padEnd(40)} ${(values / s / 1e6).toFixed(1).padStart(8)} ${unit}   (${(s * 1e6).toFixed(0)} µs/call)`,
  );
}

// A softmax-like P with full support (its tail spans normal, subnormal and zero halves), and a top-10 one.
let seed = 12345;
const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
const full = new Float32Array(V);
const w = Float64Array.from({ length: V }, () => Math.exp(-20 * rand()));
const sum = w.reduce((a, b) => a + b, 0);
for (let i = 0; i < V; i++) full[i] = w[i] / sum;
const top10 = new Float32Array(V);
for (let k = 0; k < 10; k++) top10[Math.floor(rand() * V)] = 0.1;

const halves = new Uint16Array(V);
const back = new Float32Array(V);
rate('f16 encode (encodeF16)', V, () => encodeF16(full, halves));
rate('f16 decode (decodeF16)', V, () => decodeF16(halves, back));
rate('f16 encode+decode (bulk)', V, () => {
  encodeF16(full, halves);
  decodeF16(halves, back);
});
for (const enc of ['f16', 'f32', 'sparse'] as const) {
  const body = encodeDistribution(full, enc);
  rate(`${enc} encodeDistribution (full support)`, V, () => encodeDistribution(full, enc));
  rate(`${enc} decodeDistribution (full support)`, V, () => decodeDistribution(body, V));
}
const sparse10 = encodeDistribution(top10, 'sparse');
rate('sparse encodeDistribution (support 10)', V, () => encodeDistribution(top10, 'sparse'));
rate('sparse decodeDistribution (support 10)', V, () => decodeDistribution(sparse10, V));
rate('auto encodeDistribution (support 10)', V, () => encodeDistribution(top10, 'auto'));

const frame: Frame = { kind: 'verdict', outcome: 'reject', j: 3, body: { encoding: 'f16', p: full } };
const bytes = encodeFrame(frame, { sessionId: 1, round: 1, vocabSize: V });
rate('verdict(f16) encodeFrame', V, () => encodeFrame(frame, { sessionId: 1, round: 1, vocabSize: V }));
rate('verdict(f16) decodeFrame', V, () => decodeFrame(bytes, { vocabSize: V }));

const buf = new Uint8Array(1 << 20);
for (let i = 0; i < buf.length; i++) buf[i] = i * 31;
rate('CRC-32C (1 MiB)', buf.length, () => crc32c(buf), 'MB/s');
