/**
 * A digest of processLogits outputs over seeded inputs, for checking that Node and browsers compute the same
 * bits. Test-only and self-contained apart from the kernel itself, so it can be bundled (esbuild) and run in a
 * page: compare processDigest() there with the value Node prints (packages/kernel/test-browser/).
 */
import { expNonPositive, processLogits } from '../src/index.js';
import type { SamplingParams } from '../src/index.js';
import { mulberry32 } from './helpers.js';

/**
 * Logits built with integer arithmetic and exact float32 values only (no Math.log/exp, whose last bit may differ
 * between engines): a Zipf-like staircase over a random permutation, plus ties and masked tokens.
 */
function seededLogits(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed); // integer-only, so identical everywhere
  const l = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rand();
    l[i] = u < 0.01 ? -Infinity : Math.fround(-Math.floor(u * 4096) / 256 - (u < 0.001 ? 0 : 2));
  }
  for (let k = 0; k < 64; k++) l[Math.floor(rand() * n)] = Math.fround(rand() * 8); // a head of likely tokens
  return l;
}

/** processDigest() as computed in Node (and by the original implementation); browsers must match it. */
export const NODE_DIGEST = 'd30c8e46';

const DIGEST_PARAMS: SamplingParams[] = [
  { temperature: 1, topK: 0, topP: 1 },
  { temperature: 0.7, topK: 50, topP: 1 },
  { temperature: 1, topK: 0, topP: 0.9 },
  { temperature: 1.3, topK: 40, topP: 0.8 },
  { temperature: 0.05, topK: 0, topP: 1 },
];

/**
 * FNV-1a over the bits of expNonPositive on a grid and of every processed distribution; 8 hex digits. `process` defaults to the
 * kernel's processLogits (the test passes the reference implementation too).
 */
export function processDigest(
  process: (logits: Float32Array, params: SamplingParams) => Float32Array = processLogits,
  vocab = 151_936,
  seeds = 3,
): string {
  let h = 0x811c9dc5;
  // The defining exp's own bits first (quantised outputs hide most last-bit differences): x = −k/64, exact
  // values from 0 down past the smallest subnormal.
  const e = new Float64Array(1);
  const words = new Uint32Array(e.buffer);
  for (let k = 0; k <= 48_000; k++) {
    e[0] = expNonPositive(-k / 64);
    h = Math.imul(h ^ words[0], 0x01000193) >>> 0;
    h = Math.imul(h ^ words[1], 0x01000193) >>> 0;
  }
  for (let seed = 1; seed <= seeds; seed++) {
    const logits = seededLogits(vocab, seed);
    for (const p of DIGEST_PARAMS) {
      const q = process(logits, p);
      const bits = new Uint32Array(q.buffer, q.byteOffset, q.length);
      for (let i = 0; i < bits.length; i++) {
        h = Math.imul(h ^ bits[i], 0x01000193) >>> 0;
      }
    }
  }
  return h.toString(16).padStart(8, '0');
}
