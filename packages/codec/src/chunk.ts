/**
 * Chunking for message-size-limited transports (WebRTC data channels: 16 KiB is portable; some stacks
 * silently close the channel on messages over 262,144 B).
 *
 * Chunk layout (little-endian):
 *   [0, 4)   u32 message id (per Chunker, wrapping)
 *   [4, 8)   u32 message length L (≥ 1)
 *   [8, 10)  u16 chunk index i (< n)
 *   [10, 12) u16 chunk count n (≥ 1)
 *   [12, …)  bytes [i·S, min((i+1)·S, L)) of the message, where S = ⌈L/n⌉
 * Sizes follow from (L, n), so the receiver can check every chunk's length on its own, accept chunks in any
 * order, and allocate the message once. A single-chunk message costs only the 12-byte header.
 */
import { fail } from './errors.js';

export const CHUNK_HEADER_SIZE = 12;
/** Portable WebRTC message size (PeerJS uses 16,300). */
export const DEFAULT_MAX_CHUNK_BYTES = 16 * 1024;
/** Above this some WebRTC stacks close the channel without an error. */
export const MAX_SAFE_MESSAGE_BYTES = 262_144;
export const MAX_CHUNKS_PER_MESSAGE = 0xffff;

/**
 * Chunk size to use: the configured size, lowered to the peer's maxMessageSize (RTCSctpTransport; 0, Infinity
 * or undefined mean "no limit") and to MAX_SAFE_MESSAGE_BYTES.
 */
export function chunkSizeFor(configured = DEFAULT_MAX_CHUNK_BYTES, peerMaxMessageSize?: number): number {
  let size = Math.min(configured, MAX_SAFE_MESSAGE_BYTES);
  if (peerMaxMessageSize !== undefined && Number.isFinite(peerMaxMessageSize) && peerMaxMessageSize > 0) {
    size = Math.min(size, Math.floor(peerMaxMessageSize));
  }
  return size;
}

function checkChunkBytes(maxChunkBytes: number): void {
  if (!Number.isInteger(maxChunkBytes) || maxChunkBytes <= CHUNK_HEADER_SIZE) {
    fail('BadArgument', `maxChunkBytes must be an integer above ${CHUNK_HEADER_SIZE}, got ${maxChunkBytes}`);
  }
}

/** Number of chunks a message of `messageBytes` (≥ 1) is split into. */
export function chunkCount(messageBytes: number, maxChunkBytes = DEFAULT_MAX_CHUNK_BYTES): number {
  checkChunkBytes(maxChunkBytes);
  return Math.max(1, Math.ceil(messageBytes / (maxChunkBytes - CHUNK_HEADER_SIZE)));
}

/** Bytes on the wire for a message of `messageBytes` after chunking (message plus one header per chunk). */
export function chunkedSize(messageBytes: number, maxChunkBytes = DEFAULT_MAX_CHUNK_BYTES): number {
  return messageBytes + CHUNK_HEADER_SIZE * chunkCount(messageBytes, maxChunkBytes);
}

export class Chunker {
  private nextId: number;
  constructor(
    readonly maxChunkBytes = DEFAULT_MAX_CHUNK_BYTES,
    firstMessageId = 0,
  ) {
    checkChunkBytes(maxChunkBytes);
    this.nextId = firstMessageId >>> 0;
  }

  /** Splits one message into chunks of at most maxChunkBytes each, header included. */
  split(message: Uint8Array): Uint8Array[] {
    const L = message.length;
    if (L === 0) fail('BadArgument', 'cannot chunk an empty message');
    if (L > 0xffffffff) fail('BadArgument', 'message longer than 2^32 - 1 bytes');
    const n = chunkCount(L, this.maxChunkBytes);
    if (n > MAX_CHUNKS_PER_MESSAGE) {
      fail(
        'BadArgument',
        `message of ${L} bytes needs ${n} chunks (max ${MAX_CHUNKS_PER_MESSAGE}); raise maxChunkBytes`,
      );
    }
    // Even split: every chunk but the last carries S bytes, so the receiver can derive all sizes from (L, n).
    const S = Math.ceil(L / n);
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0;
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const data = message.subarray(i * S, Math.min((i + 1) * S, L));
      const c = new Uint8Array(CHUNK_HEADER_SIZE + data.length);
      const dv = new DataView(c.buffer);
      dv.setUint32(0, id, true);
      dv.setUint32(4, L, true);
      dv.setUint16(8, i, true);
      dv.setUint16(10, n, true);
      c.set(data, CHUNK_HEADER_SIZE);
      chunks.push(c);
    }
    return chunks;
  }
}

/**
 * Memory shared by many reassemblers (an edge's budget for partial frames): a partial message reserves its
 * buffer before it is allocated and gives it back when it completes or is dropped.
 */
export class ReassemblyBudget {
  used = 0;
  constructor(readonly limitBytes: number) {}
  reserve(n: number): boolean {
    if (this.used + n > this.limitBytes) return false;
    this.used += n;
    return true;
  }
  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

export interface ReassemblerLimits {
  /** Largest message accepted (checked on the first chunk, before allocating). */
  maxMessageBytes: number;
  /** Most partially received messages held at once. */
  maxPendingMessages: number;
  /** What to do when a new message would exceed maxPendingMessages (default: drop the oldest pending one). */
  overflow?: 'dropOldest' | 'error';
  /** Shared memory budget for partial messages (default: none beyond the per-reassembler limits). */
  budget?: ReassemblyBudget;
  /** Clock for partial-message deadlines (ms). */
  now?: () => number;
}

interface Pending {
  length: number;
  count: number;
  stride: number;
  buf: Uint8Array;
  got: Uint8Array;
  received: number;
  startedAt: number;
}

export class Reassembler {
  private readonly pending = new Map<number, Pending>(); // insertion order = age
  private readonly limits: Required<Omit<ReassemblerLimits, 'budget'>> & { budget?: ReassemblyBudget };
  /** Partially received messages discarded by the 'dropOldest' policy or a deadline. */
  dropped = 0;

  constructor(limits: ReassemblerLimits) {
    const { maxMessageBytes, maxPendingMessages } = limits;
    if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 1)
      fail('BadArgument', 'maxMessageBytes must be ≥ 1');
    if (!Number.isInteger(maxPendingMessages) || maxPendingMessages < 1) {
      fail('BadArgument', 'maxPendingMessages must be ≥ 1');
    }
    this.limits = {
      maxMessageBytes,
      maxPendingMessages,
      overflow: limits.overflow ?? 'dropOldest',
      budget: limits.budget,
      now: limits.now ?? (() => performance.now()),
    };
  }

  /** Lowers or raises the largest message accepted from now on (e.g. once a session's settings are known). */
  setMaxMessageBytes(n: number): void {
    if (!Number.isInteger(n) || n < 1) fail('BadArgument', 'maxMessageBytes must be ≥ 1');
    this.limits.maxMessageBytes = n;
  }

  get maxMessageBytes(): number {
    return this.limits.maxMessageBytes;
  }

  /** Drops partial messages whose first chunk came more than `maxAgeMs` ago; returns how many. */
  expire(maxAgeMs: number): number {
    const now = this.limits.now();
    let n = 0;
    for (const [id, p] of this.pending) {
      if (now - p.startedAt <= maxAgeMs) continue;
      this.forget(id, p);
      this.dropped++;
      n++;
    }
    return n;
  }

  private forget(id: number, p: Pending): void {
    this.pending.delete(id);
    this.limits.budget?.release(p.length + p.count);
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Bytes held for incomplete messages; at most maxPendingMessages × (maxMessageBytes + count). */
  get pendingBytes(): number {
    let n = 0;
    for (const p of this.pending.values()) n += p.buf.length + p.got.length;
    return n;
  }

  /** Forgets every incomplete message (e.g. when the channel is reset). */
  reset(): void {
    for (const [id, p] of [...this.pending]) this.forget(id, p);
  }

  /**
   * Accepts one chunk; returns the whole message when this chunk completes it, else null. Throws CodecError
   * for malformed, inconsistent, duplicate or oversize chunks, leaving other pending messages untouched.
   */
  push(chunk: Uint8Array): Uint8Array | null {
    if (chunk.length < CHUNK_HEADER_SIZE)
      fail('Truncated', `chunk of ${chunk.length} bytes is shorter than its header`);
    const dv = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const id = dv.getUint32(0, true);
    const length = dv.getUint32(4, true);
    const index = dv.getUint16(8, true);
    const count = dv.getUint16(10, true);
    if (length === 0 || count === 0) fail('BadChunk', 'chunk declares an empty message or zero chunks');
    if (index >= count) fail('BadChunk', `chunk index ${index} is not below count ${count}`);
    if (length > this.limits.maxMessageBytes) {
      fail('TooLarge', `message of ${length} bytes exceeds ${this.limits.maxMessageBytes}`);
    }
    const stride = Math.ceil(length / count);
    if ((count - 1) * stride >= length)
      fail('BadChunk', `${count} chunks do not fit a ${length}-byte message`);
    const expected = Math.min(stride, length - index * stride);
    const dataLength = chunk.length - CHUNK_HEADER_SIZE;
    if (dataLength !== expected)
      fail('BadChunk', `chunk ${index} carries ${dataLength} bytes, expected ${expected}`);

    let p = this.pending.get(id);
    if (p !== undefined && (p.length !== length || p.count !== count)) {
      fail('BadChunk', `chunk of message ${id} disagrees with earlier chunks on length or count`);
    }
    if (count === 1) return chunk.slice(CHUNK_HEADER_SIZE);
    if (p === undefined) {
      if (this.pending.size >= this.limits.maxPendingMessages) {
        if (this.limits.overflow === 'error') {
          fail('TooManyPending', `${this.pending.size} messages already pending`);
        }
        const oldest = this.pending.keys().next().value as number;
        this.forget(oldest, this.pending.get(oldest)!);
        this.dropped++;
      }
      // Reserved before allocating, so a flood of first chunks cannot take memory the budget does not have.
      if (this.limits.budget && !this.limits.budget.reserve(length + count)) {
        fail('OverBudget', `no reassembly memory left for a ${length}-byte message; try again shortly`);
      }
      p = {
        length,
        count,
        stride,
        buf: new Uint8Array(length),
        got: new Uint8Array(count),
        received: 0,
        startedAt: this.limits.now(),
      };
      this.pending.set(id, p);
    }
    if (p.got[index]) fail('DuplicateChunk', `chunk ${index} of message ${id} arrived twice`);
    p.got[index] = 1;
    p.buf.set(chunk.subarray(CHUNK_HEADER_SIZE), index * stride);
    if (++p.received < count) return null;
    this.forget(id, p);
    return p.buf;
  }
}
