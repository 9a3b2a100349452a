import test from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '../src/index.js';
import { Rng } from './helpers.js';

function bitwiseCrc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

test('crc32c: check value and RFC 3720 vectors', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
});

test('crc32c: slicing-by-8 matches the bitwise definition on random lengths, offsets and continuations', () => {
  const rng = new Rng(1);
  for (let t = 0; t < 300; t++) {
    const data = rng.bytes(rng.int(200));
    const start = rng.int(data.length + 1);
    const end = start + rng.int(data.length - start + 1);
    assert.equal(crc32c(data, 0, start, end), bitwiseCrc32c(data.subarray(start, end)));
    const cut = start + rng.int(end - start + 1);
    assert.equal(
      crc32c(data, crc32c(data, 0, start, cut), cut, end),
      bitwiseCrc32c(data.subarray(start, end)),
    );
  }
});
