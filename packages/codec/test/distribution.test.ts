import test from 'node:test';
import assert from 'node:assert/strict';
import {
  chooseExactEncoding,
  decodeBody,
  decodeCandidates,
  decodeDistribution,
  distributionBodySize,
  encodeCandidates,
  encodeDistribution,
  encodedSize,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  type DistributionEncodingOption,
} from '../src/index.js';
import { kernelDist, Rng, throwsCode } from './helpers.js';

const ALL: DistributionEncodingOption[] = ['f32', 'f16', 'sparse', 'topk', 'token', 'grid', 'auto'];

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Reference top-k: sort all nonzero entries by (value desc, id asc), keep k. */
function refTopK(p: Float32Array, k: number): Float32Array {
  const ids = [...p.keys()].filter((i) => p[i] !== 0).sort((a, b) => p[b] - p[a] || a - b);
  const out = new Float32Array(p.length);
  for (const i of ids.slice(0, k)) out[i] = float16BitsToFloat32(float32ToFloat16Bits(p[i]));
  return out;
}

test('distribution encodings round-trip kernel-like distributions; encodedSize predicts every length', () => {
  const rng = new Rng(5);
  for (const V of [1, 2, 3, 17, 1000, 4099, 151_936]) {
    for (const support of [1, 2, 10, 50, V]) {
      if (support > V || (V > 5000 && support === V && support !== 151_936)) continue;
      const p = kernelDist(rng, V, support);
      for (const enc of ALL) {
        if (enc === 'token' && support !== 1) {
          throwsCode(() => encodeDistribution(p, enc), 'BadArgument');
          throwsCode(() => encodedSize(p, enc), 'BadArgument');
          continue;
        }
        const opts = { topK: 1 + rng.int(12) };
        const bytes = encodeDistribution(p, enc, opts);
        assert.equal(bytes.length, encodedSize(p, enc, opts), `size ${enc} V=${V} n=${support}`);
        const q = decodeDistribution(bytes, V);
        if (enc === 'f16') {
          for (let i = 0; i < V; i++) assert.equal(q[i], float16BitsToFloat32(float32ToFloat16Bits(p[i])));
        } else if (enc === 'topk') {
          assert.ok(bitsEqual(q, refTopK(p, opts.topK)), `topk V=${V} n=${support}`);
        } else {
          assert.ok(bitsEqual(p, q), `${enc} V=${V} n=${support} exact`);
        }
      }
    }
  }
});

test('bodies decode from any byte offset (aligned and unaligned fast paths)', () => {
  const rng = new Rng(13);
  const V = 777;
  const p = kernelDist(rng, V, 300);
  for (const enc of ['f32', 'f16', 'sparse', 'topk', 'grid'] as const) {
    const body = encodeDistribution(p, enc, { topK: 50 });
    const want = decodeDistribution(body, V);
    for (let shift = 0; shift < 4; shift++) {
      const buf = new Uint8Array(body.length + 8);
      buf.set(body, shift);
      assert.ok(
        bitsEqual(decodeDistribution(buf.subarray(shift, shift + body.length), V), want),
        `${enc} @${shift}`,
      );
    }
  }
});

test("'auto' picks token for one-hot, sparse for a small support, grid (or f32 off the grid) for a full one", () => {
  const rng = new Rng(6);
  const V = 151_936;
  const oneHot = new Float32Array(V);
  oneHot[151_935] = 1;
  assert.equal(chooseExactEncoding(oneHot), 'token');
  assert.equal(encodeDistribution(oneHot, 'auto').length, 5);
  const top10 = kernelDist(rng, V, 10);
  assert.equal(chooseExactEncoding(top10), 'sparse');
  // tag + count + 10 ids × 18 bits (23 bytes) + 10 float32
  assert.equal(encodedSize(top10, 'auto'), 1 + 4 + 23 + 40);
  const full = kernelDist(rng, 1000, 1000);
  assert.equal(chooseExactEncoding(full), 'grid');
  assert.ok(encodedSize(full, 'auto') < encodedSize(full, 'f32') / 2);
  // Off the 2^-24 grid (and -0, which would come back as +0) only f32 and sparse are exact.
  const offGrid = full.slice();
  offGrid[5] = 0.1;
  assert.equal(chooseExactEncoding(offGrid), 'f32');
  throwsCode(() => encodeDistribution(offGrid, 'grid'), 'BadArgument');
  throwsCode(() => encodedSize(offGrid, 'grid'), 'BadArgument');
  const negZero = full.slice();
  negZero[7] = -0;
  throwsCode(() => encodeDistribution(negZero, 'grid'), 'BadArgument');
  throwsCode(() => distributionBodySize('grid', 1000), 'BadArgument');
  // A single nonzero entry below 1 is not one-hot: token would be lossy.
  const almost = new Float32Array(8);
  almost[3] = 0.5;
  assert.equal(chooseExactEncoding(almost), 'sparse');
  // Pinned sizes from the reference notes: Float16 P_j for Qwen (V = 151,936) is 303,872 B plus the tag.
  assert.equal(distributionBodySize('f16', 151_936), 303_873);
  assert.equal(distributionBodySize('f16', 128_256), 256_513);
});

test('topk keeps the K largest, breaking ties towards lower ids, and returns raw (unnormalised) values', () => {
  const p = new Float32Array([0.25, 0.125, 0.25, 0, 0.125, 0.25]);
  const q = decodeDistribution(encodeDistribution(p, 'topk', { topK: 4 }), 6);
  assert.deepEqual(Array.from(q), [0.25, 0.125, 0.25, 0, 0, 0.25]);
  // K larger than the support keeps only the support.
  assert.equal(encodedSize(p, 'topk', { topK: 100 }), distributionBodySize('topk', 6, 5));
  throwsCode(() => encodeDistribution(p, 'topk', { topK: 0 }), 'BadArgument');
});

test('candidates: ids in draw order with duplicates and exact float32 probabilities', () => {
  const V = 151_936;
  const ids = [7, 151_935, 7, 0, 42];
  const probs = [0.1, 2 ** -24, 0.1, 1, 0.3];
  const bytes = encodeCandidates({ ids, probs }, V);
  assert.equal(bytes.length, distributionBodySize('candidates', V, 5));
  const c = decodeCandidates(bytes, V);
  assert.deepEqual(Array.from(c.ids), ids);
  assert.deepEqual(Array.from(c.probs), probs.map(Math.fround));
  const body = decodeBody(bytes, V);
  assert.equal(body.encoding, 'candidates');
  throwsCode(() => decodeDistribution(bytes, V), 'BadValue');
  throwsCode(() => decodeCandidates(bytes, V, 4), 'TooLarge');
  throwsCode(() => decodeCandidates(encodeDistribution(new Float32Array([1, 0]), 'f32'), 2), 'BadValue');
  throwsCode(() => encodeCandidates({ ids: [V], probs: [1] }, V), 'BadArgument');
  throwsCode(() => encodeCandidates({ ids: [1, 2], probs: [1] }, V), 'BadArgument');
  throwsCode(() => encodeCandidates({ ids: [1], probs: [NaN] }, V), 'BadArgument');
  assert.equal(decodeCandidates(encodeCandidates({ ids: [], probs: [] }, V), V).ids.length, 0);
});

test('decodeDistribution rejects malformed bodies with typed errors', () => {
  const V = 10;
  const p = new Float32Array(V);
  p[2] = 0.75;
  p[7] = 0.25;
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  throwsCode(() => decodeDistribution(new Uint8Array(0), V), 'Truncated');
  throwsCode(() => decodeDistribution(Uint8Array.of(0), V), 'UnknownType');
  throwsCode(() => decodeDistribution(Uint8Array.of(99), V), 'UnknownType');
  throwsCode(() => decodeDistribution(encodeDistribution(p, 'f32'), 0), 'BadArgument');
  for (const enc of ['f32', 'f16', 'sparse', 'topk'] as const) {
    const b = encodeDistribution(p, enc);
    throwsCode(() => decodeDistribution(b.subarray(0, b.length - 1), V), 'Truncated', `${enc} truncated`);
    const longer = new Uint8Array(b.length + 1);
    longer.set(b);
    throwsCode(() => decodeDistribution(longer, V), 'BadLength', `${enc} extended`);
  }
  // f32: NaN, negative, > 1, Inf.
  for (const bad of [NaN, -0.5, 1.5, Infinity]) {
    const b = encodeDistribution(p, 'f32');
    dv(b).setFloat32(1 + 4 * 3, bad, true);
    throwsCode(() => decodeDistribution(b, V), 'BadValue', `f32 ${bad}`);
  }
  // f16: NaN, +Inf, -Inf, negative, > 1 refused; -0 accepted.
  for (const h of [0x7e00, 0x7c00, 0xfc00, 0xbc00, 0x3c01]) {
    const b = encodeDistribution(p, 'f16');
    dv(b).setUint16(1 + 2 * 3, h, true);
    throwsCode(() => decodeDistribution(b, V), 'BadValue', `f16 0x${h.toString(16)}`);
  }
  const negZero = encodeDistribution(p, 'f16');
  dv(negZero).setUint16(1 + 2 * 3, 0x8000, true);
  assert.ok(Object.is(decodeDistribution(negZero, V)[3], -0));
  // sparse: layout tag | n=2 | ids (4 bits each → 1 byte) | 2 × f32.
  const sparse = encodeDistribution(p, 'sparse');
  assert.deepEqual(Array.from(sparse.subarray(0, 6)), [3, 2, 0, 0, 0, 0x72]);
  const swapped = sparse.slice();
  swapped[5] = 0x27; // ids 7, 2: not increasing
  throwsCode(() => decodeDistribution(swapped, V), 'BadValue');
  const dup = sparse.slice();
  dup[5] = 0x22;
  throwsCode(() => decodeDistribution(dup, V), 'BadValue');
  const big = sparse.slice();
  big[5] = 0xb2; // id 11 ≥ V
  throwsCode(() => decodeDistribution(big, V), 'OutOfRange');
  const zero = sparse.slice();
  dv(zero).setFloat32(6, 0, true);
  throwsCode(() => decodeDistribution(zero, V), 'BadValue');
  const count = sparse.slice();
  dv(count).setUint32(1, 11, true); // n > V
  throwsCode(() => decodeDistribution(count, V), 'OutOfRange');
  const huge = sparse.slice();
  dv(huge).setUint32(1, 9, true); // n ≤ V but the bytes are not there
  throwsCode(() => decodeDistribution(huge, V), 'Truncated');
  // token: id ≥ V.
  const tok = Uint8Array.of(5, 10, 0, 0, 0);
  throwsCode(() => decodeDistribution(tok, V), 'OutOfRange');
  tok[1] = 9;
  assert.equal(decodeDistribution(tok, V)[9], 1);
});

test('grid: exact for one class, one-hot, a Fibonacci-skewed code (length limit) and a temperature-1 tail', () => {
  const check = (p: Float32Array, what: string) => {
    const body = encodeDistribution(p, 'grid');
    assert.equal(body.length, encodedSize(p, 'grid'), `${what} size`);
    const q = decodeDistribution(body, p.length);
    assert.ok(bitsEqual(p, q), `${what} exact`);
    return body;
  };
  // Every entry in one class: a one-word code of length 1.
  check(new Float32Array(4096).fill(2 ** -12), 'uniform');
  const oneHot = new Float32Array(50);
  oneHot[49] = 1; // class 25: u = 2^24
  check(oneHot, 'one-hot');
  // Class c holds Fibonacci(c) entries: the optimal code is 19 deep, so the 15-bit limit must kick in.
  const counts: number[] = [1, 1];
  while (counts.length < 20) counts.push(counts[counts.length - 1] + counts[counts.length - 2]);
  const skew = new Float32Array(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  counts.forEach((n, c) => {
    for (let k = 0; k < n; k++) skew[at++] = c === 0 ? 0 : (2 ** (c - 1) + (k % 2 ** (c - 1))) * 2 ** -24;
  });
  const body = check(skew, 'skewed');
  for (let c = 0; c < 26; c++) assert.ok(((body[1 + (c >> 1)] >>> ((c & 1) * 4)) & 0xf) <= 15);
  // A temperature-1 distribution over 4,096 tokens: mostly small entries, about a third of f32.
  const rng = new Rng(21);
  const logits = Array.from({ length: 4096 }, () => 3 * Math.log(rng.float() + 1e-12));
  const z = logits.reduce((a, l) => a + Math.exp(l), 0);
  const units = logits.map((l) => Math.floor((Math.exp(l) / z) * 2 ** 24));
  units[0] += 2 ** 24 - units.reduce((a, b) => a + b, 0);
  const t1 = Float32Array.from(units, (u) => u * 2 ** -24);
  const t1Body = check(t1, 'T = 1');
  assert.ok(t1Body.length < (4 * 4096) / 2, `${t1Body.length} B`);
  assert.equal(chooseExactEncoding(t1), 'grid');
});

test('grid: malformed bodies fail with typed errors, and only the canonical body decodes', () => {
  const rng = new Rng(22);
  const V = 300;
  const p = kernelDist(rng, V, 200);
  const body = encodeDistribution(p, 'grid');
  const header = (lengths: Record<number, number>, bodyBytes: number[]) => {
    const b = new Uint8Array(14 + bodyBytes.length);
    b[0] = body[0];
    for (const [c, len] of Object.entries(lengths)) b[1 + (Number(c) >> 1)] |= len << ((Number(c) & 1) * 4);
    b.set(bodyBytes, 14);
    return b;
  };
  throwsCode(() => decodeDistribution(body.subarray(0, 5), V), 'Truncated');
  throwsCode(() => decodeDistribution(header({}, [0]), V), 'BadValue'); // no class has a code
  throwsCode(() => decodeDistribution(header({ 1: 1, 2: 1, 3: 1 }, [0]), V), 'BadValue'); // over-subscribed
  // Huffman codes are complete, so a cut body reads as valid words until the bits run out.
  throwsCode(() => decodeDistribution(body.subarray(0, body.length - 1), V), 'Truncated');
  const longer = new Uint8Array(body.length + 1);
  longer.set(body);
  throwsCode(() => decodeDistribution(longer, V), 'BadLength');
  // A lone class of length 1 leaves the word '1' unassigned.
  throwsCode(() => decodeDistribution(header({ 3: 1 }, [1]), 1), 'BadValue');
  // Class 25 is only u = 2^24: any mantissa bit above it is an entry above 1.
  throwsCode(() => decodeDistribution(header({ 25: 1 }, [0b10, 0, 0, 0]), 1), 'BadValue');
  // Valid words with code lengths other than the entries' own Huffman code: not canonical.
  throwsCode(() => decodeDistribution(header({ 0: 1, 1: 2, 2: 2 }, [0, 0]), 16), 'BadValue');
  // Entries [0, 2^-24, 0] with codes '0' and '1' take 3 bits: the other 5 bits of the byte are padding.
  assert.deepEqual(Array.from(decodeDistribution(header({ 0: 1, 1: 1 }, [0b010]), 3)), [0, 2 ** -24, 0]);
  throwsCode(() => decodeDistribution(header({ 0: 1, 1: 1 }, [0b010 | 0x80]), 3), 'BadValue');
});
