import test from 'node:test';
import assert from 'node:assert/strict';
import { bitsForVocab, packedByteLength, packIds, unpackIds, MAX_VOCAB_SIZE } from '../src/index.js';
import { Rng, throwsCode } from './helpers.js';

/** Bit-by-bit LSB-first reference packer. */
function refPack(ids: number[], bits: number): Uint8Array {
  const out = new Uint8Array(Math.ceil((ids.length * bits) / 8));
  let k = 0;
  for (const id of ids) {
    for (let b = 0; b < bits; b++, k++) if ((id >>> b) & 1) out[k >> 3] |= 1 << (k & 7);
  }
  return out;
}

test('bitsForVocab is ⌈log2 |V|⌉ with a minimum of 1', () => {
  const cases: [number, number][] = [
    [1, 1],
    [2, 1],
    [3, 2],
    [4, 2],
    [5, 3],
    [1000, 10],
    [1024, 10],
    [1025, 11],
    [128_256, 17],
    [151_936, 18],
    [1 << 20, 20],
    [(1 << 20) + 1, 21],
    [MAX_VOCAB_SIZE, 24],
  ];
  for (const [v, b] of cases) assert.equal(bitsForVocab(v), b, `V = ${v}`);
  for (const v of [0, -1, 1.5, MAX_VOCAB_SIZE + 1, NaN]) throwsCode(() => bitsForVocab(v), 'BadArgument');
});

test('packIds/unpackIds: exhaustive over bits 1..24 with random and boundary ids', () => {
  const rng = new Rng(2);
  for (let bits = 1; bits <= 24; bits++) {
    const max = 2 ** bits - 1;
    const boundary = [0, max, max, 0, 1, max >>> 1, (max >>> 1) + 1];
    for (let t = 0; t < 40; t++) {
      const n = t === 0 ? 0 : rng.int(70) + 1;
      const ids =
        t === 1 ? boundary : Array.from({ length: n }, () => (t % 5 === 2 ? max : rng.int(max + 1)));
      const packed = packIds(ids, bits);
      assert.equal(packed.length, packedByteLength(ids.length, bits));
      assert.deepEqual(packed, refPack(ids, bits), `bits ${bits} layout`);
      assert.deepEqual(Array.from(unpackIds(packed, ids.length, bits)), ids, `bits ${bits} round trip`);
      // At an offset inside a larger buffer.
      const buf = new Uint8Array(3 + packed.length + 2);
      buf.set(packed, 3);
      assert.deepEqual(Array.from(unpackIds(buf, ids.length, bits, 3)), ids);
    }
  }
});

test('packIds refuses ids that do not fit; unpackIds checks length, limit and padding', () => {
  throwsCode(() => packIds([8], 3), 'BadArgument');
  throwsCode(() => packIds([-1], 8), 'BadArgument');
  throwsCode(() => packIds([1.5], 8), 'BadArgument');
  throwsCode(() => packIds([1], 25), 'BadArgument');
  const packed = packIds([5, 6, 7], 3); // 9 bits → 2 bytes
  throwsCode(() => unpackIds(packed.subarray(0, 1), 3, 3), 'Truncated');
  throwsCode(() => unpackIds(packed, 3, 3, 0, 7), 'OutOfRange');
  assert.deepEqual(Array.from(unpackIds(packed, 3, 3, 0, 8)), [5, 6, 7]);
  const dirty = packed.slice();
  dirty[1] |= 0x80; // a padding bit
  throwsCode(() => unpackIds(dirty, 3, 3), 'BadValue');
});
