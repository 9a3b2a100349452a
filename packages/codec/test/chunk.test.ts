import test from 'node:test';
import assert from 'node:assert/strict';
import {
  CHUNK_HEADER_SIZE,
  chunkCount,
  chunkedSize,
  Chunker,
  chunkSizeFor,
  DEFAULT_MAX_CHUNK_BYTES,
  distributionBodySize,
  Reassembler,
  verdictFrameSize,
} from '../src/index.js';
import { Rng, throwsCode } from './helpers.js';

function shuffle<T>(rng: Rng, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

test('split/push round-trips messages of many sizes, in order, shuffled and interleaved', () => {
  const rng = new Rng(9);
  for (let t = 0; t < 300; t++) {
    const maxChunk = CHUNK_HEADER_SIZE + 1 + rng.int(t % 3 === 0 ? 40 : 3000);
    const chunker = new Chunker(maxChunk, rng.u32());
    const r = new Reassembler({ maxMessageBytes: 1 << 20, maxPendingMessages: 4 });
    const msgs = Array.from({ length: 3 }, () => rng.bytes(1 + rng.int(t % 5 === 0 ? 20 : 20_000)));
    const all: { m: number; c: Uint8Array }[] = [];
    for (let m = 0; m < msgs.length; m++) {
      const chunks = chunker.split(msgs[m]);
      assert.equal(chunks.length, chunkCount(msgs[m].length, maxChunk));
      assert.equal(
        chunks.reduce((s, c) => s + c.length, 0),
        chunkedSize(msgs[m].length, maxChunk),
      );
      for (const c of chunks) {
        assert.ok(c.length <= maxChunk);
        all.push({ m, c });
      }
    }
    const order = t % 2 ? shuffle(rng, all) : all;
    const got: Uint8Array[] = [];
    for (const { m, c } of order) {
      const out = r.push(c);
      if (out) {
        assert.deepEqual(out, msgs[m]);
        got.push(out);
      }
    }
    assert.equal(got.length, msgs.length);
    assert.equal(r.pendingCount, 0);
  }
});

test('single-chunk messages cost only the chunk header; sizes follow the configured and peer limits', () => {
  const c = new Chunker();
  const [one] = c.split(new Uint8Array(100));
  assert.equal(one.length, 100 + CHUNK_HEADER_SIZE);
  assert.equal(c.split(new Uint8Array(DEFAULT_MAX_CHUNK_BYTES - CHUNK_HEADER_SIZE)).length, 1);
  assert.equal(c.split(new Uint8Array(DEFAULT_MAX_CHUNK_BYTES - CHUNK_HEADER_SIZE + 1)).length, 2);
  assert.equal(chunkSizeFor(), 16_384);
  assert.equal(chunkSizeFor(65_536, 16_300), 16_300);
  assert.equal(chunkSizeFor(1 << 20), 262_144);
  assert.equal(chunkSizeFor(1 << 20, Infinity), 262_144);
  assert.equal(chunkSizeFor(65_536, 0), 65_536);
  // Reference numbers: a Float16 P_j for Qwen (V = 151,936) in a verdict takes 19 chunks of 16,300 B.
  assert.equal(chunkCount(verdictFrameSize('reject', distributionBodySize('f16', 151_936)), 16_300), 19);
  throwsCode(() => new Chunker(CHUNK_HEADER_SIZE), 'BadArgument');
  throwsCode(() => c.split(new Uint8Array(0)), 'BadArgument');
  throwsCode(() => new Chunker(13).split(new Uint8Array(70_000)), 'BadArgument'); // > 65,535 chunks
});

test('the reassembler rejects malformed, inconsistent, duplicate and oversize chunks', () => {
  const rng = new Rng(10);
  const msg = rng.bytes(1000);
  const chunks = new Chunker(112).split(msg); // 10 chunks of 100 bytes
  assert.equal(chunks.length, 10);
  const edit = (c: Uint8Array, f: (dv: DataView) => void) => {
    const m = c.slice();
    f(new DataView(m.buffer));
    return m;
  };
  const fresh = () => new Reassembler({ maxMessageBytes: 1000, maxPendingMessages: 2 });
  throwsCode(() => fresh().push(chunks[0].subarray(0, 11)), 'Truncated');
  throwsCode(() => fresh().push(edit(chunks[0], (d) => d.setUint16(10, 0, true))), 'BadChunk');
  throwsCode(() => fresh().push(edit(chunks[0], (d) => d.setUint16(8, 10, true))), 'BadChunk');
  throwsCode(() => fresh().push(edit(chunks[0], (d) => d.setUint32(4, 0, true))), 'BadChunk');
  throwsCode(() => fresh().push(edit(chunks[0], (d) => d.setUint32(4, 1001, true))), 'TooLarge');
  throwsCode(() => fresh().push(edit(chunks[0], (d) => d.setUint16(10, 1001, true))), 'BadChunk'); // count > L
  throwsCode(() => fresh().push(chunks[0].subarray(0, 111)), 'BadChunk'); // short data
  const r = fresh();
  assert.equal(r.push(chunks[3]), null);
  throwsCode(() => r.push(chunks[3]), 'DuplicateChunk');
  // Same message id, different geometry (L = 990 → S = 99): inconsistent with the pending message.
  const other = new Chunker(111).split(rng.bytes(990))[0];
  throwsCode(() => r.push(other), 'BadChunk');
  // Errors leave the pending message intact.
  for (let i = 0; i < 10; i++) if (i !== 3) r.push(chunks[i]);
  assert.equal(r.pendingCount, 0);
  assert.ok(r.pendingBytes === 0);
});

test('pending messages are bounded: drop the oldest, or refuse with TooManyPending', () => {
  const rng = new Rng(11);
  const chunker = new Chunker(64);
  const msgs = Array.from({ length: 4 }, () => rng.bytes(200));
  const split = msgs.map((m) => chunker.split(m));
  const r = new Reassembler({ maxMessageBytes: 1000, maxPendingMessages: 2 });
  for (const s of split) r.push(s[0]);
  assert.equal(r.pendingCount, 2);
  assert.equal(r.dropped, 2);
  assert.ok(r.pendingBytes <= 2 * (1000 + 0xffff));
  // Messages 0 and 1 were dropped: their remaining chunks start over and never complete alone.
  for (const c of split[0].slice(1)) assert.equal(r.push(c), null);
  for (const s of split.slice(2)) {
    let out: Uint8Array | null = null;
    for (const c of s.slice(1)) out = r.push(c) ?? out;
    assert.equal(out, null, 'dropped by the later restart of message 0');
  }
  const strict = new Reassembler({ maxMessageBytes: 1000, maxPendingMessages: 2, overflow: 'error' });
  strict.push(split[0][0]);
  strict.push(split[1][0]);
  throwsCode(() => strict.push(split[2][0]), 'TooManyPending');
  let out: Uint8Array | null = null;
  for (const c of split[1].slice(1)) out = strict.push(c) ?? out;
  assert.deepEqual(out, msgs[1]);
  strict.reset();
  assert.equal(strict.pendingCount, 0);
});
