/**
 * The transport shaper: a RawChannel wrapper that delays every message (a codec chunk, i.e. one data-channel
 * message) the way a link would. Per direction: a FIFO serialization queue at the link rate, then propagation
 * (RTT/2), in-order delivery (data channels are ordered, so a late message holds back the ones behind it), and
 * optional packet loss whose retransmission costs one extra RTT/2 plus the packet's serialization, as an SCTP
 * retransmission would. The scheduling math is pure (LinkDirection) so tests can check it without timers.
 */
import { prng } from '@dssd/protocol/testing';
import { memoryChannelPair, type RawChannel } from '@dssd/protocol';

/** A named link: the paper's symmetric grid and asymmetric mobile profiles. */
export interface LinkProfile {
  name: string;
  rttMs: number;
  upMbps: number;
  downMbps: number;
  /** Packet loss probability per direction (0 = none). */
  loss?: number;
}

export interface DirectionParams {
  /** One-way propagation delay, ms. */
  delayMs: number;
  /** Link rate in bit/s (Infinity: no serialization). */
  rateBps: number;
  loss?: number;
  /** Payload bytes per packet (SCTP DATA over DTLS/UDP on a 1280-byte path MTU, roughly). */
  packetPayload?: number;
  /** Header bytes per packet on the wire: IPv4 20 + UDP 8 + DTLS ~29 + SCTP common 12 + DATA chunk 16. */
  packetOverhead?: number;
}

export const PACKET_PAYLOAD = 1188;
export const PACKET_OVERHEAD = 85;

/** Deterministic uniform source (the fuzzer's mulberry32) so lossy runs repeat. */
export const seededUniform = prng;

export interface Scheduled {
  /** When the last bit leaves the sender (serialization done, retransmissions included). */
  sentAt: number;
  /** When the receiver gets the whole message. */
  deliverAt: number;
  wireBytes: number;
  packets: number;
  lostPackets: number;
}

/** One direction of a link: turns (send time, size) into delivery times. */
export class LinkDirection {
  private freeAt = -Infinity;
  private lastDelivery = -Infinity;
  readonly packetPayload: number;
  readonly packetOverhead: number;
  wireBytes = 0;
  messages = 0;
  lostPackets = 0;

  constructor(
    readonly p: DirectionParams,
    private readonly uniform: () => number = seededUniform(1),
  ) {
    if (!(p.delayMs >= 0)) throw new RangeError(`delayMs must be >= 0, got ${p.delayMs}`);
    if (!(p.rateBps > 0)) throw new RangeError(`rateBps must be > 0, got ${p.rateBps}`);
    const loss = p.loss ?? 0;
    if (!(loss >= 0 && loss < 1)) throw new RangeError(`loss must be in [0, 1), got ${loss}`);
    this.packetPayload = p.packetPayload ?? PACKET_PAYLOAD;
    this.packetOverhead = p.packetOverhead ?? PACKET_OVERHEAD;
  }

  /** Serialization time of `bytes` on the wire, ms. */
  serializationMs(bytes: number): number {
    return Number.isFinite(this.p.rateBps) ? ((bytes * 8) / this.p.rateBps) * 1000 : 0;
  }

  /** Schedules a message of `bytes` application bytes handed over at time `now` (ms). */
  schedule(now: number, bytes: number): Scheduled {
    const packets = Math.max(1, Math.ceil(bytes / this.packetPayload));
    const wireBytes = bytes + packets * this.packetOverhead;
    const start = Math.max(now, this.freeAt);
    let sentAt = start + this.serializationMs(wireBytes);
    let extra = 0;
    let lost = 0;
    const loss = this.p.loss ?? 0;
    if (loss > 0) {
      const perPacket = this.serializationMs(wireBytes / packets);
      for (let i = 0; i < packets; i++) {
        // A packet may be lost again on retransmission: each loss costs RTT/2 more and its bytes again.
        while (this.uniform() < loss) {
          lost++;
          sentAt += perPacket;
        }
      }
      if (lost > 0) extra = this.p.delayMs;
    }
    this.freeAt = sentAt;
    const deliverAt = Math.max(sentAt + this.p.delayMs + extra, this.lastDelivery);
    this.lastDelivery = deliverAt;
    this.wireBytes += wireBytes + lost * (wireBytes / packets);
    this.messages++;
    this.lostPackets += lost;
    return { sentAt, deliverAt, wireBytes, packets, lostPackets: lost };
  }

  /** Bytes still being serialized at `now` (what a data channel reports as bufferedAmount, roughly). */
  backlogBytes(now: number): number {
    return this.freeAt > now && Number.isFinite(this.p.rateBps)
      ? ((this.freeAt - now) * this.p.rateBps) / 8000
      : 0;
  }
}

export function directions(profile: LinkProfile, seed = 1): { up: LinkDirection; down: LinkDirection } {
  const half = profile.rttMs / 2;
  return {
    up: new LinkDirection(
      { delayMs: half, rateBps: profile.upMbps * 1e6, loss: profile.loss },
      seededUniform(seed * 2 + 1),
    ),
    down: new LinkDirection(
      { delayMs: half, rateBps: profile.downMbps * 1e6, loss: profile.loss },
      seededUniform(seed * 2 + 2),
    ),
  };
}

const now = () => performance.now();

/**
 * Wraps a channel so that what is sent on it reaches the peer at the scheduled times. Delivery is driven by a
 * timer to ~1 ms before the due time, then setImmediate, so sub-millisecond delays are honoured without
 * busy-waiting for long.
 */
export function shapeChannel(inner: RawChannel, dir: LinkDirection): RawChannel {
  const queue: { at: number; m: Uint8Array }[] = [];
  let armed = false;
  let closed = false;
  const pump = () => {
    armed = false;
    if (closed) return;
    const t = now();
    while (queue.length && queue[0].at <= t) {
      const { m } = queue.shift()!;
      try {
        inner.send(m);
      } catch {
        closed = true;
        return;
      }
    }
    arm();
  };
  const arm = () => {
    if (armed || !queue.length) return;
    armed = true;
    const wait = queue[0].at - now();
    if (wait > 1.5) setTimeout(pump, Math.floor(wait - 1));
    else setImmediate(pump);
  };
  return {
    send(message) {
      if (closed) throw new Error('channel closed');
      const s = dir.schedule(now(), message.byteLength);
      queue.push({ at: s.deliverAt, m: message.slice() });
      arm();
    },
    bufferedAmount: () => dir.backlogBytes(now()),
    maxMessageSize: () => inner.maxMessageSize(),
    onMessage: (cb) => inner.onMessage(cb),
    onClose: (cb) => inner.onClose(cb),
    close() {
      closed = true;
      queue.length = 0;
      inner.close();
    },
    transportStats: inner.transportStats ? () => inner.transportStats!() : undefined,
  };
}

/** An in-memory device/edge channel pair over a simulated link ([device end, edge end]). */
export function shapedChannelPair(
  profile: LinkProfile,
  seed = 1,
): { device: RawChannel; edge: RawChannel; up: LinkDirection; down: LinkDirection } {
  const [a, b] = memoryChannelPair();
  const { up, down } = directions(profile, seed);
  return { device: shapeChannel(a, up), edge: shapeChannel(b, down), up, down };
}

/**
 * Delay only, both directions, at one end of a real channel (the device's end of a WebRTC data channel whose
 * rates the kernel shapes): what is sent waits for `up`, what arrives waits for `down` before the callbacks see
 * it. The kernel has no netem here, so propagation delay stays in the transport; give both directions an
 * infinite rate so that serialization is left to the kernel.
 */
export function delayChannel(inner: RawChannel, up: LinkDirection, down: LinkDirection): RawChannel {
  let held = 0;
  const sendSide = shapeChannel(
    {
      send(m) {
        held -= m.byteLength;
        inner.send(m);
      },
      bufferedAmount: () => inner.bufferedAmount(),
      maxMessageSize: () => inner.maxMessageSize(),
      // The receive side below owns the inner message callback.
      onMessage: () => {},
      onClose: (cb) => inner.onClose(cb),
      close: () => inner.close(),
      transportStats: inner.transportStats ? () => inner.transportStats!() : undefined,
    },
    up,
  );
  const listeners: ((m: Uint8Array) => void)[] = [];
  const queue: { at: number; m: Uint8Array }[] = [];
  let armed = false;
  const pump = () => {
    armed = false;
    const t = now();
    while (queue.length && queue[0].at <= t) {
      const { m } = queue.shift()!;
      for (const cb of listeners) cb(m);
    }
    arm();
  };
  const arm = () => {
    if (armed || !queue.length) return;
    armed = true;
    const wait = queue[0].at - now();
    if (wait > 1.5) setTimeout(pump, Math.floor(wait - 1));
    else setImmediate(pump);
  };
  inner.onMessage((m) => {
    queue.push({ at: down.schedule(now(), m.byteLength).deliverAt, m });
    arm();
  });
  return {
    ...sendSide,
    send(m) {
      held += m.byteLength;
      sendSide.send(m);
    },
    // Messages still in the delay line count as buffered, so the transport's flow control sees them.
    bufferedAmount: () => inner.bufferedAmount() + held,
    onMessage: (cb) => void listeners.push(cb),
    close() {
      queue.length = 0;
      sendSide.close();
    },
  };
}
