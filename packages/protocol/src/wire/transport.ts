/**
 * Frame transports. A RawChannel moves opaque messages (a WebRTC data channel, an in-memory pipe); a
 * FrameTransport puts codec chunking, reassembly, backpressure and byte accounting on top of one, so the session
 * state machines only ever see whole frames.
 */
import {
  Chunker,
  Reassembler,
  chunkSizeFor,
  DEFAULT_MAX_CHUNK_BYTES,
  type ReassemblyBudget,
} from '@dssd/codec';
import { ProtocolError, ProtocolErrorCode } from '../errors.js';

/** A message pipe: what a data channel or a test pipe offers. */
export interface RawChannel {
  send(message: Uint8Array): void;
  /** Bytes queued but not yet handed to the network (0 when unknown). */
  bufferedAmount(): number;
  /** Largest message the peer accepts (undefined when unknown). */
  maxMessageSize(): number | undefined;
  onMessage(cb: (message: Uint8Array) => void): void;
  onClose(cb: (err?: Error) => void): void;
  close(): void;
  /** Transport-level byte counters (DTLS/SCTP/UDP included), when the stack exposes them. */
  transportStats?(): Promise<{ bytesSent: number; bytesReceived: number } | undefined>;
}

export interface TransportCounters {
  /** Application bytes: every chunk as sent, chunk headers included. */
  bytesSent: number;
  bytesReceived: number;
  /** Frames (whole messages before chunking). */
  framesSent: number;
  framesReceived: number;
  /** Chunks (data-channel messages). */
  chunksSent: number;
  chunksReceived: number;
}

export interface FrameTransportOptions {
  /** Chunk size limit before the peer's maxMessageSize is applied (default 16 KiB, the portable size). */
  maxChunkBytes?: number;
  /** Largest frame accepted from the peer. */
  maxFrameBytes?: number;
  /** Partially received frames held at once. */
  maxPendingFrames?: number;
  /** Memory for partial frames shared with other transports (an edge's budget). */
  reassemblyBudget?: ReassemblyBudget;
  /** Pause sending while more than this many bytes are queued (polling: some stacks lack bufferedamountlow). */
  highWaterMark?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A close lets the frames already sent leave first (an error frame just before a close, the usual way an edge
 * ends a session): up to CLOSE_DRAIN_MS for the channel's queue to empty, then CLOSE_LINGER_MS more, because
 * libdatachannel loses what is still queued, or just handed to SCTP, when its channel closes (libwebrtc and
 * browsers send it first). Closing the RawChannel itself stays immediate (a dropped network).
 */
export const CLOSE_DRAIN_MS = 1000;
export const CLOSE_LINGER_MS = 50;

export class FrameTransport {
  readonly counters: TransportCounters = {
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    chunksSent: 0,
    chunksReceived: 0,
  };
  private readonly chunker: Chunker;
  private readonly reassembler: Reassembler;
  private readonly highWaterMark: number;
  private frameHandler: ((frame: Uint8Array) => void) | null = null;
  private closeHandlers: ((err?: Error) => void)[] = [];
  private sendQueue: Promise<void> = Promise.resolve();
  closed = false;
  closeError: Error | undefined;

  constructor(
    readonly channel: RawChannel,
    opts: FrameTransportOptions = {},
  ) {
    this.chunker = new Chunker(
      chunkSizeFor(opts.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES, channel.maxMessageSize()),
    );
    this.reassembler = new Reassembler({
      maxMessageBytes: opts.maxFrameBytes ?? 64 * 1024 * 1024,
      maxPendingMessages: opts.maxPendingFrames ?? 8,
      budget: opts.reassemblyBudget,
    });
    this.highWaterMark = opts.highWaterMark ?? 1 << 20;
    channel.onMessage((chunk) => {
      this.counters.chunksReceived++;
      this.counters.bytesReceived += chunk.byteLength;
      let frame: Uint8Array | null;
      try {
        frame = this.reassembler.push(chunk);
      } catch (e) {
        // A malformed chunk is the peer's fault: report it as a bad frame, keep the channel.
        this.frameHandler?.(new Uint8Array(0));
        void e;
        return;
      }
      if (frame) {
        this.counters.framesReceived++;
        this.frameHandler?.(frame);
      }
    });
    channel.onClose((err) => {
      if (this.closed) return;
      this.closed = true;
      this.reassembler.reset(); // gives partial frames' memory back to a shared budget
      this.closeError = err;
      for (const h of this.closeHandlers) h(err);
    });
  }

  /** Lowers (or raises) the largest frame accepted from the peer, e.g. once its session's settings are known. */
  setMaxFrameBytes(n: number): void {
    this.reassembler.setMaxMessageBytes(n);
  }

  get maxFrameBytes(): number {
    return this.reassembler.maxMessageBytes;
  }

  /** Drops partial frames older than `maxAgeMs` (their own deadline); returns how many. */
  expirePartial(maxAgeMs: number): number {
    return this.reassembler.expire(maxAgeMs);
  }

  /** Partial frames held now. */
  get partialFrames(): number {
    return this.reassembler.pendingCount;
  }

  /** Every received frame (an empty array marks an undecodable chunk). */
  onFrame(cb: (frame: Uint8Array) => void): void {
    this.frameHandler = cb;
  }

  onClose(cb: (err?: Error) => void): void {
    if (this.closed) cb(this.closeError);
    else this.closeHandlers.push(cb);
  }

  /** Sends one frame in order; resolves once its chunks are handed to the channel. */
  send(frame: Uint8Array): Promise<void> {
    const next = this.sendQueue.then(() => this.sendNow(frame));
    this.sendQueue = next.catch(() => undefined);
    return next;
  }

  private async sendNow(frame: Uint8Array): Promise<void> {
    if (this.closed) throw new ProtocolError(ProtocolErrorCode.Closed, 'the data channel is closed');
    const chunks = this.chunker.split(frame);
    for (const c of chunks) {
      while (this.channel.bufferedAmount() > this.highWaterMark) {
        if (this.closed) throw new ProtocolError(ProtocolErrorCode.Closed, 'the data channel is closed');
        await sleep(1);
      }
      try {
        this.channel.send(c);
      } catch (e) {
        throw new ProtocolError(ProtocolErrorCode.Closed, `send failed: ${(e as Error).message}`, {
          cause: e,
        });
      }
      this.counters.chunksSent++;
      this.counters.bytesSent += c.byteLength;
    }
    this.counters.framesSent++;
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    // Bounded whatever the peer does: frames not yet handed to the channel are not waited for.
    const until = performance.now() + CLOSE_DRAIN_MS;
    void (async () => {
      while (!this.closed && this.channel.bufferedAmount() > 0 && performance.now() < until) await sleep(5);
      if (!this.closed) await sleep(CLOSE_LINGER_MS);
      this.channel.close();
    })();
  }
  private closing = false;
}

/**
 * Two connected in-memory channels for tests: messages are copied and delivered asynchronously in order, like a
 * data channel, so re-entrancy bugs show up here too.
 */
export function memoryChannelPair(opts: { maxMessageSize?: number } = {}): [RawChannel, RawChannel] {
  type End = {
    onMsg: ((m: Uint8Array) => void) | null;
    onClose: ((err?: Error) => void)[];
    closed: boolean;
    queue: Uint8Array[];
  };
  const ends: [End, End] = [
    { onMsg: null, onClose: [], closed: false, queue: [] },
    { onMsg: null, onClose: [], closed: false, queue: [] },
  ];
  const deliver = (to: End) => {
    setImmediate(() => {
      const m = to.queue.shift();
      if (m && !to.closed) to.onMsg?.(m);
    });
  };
  const closeBoth = () => {
    for (const e of ends) {
      if (e.closed) continue;
      e.closed = true;
      for (const h of e.onClose) h();
    }
  };
  const make = (self: End, peer: End): RawChannel => ({
    send(message) {
      if (self.closed) throw new Error('channel closed');
      if (opts.maxMessageSize !== undefined && message.byteLength > opts.maxMessageSize) {
        closeBoth(); // like a stack that silently closes on an oversize message
        return;
      }
      peer.queue.push(message.slice());
      deliver(peer);
    },
    bufferedAmount: () => 0,
    maxMessageSize: () => opts.maxMessageSize,
    onMessage(cb) {
      self.onMsg = cb;
    },
    onClose(cb) {
      self.onClose.push(cb);
    },
    close: closeBoth,
  });
  return [make(ends[0], ends[1]), make(ends[1], ends[0])];
}
