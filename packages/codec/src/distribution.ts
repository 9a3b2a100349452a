/**
 * Distribution bodies: one tag byte naming the encoding, then the encoding's fields (all little-endian, ids
 * packed LSB-first at b = ⌈log2 |V|⌉ bits, K/n counts are u32). |V| is agreed at session start and not sent.
 *
 *   f32        [0] tag=1  [1, 1+4V)  dense float32 — exact
 *   f16        [0] tag=2  [1, 1+2V)  dense binary16 — near-lossless (RNE); NaN/Inf/negative/>1 refused on decode
 *   sparse     [0] tag=3  [1,5) u32 n  [5, 5+⌈nb/8⌉) ids strictly increasing  then n float32 in (0,1] — exact
 *   topk       [0] tag=4  [1,5) u32 K  [5, 5+⌈Kb/8⌉) ids strictly increasing  then K binary16 — LOSSY: only the
 *                         K largest entries, rounded; the decoder returns them raw (no renormalisation)
 *   token      [0] tag=5  [1,5) u32 id — exact for a one-hot distribution (greedy)
 *   candidates [0] tag=6  [1,5) u32 K  [5, 5+⌈Kb/8⌉) ids in draw order, duplicates kept  then K float32 —
 *                         exact candidate list (not a distribution: encodeCandidates/decodeCandidates)
 *   grid       [0] tag=7  entries on the 2^-24 grid, entropy-coded (grid.ts) — exact
 */
import { bitsForVocab, checkVocabSize, packedByteLength, packIdsInto, unpackIds } from './bits.js';
import { fail } from './errors.js';
import { encodeF16, float16Table, float32BitsToFloat16Bits } from './float16.js';
import { decodeGrid, encodeGrid, gridBodySize, gridStats, requireGridStats, type GridStats } from './grid.js';

/** Encodings of a full distribution P_j (names used by the CLI, the page and the benchmark). */
export type DistributionEncoding = 'f32' | 'f16' | 'sparse' | 'topk' | 'token' | 'grid';
/** What a caller may ask for: a concrete encoding, or 'auto' = the smallest exact one for this P_j. */
export type DistributionEncodingOption = DistributionEncoding | 'auto';
/** Every body kind that can follow a rejection on the wire. */
export type BodyEncoding = DistributionEncoding | 'candidates';

export const DISTRIBUTION_ENCODINGS: readonly DistributionEncodingOption[] = [
  'f32',
  'f16',
  'sparse',
  'topk',
  'token',
  'grid',
  'auto',
];
/** Encodings that reproduce P_j bit for bit; 'f16' is near-lossless and 'topk' lossy. */
export const EXACT_ENCODINGS: readonly BodyEncoding[] = ['f32', 'sparse', 'token', 'grid', 'candidates'];

/** Wire tag (first body byte) per encoding. */
export const ENCODING_TAGS: Readonly<Record<BodyEncoding, number>> = {
  f32: 1,
  f16: 2,
  sparse: 3,
  topk: 4,
  token: 5,
  candidates: 6,
  grid: 7,
};
const TAG_NAMES: readonly (BodyEncoding | undefined)[] = [
  undefined,
  'f32',
  'f16',
  'sparse',
  'topk',
  'token',
  'candidates',
  'grid',
];

/** K used by 'topk' when the caller gives none (vLLM's default max_logprobs). */
export const DEFAULT_TOP_K = 20;

export interface DistributionEncodeOptions {
  /** Entries kept by 'topk' (default DEFAULT_TOP_K); capped at the support size. */
  topK?: number;
}

/** An exact candidate list: ids in draw order (duplicates kept) with their float32 probabilities. */
export interface Candidates {
  ids: ArrayLike<number>;
  probs: ArrayLike<number>;
}
export interface DecodedCandidates {
  ids: Uint32Array;
  probs: Float32Array;
}

/** A decoded body: a dense distribution (raw values for 'topk') or a candidate list. */
export type DecodedBody =
  | { encoding: DistributionEncoding; p: Float32Array }
  | { encoding: 'candidates'; ids: Uint32Array; probs: Float32Array };

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkDistribution(p: Float32Array): void {
  if (!(p instanceof Float32Array)) fail('BadArgument', 'distribution must be a Float32Array');
  checkVocabSize(p.length);
}

function resolveTopK(opts: DistributionEncodeOptions | undefined): number {
  const k = opts?.topK ?? DEFAULT_TOP_K;
  if (!Number.isInteger(k) || k < 1) fail('BadArgument', `topK must be a positive integer, got ${k}`);
  return k;
}

function countNonZero(p: Float32Array): number {
  let n = 0;
  for (let i = 0; i < p.length; i++) if (p[i] !== 0) n++;
  return n;
}

/** Index of the single entry equal to 1 when every other entry is 0, else -1. */
function oneHotIndex(p: Float32Array): number {
  let idx = -1;
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    if (v === 0) continue;
    if (v !== 1 || idx >= 0) return -1;
    idx = i;
  }
  return idx;
}

/** Size in bytes of a body with the given encoding and entry count (K for topk/candidates, n for sparse). */
export function distributionBodySize(encoding: BodyEncoding, vocabSize: number, count = 0): number {
  const b = bitsForVocab(vocabSize);
  switch (encoding) {
    case 'f32':
      return 1 + 4 * vocabSize;
    case 'f16':
      return 1 + 2 * vocabSize;
    case 'sparse':
    case 'candidates':
      return 5 + packedByteLength(count, b) + 4 * count;
    case 'topk':
      return 5 + packedByteLength(count, b) + 2 * count;
    case 'token':
      return 5;
    case 'grid':
      return fail('BadArgument', "a 'grid' body's size depends on the values: use encodedSize");
    default:
      return fail('BadArgument', `unknown encoding ${String(encoding)}`);
  }
}

type ExactChoice = { encoding: 'token' | 'sparse' | 'f32' | 'grid'; bytes: number; grid: GridStats | null };

/** The smallest exact encoding of `p` and its size (ties: token, then sparse, f32, grid). O(|V|). */
function smallestExact(p: Float32Array): ExactChoice {
  checkDistribution(p);
  const V = p.length;
  const grid = gridStats(p);
  const n = grid ? grid.nonZero : countNonZero(p);
  if (n === 1 && oneHotIndex(p) >= 0) return { encoding: 'token', bytes: 5, grid };
  const sparse = distributionBodySize('sparse', V, n);
  let best: ExactChoice =
    sparse < 1 + 4 * V
      ? { encoding: 'sparse', bytes: sparse, grid }
      : { encoding: 'f32', bytes: 1 + 4 * V, grid };
  if (grid) {
    const bytes = gridBodySize(grid);
    if (bytes < best.bytes) best = { encoding: 'grid', bytes, grid };
  }
  return best;
}

/**
 * The smallest exact encoding for `p`: token if one-hot, else the smallest of sparse, f32 and (when every entry
 * lies on the 2^-24 grid, as the kernel's processing outputs) grid. O(|V|).
 */
export function chooseExactEncoding(p: Float32Array): 'token' | 'sparse' | 'f32' | 'grid' {
  return smallestExact(p).encoding;
}

/** Bytes `encodeDistribution(p, encoding, opts)` would produce, without encoding. O(|V|). */
export function encodedSize(
  p: Float32Array,
  encoding: DistributionEncodingOption,
  opts?: DistributionEncodeOptions,
): number {
  checkDistribution(p);
  const V = p.length;
  switch (encoding) {
    case 'f32':
    case 'f16':
      return distributionBodySize(encoding, V);
    case 'sparse':
      return distributionBodySize('sparse', V, countNonZero(p));
    case 'topk':
      return distributionBodySize('topk', V, Math.min(resolveTopK(opts), countNonZero(p)));
    case 'token':
      if (oneHotIndex(p) < 0) fail('BadArgument', "'token' encoding needs a one-hot distribution");
      return 5;
    case 'grid':
      return gridBodySize(requireGridStats(p));
    case 'auto':
      return smallestExact(p).bytes;
    default:
      return fail('BadArgument', `unknown encoding ${String(encoding)}`);
  }
}

/**
 * Encodes distribution `p` (length |V|) as a tagged body. Expects a valid distribution (finite entries in
 * [0, 1]); 'token' throws BadArgument unless `p` is one-hot.
 */
export function encodeDistribution(
  p: Float32Array,
  encoding: DistributionEncodingOption,
  opts?: DistributionEncodeOptions,
): Uint8Array {
  checkDistribution(p);
  const V = p.length;
  switch (encoding) {
    case 'f32': {
      const out = new Uint8Array(1 + 4 * V);
      out[0] = ENCODING_TAGS.f32;
      if (LITTLE_ENDIAN) out.set(new Uint8Array(p.buffer, p.byteOffset, 4 * V), 1);
      else for (let i = 0, dv = view(out); i < V; i++) dv.setFloat32(1 + 4 * i, p[i], true);
      return out;
    }
    case 'f16': {
      if (LITTLE_ENDIAN) {
        // One spare leading byte puts the halves at an even address, so they can be stored as a Uint16Array.
        const buf = new ArrayBuffer(2 + 2 * V);
        encodeF16(p, new Uint16Array(buf, 2, V));
        const out = new Uint8Array(buf, 1);
        out[0] = ENCODING_TAGS.f16;
        return out;
      }
      const out = new Uint8Array(1 + 2 * V);
      out[0] = ENCODING_TAGS.f16;
      const u = new Uint32Array(p.buffer, p.byteOffset, V);
      for (let i = 0, o = 1; i < V; i++, o += 2) {
        const h = float32BitsToFloat16Bits(u[i]);
        out[o] = h & 0xff;
        out[o + 1] = h >>> 8;
      }
      return out;
    }
    case 'sparse': {
      const n = countNonZero(p);
      const ids = new Uint32Array(n);
      const vals = new Float32Array(n);
      for (let i = 0, k = 0; i < V; i++) {
        if (p[i] !== 0) {
          ids[k] = i;
          vals[k++] = p[i];
        }
      }
      return encodeIdValues(ENCODING_TAGS.sparse, V, ids, vals, 4);
    }
    case 'topk': {
      const ids = topKIndices(p, resolveTopK(opts));
      const vals = new Float32Array(ids.length);
      for (let i = 0; i < ids.length; i++) vals[i] = p[ids[i]];
      return encodeIdValues(ENCODING_TAGS.topk, V, ids, vals, 2);
    }
    case 'token': {
      const id = oneHotIndex(p);
      if (id < 0) fail('BadArgument', "'token' encoding needs a one-hot distribution");
      const out = new Uint8Array(5);
      out[0] = ENCODING_TAGS.token;
      view(out).setUint32(1, id, true);
      return out;
    }
    case 'grid':
      return encodeGrid(p, ENCODING_TAGS.grid);
    case 'auto': {
      const best = smallestExact(p);
      return best.encoding === 'grid'
        ? encodeGrid(p, ENCODING_TAGS.grid, best.grid ?? undefined)
        : encodeDistribution(p, best.encoding);
    }
    default:
      return fail('BadArgument', `unknown encoding ${String(encoding)}`);
  }
}

/** Encodes an exact candidate list (ids < vocabSize in draw order, duplicates kept) as a tagged body. */
export function encodeCandidates(c: Candidates, vocabSize: number): Uint8Array {
  checkVocabSize(vocabSize);
  if (c.ids.length !== c.probs.length) fail('BadArgument', 'candidates: ids and probs differ in length');
  const probs = Float32Array.from(c.probs);
  for (let i = 0; i < probs.length; i++) {
    if (!(probs[i] >= 0 && probs[i] <= 1))
      fail('BadArgument', `candidates: prob ${i} = ${probs[i]} not in [0, 1]`);
  }
  return encodeIdValues(ENCODING_TAGS.candidates, vocabSize, c.ids, probs, 4);
}

/** tag | u32 count | packed ids | values (float32 when width 4, binary16 when width 2). */
function encodeIdValues(
  tag: number,
  vocabSize: number,
  ids: ArrayLike<number>,
  vals: Float32Array,
  width: 2 | 4,
): Uint8Array {
  const b = bitsForVocab(vocabSize);
  const n = ids.length;
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (!(Number.isInteger(id) && id >= 0 && id < vocabSize))
      fail('BadArgument', `token id ${id} out of range`);
  }
  const idBytes = packedByteLength(n, b);
  const out = new Uint8Array(5 + idBytes + width * n);
  const dv = view(out);
  out[0] = tag;
  dv.setUint32(1, n, true);
  let o = packIdsInto(ids, b, out, 5);
  if (width === 4) {
    for (let i = 0; i < n; i++, o += 4) dv.setFloat32(o, vals[i], true);
  } else {
    const u = new Uint32Array(vals.buffer, vals.byteOffset, n);
    for (let i = 0; i < n; i++, o += 2) dv.setUint16(o, float32BitsToFloat16Bits(u[i]), true);
  }
  return out;
}

/**
 * Ids of the min(k, support) largest nonzero entries, ties broken towards the lower id, returned in increasing
 * id order. A size-k min-heap keeps this O(|V| log k).
 */
function topKIndices(p: Float32Array, k: number): Uint32Array {
  const V = p.length;
  const cap = Math.min(k, V);
  const heap = new Uint32Array(cap); // heap[0] is the weakest kept entry
  let size = 0;
  // a is weaker than b: smaller value, or equal value and larger id.
  const weaker = (a: number, b: number): boolean => p[a] < p[b] || (p[a] === p[b] && a > b);
  const siftDown = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const r = l + 1;
      const c = r < size && weaker(heap[r], heap[l]) ? r : l;
      if (!weaker(heap[c], heap[i])) return;
      const t = heap[c];
      heap[c] = heap[i];
      heap[i] = t;
      i = c;
    }
  };
  for (let id = 0; id < V; id++) {
    if (p[id] === 0) continue;
    if (size < cap) {
      let i = size++;
      heap[i] = id;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!weaker(heap[i], heap[parent])) break;
        const t = heap[parent];
        heap[parent] = heap[i];
        heap[i] = t;
        i = parent;
      }
    } else if (weaker(heap[0], id)) {
      heap[0] = id;
      siftDown(0);
    }
  }
  return heap.slice(0, size).sort();
}

/**
 * Decodes a dense f32 or f16 distribution of `vocabSize` entries starting at `offset` (no tag), refusing
 * entries that are not finite values in [0, 1] (-0 is allowed). The caller checks the length.
 */
export function decodeDense(
  bytes: Uint8Array,
  offset: number,
  vocabSize: number,
  encoding: 'f32' | 'f16',
): Float32Array {
  const V = vocabSize;
  const w = encoding === 'f32' ? 4 : 2;
  if (offset < 0 || bytes.length - offset < w * V)
    fail('Truncated', `dense ${encoding}: need ${w * V} bytes`);
  const p = new Float32Array(V);
  if (encoding === 'f32') {
    const u = new Uint32Array(p.buffer);
    if (LITTLE_ENDIAN) new Uint8Array(p.buffer).set(bytes.subarray(offset, offset + 4 * V));
    else for (let i = 0, dv = view(bytes); i < V; i++) u[i] = dv.getUint32(offset + 4 * i, true);
    // On the bits: +0..1.0 and -0 are valid; this refuses NaN, ±Inf, negatives and values above 1.
    for (let i = 0; i < V; i++) {
      const b = u[i];
      if (b > 0x3f800000 && b !== 0x80000000)
        fail('BadValue', `dense f32: entry ${i} = ${p[i]} is not in [0, 1]`);
    }
  } else {
    const t = float16Table();
    let h16: Uint16Array;
    const at = bytes.byteOffset + offset;
    if (LITTLE_ENDIAN && at % 2 === 0) h16 = new Uint16Array(bytes.buffer, at, V);
    else if (LITTLE_ENDIAN) h16 = new Uint16Array(bytes.slice(offset, offset + 2 * V).buffer);
    else
      h16 = Uint16Array.from(
        { length: V },
        (_, i) => bytes[offset + 2 * i] | (bytes[offset + 2 * i + 1] << 8),
      );
    for (let i = 0; i < V; i++) {
      const h = h16[i];
      // Valid halves are +0..1.0 and -0; this also refuses NaN and ±Inf.
      if (h > 0x3c00 && h !== 0x8000)
        fail('BadValue', `dense f16: entry ${i} (bits 0x${h.toString(16)}) not in [0, 1]`);
      p[i] = t[h];
    }
  }
  return p;
}

/** Decodes a tagged body of any kind against the agreed vocabulary size; `maxCandidates` bounds K. */
export function decodeBody(bytes: Uint8Array, vocabSize: number, maxCandidates = Infinity): DecodedBody {
  checkVocabSize(vocabSize);
  if (bytes.length < 1) fail('Truncated', 'empty distribution body');
  const encoding = TAG_NAMES[bytes[0]];
  const V = vocabSize;
  switch (encoding) {
    case 'f32':
      expectLength(bytes, 1 + 4 * V, 'f32 body');
      return { encoding, p: decodeDense(bytes, 1, V, 'f32') };
    case 'f16':
      expectLength(bytes, 1 + 2 * V, 'f16 body');
      return { encoding, p: decodeDense(bytes, 1, V, 'f16') };
    case 'sparse':
    case 'topk': {
      const width = encoding === 'sparse' ? 4 : 2;
      const { ids, vals } = decodeIdValues(bytes, V, width, V, encoding);
      const p = new Float32Array(V);
      for (let i = 0; i < ids.length; i++) {
        if (i > 0 && ids[i] <= ids[i - 1])
          fail('BadValue', `${encoding} body: ids not strictly increasing at ${i}`);
        // Sparse lists only the support; a zero there would make the encoding non-canonical.
        if (encoding === 'sparse' && vals[i] === 0) fail('BadValue', `sparse body: zero value at index ${i}`);
        p[ids[i]] = vals[i];
      }
      return { encoding, p };
    }
    case 'token': {
      expectLength(bytes, 5, 'token body');
      const id = view(bytes).getUint32(1, true);
      if (id >= V) fail('OutOfRange', `token body: id ${id} is not below |V| = ${V}`);
      const p = new Float32Array(V);
      p[id] = 1;
      return { encoding, p };
    }
    case 'candidates': {
      const { ids, vals } = decodeIdValues(bytes, V, 4, maxCandidates, encoding);
      return { encoding, ids, probs: vals };
    }
    case 'grid':
      return { encoding, p: decodeGrid(bytes, V) };
    default:
      return fail('UnknownType', `unknown distribution encoding tag ${bytes[0]}`);
  }
}

/** Decodes a distribution body into a dense Float32Array of length vocabSize ('topk': raw, unnormalised). */
export function decodeDistribution(bytes: Uint8Array, vocabSize: number): Float32Array {
  if (bytes.length >= 1 && bytes[0] === ENCODING_TAGS.candidates) {
    fail('BadValue', 'expected a distribution body, got a candidate list');
  }
  const body = decodeBody(bytes, vocabSize);
  return (body as { p: Float32Array }).p;
}

/** Decodes a candidate-list body; `maxCandidates` bounds K. */
export function decodeCandidates(
  bytes: Uint8Array,
  vocabSize: number,
  maxCandidates = Infinity,
): DecodedCandidates {
  checkVocabSize(vocabSize);
  if (bytes.length >= 1 && bytes[0] !== ENCODING_TAGS.candidates) {
    fail('BadValue', `expected a candidate list body, got tag ${bytes[0]}`);
  }
  const body = decodeBody(bytes, vocabSize, maxCandidates);
  return body as DecodedCandidates;
}

function expectLength(bytes: Uint8Array, n: number, what: string): void {
  if (bytes.length < n) fail('Truncated', `${what}: ${bytes.length} bytes, need ${n}`);
  if (bytes.length > n) fail('BadLength', `${what}: ${bytes.length} bytes, expected ${n}`);
}

function decodeIdValues(
  bytes: Uint8Array,
  vocabSize: number,
  width: 2 | 4,
  maxCount: number,
  what: string,
): { ids: Uint32Array; vals: Float32Array } {
  if (bytes.length < 5) fail('Truncated', `${what} body: missing count`);
  const dv = view(bytes);
  const n = dv.getUint32(1, true);
  if (n > maxCount)
    fail(what === 'candidates' ? 'TooLarge' : 'OutOfRange', `${what} body: count ${n} exceeds ${maxCount}`);
  const b = bitsForVocab(vocabSize);
  const idBytes = packedByteLength(n, b);
  // Length check before any allocation: n is bounded by the bytes actually present.
  expectLength(bytes, 5 + idBytes + width * n, `${what} body`);
  const ids = unpackIds(bytes, n, b, 5, vocabSize);
  const vals = new Float32Array(n);
  let o = 5 + idBytes;
  if (width === 4) {
    for (let i = 0; i < n; i++, o += 4) {
      const v = dv.getFloat32(o, true);
      if (!(v >= 0 && v <= 1)) fail('BadValue', `${what} body: value ${i} = ${v} is not in [0, 1]`);
      vals[i] = v;
    }
  } else {
    const t = float16Table();
    for (let i = 0; i < n; i++, o += 2) {
      const h = dv.getUint16(o, true);
      if (h > 0x3c00 && h !== 0x8000)
        fail('BadValue', `${what} body: value ${i} (bits 0x${h.toString(16)}) not in [0, 1]`);
      vals[i] = t[h];
    }
  }
  return { ids, vals };
}
