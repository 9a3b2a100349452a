/**
 * The 'grid' body: an exact distribution whose entries all lie on the 2^-24 grid, entropy-coded. The kernel's
 * processing outputs exactly such distributions (p_i = u_i·2^-24, integer u_i), so every P_j the edge sends
 * qualifies. Each u_i is written as its bit length c = ⌈log2(u_i + 1)⌉ ∈ 0..25 in a canonical Huffman code fitted
 * to this body, then the c − 1 bits below its leading one (they carry no redundancy worth coding). Full-support
 * distributions shrink about threefold against f32 (the default pair at temperature 1: ≈ 5.2 KB for 16 KB), and
 * long tails of tiny entries far more.
 *
 *   [0] tag  [1, 14) 26 code lengths of classes 0..25, 4 bits each, LSB-first (0: class absent)
 *   [14..)  the |V| entries in id order, LSB-first: the class's code (≤ 15 bits, bit-reversed canonical Huffman),
 *           then c − 1 mantissa bits; zero padding to the byte.
 *
 * Decoding is strict: over-subscribed or empty codes, unassigned code words, entries above 1, truncation,
 * trailing bytes, non-zero padding and code lengths other than the entries' own Huffman code are all refused, so
 * each distribution has exactly one encoding.
 */
import { fail } from './errors.js';

/** Grid units in probability 1. */
export const GRID_UNITS = 2 ** 24;
const UNIT = 2 ** -24;
const CLASSES = 26;
const MAX_CODE_BITS = 15;
const HEADER_BYTES = 1 + Math.ceil((CLASSES * 4) / 8);

/** What sizing and encoding need from one pass over `p`; null when an entry is off the grid (or -0). */
export interface GridStats {
  hist: Float64Array;
  mantissaBits: number;
  nonZero: number;
}

/** One pass: per-class counts, mantissa bits and nonzero count, or null if some entry is not u·2^-24, 0 ≤ u ≤ 2^24. */
export function gridStats(p: Float32Array): GridStats | null {
  const hist = new Float64Array(CLASSES);
  let mantissaBits = 0;
  for (let i = 0; i < p.length; i++) {
    const u = p[i] * GRID_UNITS;
    if (!(u >= 0 && u <= GRID_UNITS && u === Math.floor(u))) return null;
    if (u === 0 && 1 / u < 0) return null; // -0 would come back as +0
    const c = 32 - Math.clz32(u);
    hist[c]++;
    if (c > 1) mantissaBits += c - 1;
  }
  return { hist, mantissaBits, nonZero: p.length - hist[0] };
}

/** gridStats(p), or BadArgument when an entry is off the grid. */
export function requireGridStats(p: Float32Array): GridStats {
  const stats = gridStats(p);
  if (!stats) fail('BadArgument', "'grid' encoding needs every entry to be a multiple of 2^-24 in [0, 1]");
  return stats;
}

/**
 * Huffman code lengths (≤ 15 bits) for the classes with nonzero count. A lone class gets length 1. Should the
 * optimal code exceed 15 bits (counts skewed like a Fibonacci sequence), counts are halved and the code rebuilt:
 * the body stays exact, only a little larger.
 */
export function gridCodeLengths(hist: ArrayLike<number>): Uint8Array {
  const lengths = new Uint8Array(CLASSES);
  let counts = Array.from(hist, (h) => h);
  const used = counts.flatMap((h, c) => (h > 0 ? [c] : []));
  if (used.length === 0) return lengths;
  if (used.length === 1) {
    lengths[used[0]] = 1;
    return lengths;
  }
  for (;;) {
    // Nodes: weight and the classes below them; merging two lightest deepens every class under both.
    let nodes = used.map((c) => ({ w: counts[c], leaves: [c] }));
    lengths.fill(0);
    while (nodes.length > 1) {
      nodes.sort((a, b) => a.w - b.w || a.leaves[0] - b.leaves[0]);
      const [a, b] = nodes;
      for (const c of a.leaves) lengths[c]++;
      for (const c of b.leaves) lengths[c]++;
      nodes = [{ w: a.w + b.w, leaves: a.leaves.concat(b.leaves) }, ...nodes.slice(2)];
    }
    if (Math.max(...lengths) <= MAX_CODE_BITS) return lengths;
    counts = counts.map((h) => (h > 0 ? Math.max(1, Math.floor(h / 2)) : 0));
  }
}

/** Canonical code words, bit-reversed for LSB-first output (as in DEFLATE). */
function canonicalReversed(lengths: Uint8Array): Uint16Array {
  const codes = new Uint16Array(CLASSES);
  let code = 0;
  for (let len = 1; len <= MAX_CODE_BITS; len++) {
    for (let c = 0; c < CLASSES; c++) {
      if (lengths[c] !== len) continue;
      let r = 0;
      for (let k = 0; k < len; k++) r |= ((code >>> k) & 1) << (len - 1 - k);
      codes[c] = r;
      code++;
    }
    code <<= 1;
  }
  return codes;
}

/** Bytes of the grid body of a distribution with these stats. */
export function gridBodySize(stats: GridStats): number {
  const lengths = gridCodeLengths(stats.hist);
  let bits = stats.mantissaBits;
  for (let c = 0; c < CLASSES; c++) bits += stats.hist[c] * lengths[c];
  return HEADER_BYTES + Math.ceil(bits / 8);
}

/** Encodes `p` (every entry on the grid: see gridStats) as a grid body with tag byte `tag`. */
export function encodeGrid(p: Float32Array, tag: number, stats = requireGridStats(p)): Uint8Array {
  const lengths = gridCodeLengths(stats.hist);
  const codes = canonicalReversed(lengths);
  const out = new Uint8Array(gridBodySize(stats));
  out[0] = tag;
  for (let c = 0; c < CLASSES; c++) out[1 + (c >> 1)] |= lengths[c] << ((c & 1) * 4);
  // Bytes are flushed after the code and after the mantissa, so at most 7 pending bits + 24 new ones (< 2^31).
  let acc = 0;
  let n = 0;
  let o = HEADER_BYTES;
  for (let i = 0; i < p.length; i++) {
    const u = p[i] * GRID_UNITS;
    const c = 32 - Math.clz32(u);
    acc |= codes[c] << n;
    n += lengths[c];
    while (n >= 8) {
      out[o++] = acc & 0xff;
      acc >>>= 8;
      n -= 8;
    }
    if (c > 1) {
      acc |= (u & ((1 << (c - 1)) - 1)) << n;
      n += c - 1;
      while (n >= 8) {
        out[o++] = acc & 0xff;
        acc >>>= 8;
        n -= 8;
      }
    }
  }
  if (n > 0) out[o++] = acc;
  return out;
}

/** Decodes a grid body (tag at [0], not checked here) of `vocabSize` entries. */
export function decodeGrid(bytes: Uint8Array, vocabSize: number): Float32Array {
  if (bytes.length < HEADER_BYTES)
    fail('Truncated', `grid body: ${bytes.length} bytes, header needs ${HEADER_BYTES}`);
  const lengths = new Uint8Array(CLASSES);
  let kraft = 0;
  let maxLen = 0;
  for (let c = 0; c < CLASSES; c++) {
    const len = (bytes[1 + (c >> 1)] >>> ((c & 1) * 4)) & 0xf;
    lengths[c] = len;
    if (len > 0) kraft += 2 ** (MAX_CODE_BITS - len);
    maxLen = Math.max(maxLen, len);
  }
  if (maxLen === 0) fail('BadValue', 'grid body: no class has a code');
  if (kraft > 2 ** MAX_CODE_BITS) fail('BadValue', 'grid body: code lengths are over-subscribed');
  // Lookup on the next maxLen bits: class << 4 | code length; unassigned words stay 0xffff.
  const codes = canonicalReversed(lengths);
  const table = new Uint16Array(1 << maxLen).fill(0xffff);
  for (let c = 0; c < CLASSES; c++) {
    const len = lengths[c];
    if (len === 0) continue;
    for (let k = codes[c]; k < table.length; k += 1 << len) table[k] = (c << 4) | len;
  }
  const end = bytes.length;
  const availBits = 8 * (end - HEADER_BYTES);
  const p = new Float32Array(vocabSize);
  const hist = new Float64Array(CLASSES);
  let acc = 0;
  let n = 0;
  let o = HEADER_BYTES;
  let used = 0; // bits consumed; bytes past the end read as zeros and are caught by the check below
  const peekMask = (1 << maxLen) - 1;
  for (let i = 0; i < vocabSize; i++) {
    while (n <= 24) {
      acc = (acc | ((o < end ? bytes[o] : 0) << n)) >>> 0;
      o++;
      n += 8;
    }
    const e = table[acc & peekMask];
    if (e === 0xffff) fail('BadValue', `grid body: entry ${i} starts with an unassigned code word`);
    const len = e & 0xf;
    const c = e >>> 4;
    hist[c]++;
    acc >>>= len;
    n -= len;
    used += len;
    let u = c;
    if (c > 1) {
      while (n <= 24) {
        acc = (acc | ((o < end ? bytes[o] : 0) << n)) >>> 0;
        o++;
        n += 8;
      }
      const m = c - 1;
      u = ((1 << m) | (acc & ((1 << m) - 1))) >>> 0;
      acc >>>= m;
      n -= m;
      used += m;
      if (u > GRID_UNITS) fail('BadValue', `grid body: entry ${i} = ${u}·2^-24 is above 1`);
    }
    if (used > availBits) fail('Truncated', `grid body: ends inside entry ${i}`);
    p[i] = u * UNIT;
  }
  const bodyBytes = Math.ceil(used / 8);
  if (HEADER_BYTES + bodyBytes !== end)
    fail('BadLength', `grid body: ${end} bytes, the entries take ${HEADER_BYTES + bodyBytes}`);
  // The bits left in the accumulator beyond `used` within the last byte are the padding.
  const pad = (8 - (used % 8)) % 8;
  if (pad > 0 && (acc & ((1 << pad) - 1)) !== 0) fail('BadValue', 'grid body: non-zero padding');
  // Canonical: the header must hold the code the encoder derives from these entries, nothing else.
  const own = gridCodeLengths(hist);
  for (let c = 0; c < CLASSES; c++) {
    if (own[c] !== lengths[c]) fail('BadValue', "grid body: the code lengths are not the entries' own code");
  }
  return p;
}
