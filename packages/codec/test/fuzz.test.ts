import test from 'node:test';
import assert from 'node:assert/strict';
import {
  CHUNK_HEADER_SIZE,
  Chunker,
  CodecError,
  decodeFrame,
  encodeFrame,
  HEADER_SIZE,
  Reassembler,
  type DecodedFrame,
  type FrameLimits,
} from '../src/index.js';
import { plain, reseal, Rng, sampleFrames } from './helpers.js';

const ITERATIONS = 100_000;
const INTERESTING_U32 = [
  0, 1, 2, 7, 8, 15, 16, 17, 255, 256, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff,
];

interface Sample {
  bytes: Uint8Array;
  V: number;
}

function setU32(b: Uint8Array, offset: number, v: number): void {
  if (offset + 4 <= b.length) new DataView(b.buffer, b.byteOffset).setUint32(offset, v >>> 0, true);
}

/** Sets the header's payload length to match the bytes, so tampering reaches the payload parsers. */
function fixLength(b: Uint8Array): Uint8Array {
  if (b.length >= HEADER_SIZE) setU32(b, 12, b.length - HEADER_SIZE);
  return b;
}

function interesting(rng: Rng, V: number): number {
  const r = rng.int(4);
  if (r === 0) return INTERESTING_U32[rng.int(INTERESTING_U32.length)];
  if (r === 1) return V + rng.int(3) - 1;
  if (r === 2) return rng.int(64);
  return rng.u32();
}

/** One mutated (or occasionally intact) frame; `sealed` mutations recompute the CRC. */
function mutate(rng: Rng, s: Sample, corpus: Sample[]): Uint8Array {
  const b = s.bytes;
  const pick = rng.int(10);
  switch (pick) {
    case 0: {
      const m = b.slice();
      for (let k = 1 + rng.int(4); k > 0; k--) {
        const bit = rng.int(m.length * 8);
        m[bit >> 3] ^= 1 << (bit & 7);
      }
      return m;
    }
    case 1: {
      // Bit flips inside the payload, resealed: the parsers see the damage.
      const m = b.slice();
      if (m.length > HEADER_SIZE) {
        for (let k = 1 + rng.int(3); k > 0; k--) {
          const bit = HEADER_SIZE * 8 + rng.int((m.length - HEADER_SIZE) * 8);
          m[bit >> 3] ^= 1 << (bit & 7);
        }
      }
      return reseal(m);
    }
    case 2: {
      const m = b.slice(0, rng.int(b.length + 1));
      return rng.int(2) ? reseal(fixLength(m)) : m;
    }
    case 3: {
      const m = new Uint8Array(b.length + 1 + rng.int(16));
      m.set(b);
      m.set(rng.bytes(m.length - b.length), b.length);
      return rng.int(2) ? reseal(fixLength(m)) : m;
    }
    case 4: {
      // Splice: the start of one frame with the end of another.
      const o = corpus[rng.int(corpus.length)].bytes;
      const cut = rng.int(b.length + 1);
      const from = rng.int(o.length + 1);
      const m = new Uint8Array(cut + o.length - from);
      m.set(b.subarray(0, cut));
      m.set(o.subarray(from), cut);
      return rng.int(4) ? reseal(fixLength(m)) : m;
    }
    case 5: {
      // Length-field tampering, in the header or (resealed) in the payload's count fields.
      const m = b.slice();
      if (rng.int(2)) setU32(m, 12, interesting(rng, s.V));
      else setU32(m, HEADER_SIZE + rng.int(6), interesting(rng, s.V));
      return rng.int(3) ? reseal(m) : m;
    }
    case 6: {
      // Small fields (γ, flags, outcome, reason, j, tags) set to edge values.
      const m = b.slice();
      if (m.length > HEADER_SIZE)
        m[HEADER_SIZE + rng.int(Math.min(8, m.length - HEADER_SIZE))] = interesting(rng, 0) & 0xff;
      return reseal(m);
    }
    case 7: {
      // Another frame type's parser on this payload.
      const m = b.slice();
      m[3] = rng.int(16);
      return reseal(m);
    }
    case 8: {
      const m = rng.bytes(rng.int(64));
      if (rng.int(2) && m.length >= HEADER_SIZE) {
        m.set(b.subarray(0, 4));
        return reseal(fixLength(m));
      }
      return m;
    }
    default:
      return b.slice();
  }
}

/** Accepted bytes must be canonical: re-encoding the decoded frame reproduces them exactly. */
function checkCanonical(d: DecodedFrame, bytes: Uint8Array, V: number): void {
  const ctx = { sessionId: d.sessionId, round: d.round, vocabSize: V };
  if (d.kind === 'hello' || d.kind === 'welcome') {
    assert.deepEqual(plain(decodeFrame(encodeFrame(d, ctx), {})), plain(d));
    return;
  }
  // 'topk' keeps the K largest entries, so a body with zeros among its K re-encodes shorter: not canonical.
  if (d.kind === 'verdict' && d.outcome === 'reject' && d.body.encoding === 'topk') return;
  assert.deepEqual(encodeFrame(d, ctx), bytes, `${d.kind} is not canonical`);
}

test(
  `fuzz: ${ITERATIONS} mutated frames through decodeFrame and the Reassembler fail only with CodecError`,
  { timeout: 120_000 },
  () => {
    const rng = new Rng(12);
    const corpus: Sample[] = [];
    for (const V of [2, 50, 1000, 3000]) {
      for (let k = 0; k < 3; k++) {
        for (const { frame } of sampleFrames(rng, V)) {
          corpus.push({
            bytes: encodeFrame(frame, { sessionId: rng.u32(), round: rng.u32(), vocabSize: V }),
            V,
          });
        }
      }
    }
    const codes = new Map<string, number>();
    let decoded = 0;
    let decodedMutated = 0;
    const maxPending = 8;
    const maxMessageBytes = 128 * 1024;
    const reassembler = new Reassembler({ maxMessageBytes, maxPendingMessages: maxPending });
    const chunkers = [64, 300, 4096].map((n, i) => new Chunker(n, i << 28));
    let completed = 0;
    let reassembledIntact = 0;

    const guard = (fn: () => void): void => {
      try {
        fn();
      } catch (e) {
        if (!(e instanceof CodecError)) throw e;
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      }
    };

    for (let it = 0; it < ITERATIONS; it++) {
      const s = corpus[rng.int(corpus.length)];
      const bytes = mutate(rng, s, corpus);
      // Mostly the agreed |V|, sometimes a wrong one or none at all.
      const r = rng.int(20);
      const limits: FrameLimits = {
        vocabSize: r === 0 ? undefined : r === 1 ? 1 + rng.int(5000) : s.V,
        maxGamma: 16,
        maxPayloadBytes: 1 << 20,
      };
      guard(() => {
        const d = decodeFrame(bytes, limits);
        decoded++;
        if (!equalBytes(bytes, s.bytes)) decodedMutated++;
        checkCanonical(d, bytes, limits.vocabSize ?? 1);
      });

      // Every 4th frame also goes through chunking with chunk-level damage.
      if (it % 4 !== 0 || bytes.length === 0) continue;
      const chunks = chunkers[rng.int(chunkers.length)].split(bytes);
      const damage = rng.int(8);
      if (damage === 0) chunks.splice(rng.int(chunks.length), 1); // lost chunk
      if (damage === 1) chunks.splice(rng.int(chunks.length), 0, chunks[rng.int(chunks.length)]); // duplicate
      if (damage === 2) chunks.reverse();
      if (damage === 3) {
        const c = chunks[rng.int(chunks.length)];
        const bit = rng.int(Math.min(c.length, CHUNK_HEADER_SIZE + 4) * 8);
        c[bit >> 3] ^= 1 << (bit & 7);
      }
      if (damage === 4) chunks[rng.int(chunks.length)] = rng.bytes(rng.int(40));
      if (damage === 5) {
        const i = rng.int(chunks.length);
        chunks[i] = chunks[i].subarray(0, rng.int(chunks[i].length));
      }
      for (const c of chunks) {
        guard(() => {
          const msg = reassembler.push(c);
          if (msg) {
            completed++;
            if (equalBytes(msg, bytes)) reassembledIntact++;
            guard(() => void decodeFrame(msg, limits));
          }
        });
        assert.ok(reassembler.pendingCount <= maxPending);
        assert.ok(reassembler.pendingBytes <= maxPending * (maxMessageBytes + 0xffff));
      }
    }

    // The mutations must actually reach the deep checks, not just the CRC.
    assert.ok(decoded > 10_000, `decoded ${decoded}`);
    assert.ok(decodedMutated > 1_000, `decoded ${decodedMutated} mutated frames`);
    assert.ok(
      completed > 10_000 && reassembledIntact > 10_000,
      `reassembled ${completed} / ${reassembledIntact}`,
    );
    const seen = [...codes.keys()].sort();
    for (const code of [
      'BadCrc',
      'BadLength',
      'BadMagic',
      'BadValue',
      'BadChunk',
      'DuplicateChunk',
      'OutOfRange',
    ]) {
      assert.ok(codes.has(code), `never saw ${code}: ${seen.join(', ')}`);
    }
    for (const code of ['Truncated', 'TooLarge', 'UnknownType', 'BadVersion']) {
      assert.ok(codes.has(code), `never saw ${code}: ${seen.join(', ')}`);
    }
  },
);

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
