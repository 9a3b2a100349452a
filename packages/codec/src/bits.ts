import { fail } from './errors.js';

/** Largest vocabulary the wire format supports: ids are packed at ⌈log2 |V|⌉ ≤ 24 bits. */
export const MAX_VOCAB_SIZE = 1 << 24;

/** Throws BadArgument unless `vocabSize` is an integer in [1, MAX_VOCAB_SIZE]. */
export function checkVocabSize(vocabSize: number): void {
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize > MAX_VOCAB_SIZE) {
    fail('BadArgument', `vocabSize must be an integer in [1, ${MAX_VOCAB_SIZE}], got ${vocabSize}`);
  }
}

/** Bits per packed token id: ⌈log2 |V|⌉, at least 1. */
export function bitsForVocab(vocabSize: number): number {
  checkVocabSize(vocabSize);
  return Math.max(1, 32 - Math.clz32(vocabSize - 1));
}

/** Bytes taken by `count` ids packed at `bits` bits each. */
export function packedByteLength(count: number, bits: number): number {
  return Math.ceil((count * bits) / 8);
}

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > 24)
    fail('BadArgument', `bits must be in 1..24, got ${bits}`);
}

/**
 * Writes `ids` LSB-first at `bits` bits each into `dst` from byte `offset`; returns the offset after the
 * last (partially filled, zero-padded) byte. Throws BadArgument for ids that do not fit in `bits`.
 */
export function packIdsInto(ids: ArrayLike<number>, bits: number, dst: Uint8Array, offset: number): number {
  checkBits(bits);
  const mask = (1 << bits) - 1;
  const n = ids.length;
  if (offset + packedByteLength(n, bits) > dst.length)
    fail('BadArgument', 'destination too small for packed ids');
  // At most 7 pending bits + 24 new bits = 31 bits, so the accumulator never leaves int32 range.
  let acc = 0;
  let nacc = 0;
  let o = offset;
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (id !== (id & mask)) fail('BadArgument', `token id ${id} at index ${i} does not fit in ${bits} bits`);
    acc |= id << nacc;
    nacc += bits;
    while (nacc >= 8) {
      dst[o++] = acc & 0xff;
      acc >>>= 8;
      nacc -= 8;
    }
  }
  if (nacc > 0) dst[o++] = acc;
  return o;
}

/** Packs ids LSB-first at `bits` bits each (1..24) into ⌈count·bits/8⌉ bytes. */
export function packIds(ids: ArrayLike<number>, bits: number): Uint8Array {
  checkBits(bits);
  const out = new Uint8Array(packedByteLength(ids.length, bits));
  packIdsInto(ids, bits, out, 0);
  return out;
}

/**
 * Reads `count` ids packed at `bits` bits from `bytes` at `offset`. Checks the length before allocating
 * (Truncated), that each id is below `limit` when given (OutOfRange), and that the padding bits of the
 * last byte are zero (BadValue) so every accepted encoding is canonical.
 */
export function unpackIds(
  bytes: Uint8Array,
  count: number,
  bits: number,
  offset = 0,
  limit?: number,
): Uint32Array {
  checkBits(bits);
  if (!Number.isInteger(count) || count < 0)
    fail('BadArgument', `count must be a non-negative integer, got ${count}`);
  if (offset < 0 || bytes.length - offset < packedByteLength(count, bits)) {
    fail('Truncated', `need ${packedByteLength(count, bits)} bytes for ${count} ids of ${bits} bits`);
  }
  const out = new Uint32Array(count);
  const mask = (1 << bits) - 1;
  const max = limit ?? mask + 1;
  let acc = 0;
  let nacc = 0;
  let p = offset;
  for (let i = 0; i < count; i++) {
    while (nacc < bits) {
      acc |= bytes[p++] << nacc;
      nacc += 8;
    }
    const id = acc & mask;
    if (id >= max) fail('OutOfRange', `token id ${id} at index ${i} is not below ${max}`);
    out[i] = id;
    acc >>>= bits;
    nacc -= bits;
  }
  if (acc !== 0) fail('BadValue', 'non-zero padding bits after packed ids');
  return out;
}
