/**
 * WebRTC data-channel transport (simple-peer) and the device side of WebSocket signaling. Runs unchanged in
 * Node, a browser page and a Web Worker: the WebRTC stack (`wrtc` in Node), the WebSocket constructor (the `ws`
 * package in Node) and the Peer constructor are injected; nothing here imports a Node-only module.
 *
 * Signaling (JSON text messages, one WebSocket per connection attempt):
 *   device → edge: `{type:'join', token?}` first, then `{type:'signal', data}` (offer, ICE candidates);
 *   edge → device: `{type:'signal', data}` (answer, ICE candidates) or `{type:'error', code, message}` then close.
 * The socket is closed as soon as the data channel is open, so signaling never carries session data.
 * A reconnecting device names its session in the URL (`?session=<id>`, SESSION_QUERY): only a routing hint for
 * a proxy in front of several edges (nginx `hash $arg_session consistent`); the resume itself is proved by the
 * secret in the hello.
 */
import SimplePeer from 'simple-peer';
import { ProtocolError, ProtocolErrorCode, type ClosedReason } from '../errors.js';
import { DEVICE_TIMEOUTS } from '../settings.js';
import type { RawChannel } from './transport.js';

/** Largest signaling message either side accepts (an SDP offer for one data channel is ~1 KB). */
export const MAX_SIGNAL_MESSAGE_BYTES = 32 * 1024;
/** Signaling messages accepted per connection attempt (SDP plus trickled candidates is a few dozen). */
export const MAX_SIGNAL_MESSAGES = 200;
/**
 * libwebrtc's per-channel send queue limit. Past it @roamhq/wrtc silently drops messages (browsers throw), so
 * peerChannel refuses the send instead.
 */
export const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

/** Query parameter of the signaling URL that names the session a device resumes (a proxy's routing key). */
export const SESSION_QUERY = 'session';

/** A session id as the signaling URL carries it: decimal, 1..2^32−1 (the frame header's u32); else null. */
export function parseSessionQuery(v: string): number | null {
  if (!/^[1-9]\d{0,9}$/.test(v)) return null;
  const n = Number(v);
  return n <= 0xffff_ffff ? n : null;
}

/** The WebRTC implementation handed to simple-peer (`@roamhq/wrtc` in Node; omit in browsers). */
export interface WrtcLike {
  RTCPeerConnection: unknown;
  RTCSessionDescription: unknown;
  RTCIceCandidate: unknown;
}

/** The subset of simple-peer's options this module passes. */
export interface PeerOptions {
  initiator?: boolean;
  wrtc?: WrtcLike;
  config?: RTCConfiguration;
  trickle?: boolean;
}

/** The part of a simple-peer instance this module uses, including the private `_channel`/`_pc` fields. */
export interface PeerLike {
  send(data: Uint8Array): void;
  signal(data: unknown): void;
  destroy(err?: Error): void;
  on(event: string, listener: (...args: any[]) => void): unknown;
  readonly destroyed?: boolean;
  readonly connected?: boolean;
  _channel?: { bufferedAmount?: number } | null;
  _pc?: {
    sctp?: { maxMessageSize?: number } | null;
    getStats?(): Promise<{ forEach(cb: (stat: any) => void): void }>;
  } | null;
}

export type PeerConstructor = new (opts: PeerOptions) => PeerLike;

/** What connectEdge needs from a WebSocket: the browser's and the `ws` package's both fit. */
export interface SignalingSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'close' | 'error' | 'message', listener: (ev: any) => void): void;
}

export type SignalingSocketConstructor = new (url: string) => SignalingSocket;

/** A signaling message, as carried in JSON. */
export type SignalMessage =
  | { type: 'join'; token?: string }
  | { type: 'signal'; data: SignalData }
  | { type: 'error'; code: string; message: string };

/** The simple-peer signal payloads a data-channel-only connection exchanges. */
export type SignalData =
  | { type: 'offer' | 'answer'; sdp: string }
  | {
      type: 'candidate';
      candidate: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null };
    };

const OPEN = 1;
const PROTOCOL_CODES = new Set<string>(Object.values(ProtocolErrorCode));

/** The protocol error code named by a peer, or Internal when it names none we know. */
export function errorCodeFrom(code: unknown): ProtocolErrorCode {
  return typeof code === 'string' && PROTOCOL_CODES.has(code)
    ? (code as ProtocolErrorCode)
    : ProtocolErrorCode.Internal;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a simple-peer signal payload; returns it typed, or a reason it is unacceptable. `expect` is the
 * session description this side may receive ('offer' on the edge, 'answer' on the device).
 */
export function validateSignalData(data: unknown, expect: 'offer' | 'answer'): SignalData | string {
  if (!isObject(data)) return 'signal data must be an object';
  if (data.type === 'candidate') {
    const c = data.candidate;
    if (!isObject(c) || typeof c.candidate !== 'string') return 'candidate must carry a candidate string';
    if (c.sdpMid !== undefined && c.sdpMid !== null && typeof c.sdpMid !== 'string') return 'bad sdpMid';
    if (c.sdpMLineIndex !== undefined && c.sdpMLineIndex !== null && !Number.isInteger(c.sdpMLineIndex)) {
      return 'bad sdpMLineIndex';
    }
    return data as SignalData;
  }
  if (data.type === expect) {
    if (typeof data.sdp !== 'string' || data.sdp.length === 0) return `${expect} must carry an sdp string`;
    return data as SignalData;
  }
  return `unexpected signal type ${JSON.stringify(data.type)} (expected ${expect} or candidate)`;
}

/**
 * The signaling WebSocket URL for an edge URL: ws(s) URLs are kept, http(s) URLs get ws(s) and `/signal`; with
 * `session`, the resumed session's id as SESSION_QUERY.
 */
export function signalingUrl(edgeUrl: string, session?: number): string {
  let u: URL;
  try {
    u = new URL(edgeUrl);
  } catch {
    throw new ProtocolError(ProtocolErrorCode.BadSettings, `invalid edge URL ${JSON.stringify(edgeUrl)}`);
  }
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    if (!u.pathname.endsWith('/signal')) u.pathname = u.pathname.replace(/\/+$/, '') + '/signal';
  } else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new ProtocolError(
      ProtocolErrorCode.BadSettings,
      `edge URL must be ws://, wss://, http:// or https://, got ${JSON.stringify(edgeUrl)}`,
    );
  }
  u.hash = '';
  if (session !== undefined) u.searchParams.set(SESSION_QUERY, String(session));
  return u.toString();
}

/** A received message as a plain Uint8Array (never a Buffer, whose slice() aliases, nor a pooled view). */
function toBytes(data: unknown): Uint8Array | null {
  if (data instanceof Uint8Array) {
    // A view covering its whole buffer is the channel's own fresh copy: rewrap without copying.
    if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength)
      return new Uint8Array(data.buffer);
    return new Uint8Array(data); // copies
  }
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data))
    return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  if (typeof data === 'string') return new TextEncoder().encode(data);
  return null;
}

/**
 * Adapts a connected simple-peer instance to a RawChannel. Messages that arrive before onMessage is called wait
 * in simple-peer's stream buffer, so an edge can hand the channel over asynchronously without losing any.
 */
export function peerChannel(peer: PeerLike): RawChannel {
  let closed = !!peer.destroyed;
  let closeErr: Error | undefined;
  const closeHandlers: ((err?: Error) => void)[] = [];
  let messageHandler: ((m: Uint8Array) => void) | null = null;
  let listening = false;
  const finish = (err?: Error) => {
    if (closed) return;
    closed = true;
    closeErr = err;
    for (const h of closeHandlers.splice(0)) h(err);
  };
  // Always listen for 'error': an unhandled stream error would crash the process.
  peer.on('error', (err: Error) => finish(err));
  peer.on('close', () => finish());

  return {
    send(message) {
      if (closed) throw new Error('data channel closed');
      const queued = peer._channel?.bufferedAmount ?? 0;
      if (queued + message.byteLength > MAX_BUFFERED_BYTES) {
        throw new Error(`data channel send queue full (${queued} bytes buffered)`);
      }
      peer.send(message);
    },
    bufferedAmount: () => peer._channel?.bufferedAmount ?? 0,
    maxMessageSize() {
      const m = peer._pc?.sctp?.maxMessageSize;
      return typeof m === 'number' && Number.isFinite(m) && m > 0 ? m : undefined;
    },
    onMessage(cb) {
      messageHandler = cb;
      if (listening) return;
      listening = true;
      peer.on('data', (data: unknown) => {
        const bytes = toBytes(data);
        if (bytes) messageHandler?.(bytes);
      });
    },
    onClose(cb) {
      if (closed) queueMicrotask(() => cb(closeErr));
      else closeHandlers.push(cb);
    },
    close() {
      peer.destroy();
    },
    async transportStats() {
      const pc = peer._pc;
      if (!pc || typeof pc.getStats !== 'function') return undefined;
      let report: Awaited<ReturnType<NonNullable<typeof pc.getStats>>>;
      try {
        report = await pc.getStats();
      } catch {
        return undefined;
      }
      const stats: any[] = [];
      report.forEach((s) => stats.push(s));
      const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
      // 'transport' entries (Chromium, libwebrtc) count every DTLS/SCTP/UDP byte of the connection.
      const transports = stats.filter((s) => s.type === 'transport' && num(s.bytesSent) !== undefined);
      if (transports.length > 0) {
        let bytesSent = 0;
        let bytesReceived = 0;
        for (const t of transports) {
          bytesSent += num(t.bytesSent) ?? 0;
          bytesReceived += num(t.bytesReceived) ?? 0;
        }
        return { bytesSent, bytesReceived };
      }
      // Otherwise (Firefox) the selected candidate pair carries the same counters.
      const pair =
        stats.find((s) => s.type === 'candidate-pair' && s.selected === true) ??
        stats.find((s) => s.type === 'candidate-pair' && s.nominated === true && s.state === 'succeeded');
      if (!pair || num(pair.bytesSent) === undefined) return undefined;
      return { bytesSent: num(pair.bytesSent) ?? 0, bytesReceived: num(pair.bytesReceived) ?? 0 };
    },
  };
}

export interface ConnectEdgeOptions {
  /** The edge: `ws(s)://host:port/signal`, or its `http(s)://` URL (then `/signal` is appended). */
  url: string;
  /** WebSocket constructor (default: the global one; pass the `ws` package's in Node 20). */
  WebSocket?: SignalingSocketConstructor;
  /** WebRTC implementation (`@roamhq/wrtc` in Node; omit in browsers). */
  wrtc?: WrtcLike;
  /** Peer constructor (default: simple-peer). */
  Peer?: PeerConstructor;
  iceServers?: RTCIceServer[];
  /** Sent in the join message when the edge requires one. */
  token?: string;
  /** The session this connection resumes, named in the URL so a proxy routes it to the node that holds it. */
  session?: number;
  /** From opening the socket to an open data channel (default 15 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface EdgeConnection {
  channel: RawChannel;
  /** Closes the data channel (the signaling socket is already closed). */
  close(): void;
}

/**
 * The device side: signals over a WebSocket, opens a data channel to the edge as the initiator, then closes the
 * socket. Rejects with a ProtocolError: Closed (edge unreachable, socket or peer closed early), Timeout,
 * Unauthorized or another code named by the edge's error message (`remote` set), Aborted, BadSettings (bad URL,
 * no WebSocket implementation).
 */
export function connectEdge(opts: ConnectEdgeOptions): Promise<EdgeConnection> {
  return new Promise<EdgeConnection>((resolve, reject) => {
    const url = signalingUrl(opts.url, opts.session);
    const WS =
      opts.WebSocket ?? (globalThis as { WebSocket?: SignalingSocketConstructor }).WebSocket ?? undefined;
    if (!WS) {
      throw new ProtocolError(
        ProtocolErrorCode.BadSettings,
        'no WebSocket implementation: pass opts.WebSocket (in Node 20, the ws package)',
      );
    }
    const Peer = opts.Peer ?? (SimplePeer as unknown as PeerConstructor);
    const timeoutMs = opts.timeoutMs ?? DEVICE_TIMEOUTS.connectMs;
    if (opts.signal?.aborted) {
      throw new ProtocolError(ProtocolErrorCode.Aborted, 'connection aborted before it started');
    }

    let settled = false;
    let opened = false;
    let peer: PeerLike | null = null;
    let ws: SignalingSocket | undefined;
    let received = 0;
    const closeSocket = () => {
      try {
        if (ws && ws.readyState <= OPEN) ws.close(1000);
      } catch {
        // closing a socket that failed to open can throw in some implementations
      }
    };
    const onAbort = () => fail(ProtocolErrorCode.Aborted, 'connection aborted');
    const cleanup = () => {
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (
      code: ProtocolErrorCode,
      message: string,
      extra: { remote?: boolean; cause?: unknown; reason?: ClosedReason } = {},
    ) => {
      if (settled) return;
      cleanup();
      peer?.destroy();
      closeSocket();
      reject(new ProtocolError(code, message, extra));
    };
    const timer = setTimeout(
      () => fail(ProtocolErrorCode.Timeout, `no WebRTC connection to ${url} within ${timeoutMs} ms`),
      timeoutMs,
    );
    opts.signal?.addEventListener('abort', onAbort);

    try {
      ws = new WS(url);
    } catch (e) {
      cleanup();
      reject(
        new ProtocolError(ProtocolErrorCode.Closed, `cannot open signaling socket to ${url}: ${String(e)}`, {
          cause: e,
        }),
      );
      return;
    }
    const socket = ws;
    const sendJson = (m: SignalMessage) => {
      if (socket.readyState === OPEN) socket.send(JSON.stringify(m));
    };

    socket.addEventListener('open', () => {
      if (settled) return closeSocket();
      opened = true;
      sendJson(opts.token === undefined ? { type: 'join' } : { type: 'join', token: opts.token });
      try {
        peer = new Peer({
          initiator: true,
          wrtc: opts.wrtc,
          config: { iceServers: opts.iceServers ?? [] },
          trickle: true,
        });
      } catch (e) {
        fail(ProtocolErrorCode.Internal, `cannot create a WebRTC peer: ${(e as Error).message}`, {
          cause: e,
        });
        return;
      }
      const p = peer;
      p.on('signal', (data: unknown) => {
        if (!settled) sendJson({ type: 'signal', data: data as SignalData });
      });
      p.on('error', (err: Error) =>
        fail(ProtocolErrorCode.Closed, `WebRTC connection to ${url} failed: ${err.message}`, { cause: err }),
      );
      p.on('close', () => fail(ProtocolErrorCode.Closed, `WebRTC peer closed before connecting to ${url}`));
      p.on('connect', () => {
        if (settled) return;
        cleanup();
        closeSocket();
        const channel = peerChannel(p);
        resolve({ channel, close: () => channel.close() });
      });
    });

    socket.addEventListener('message', (ev: { data?: unknown }) => {
      if (settled) return;
      const text = ev.data;
      if (typeof text !== 'string') {
        return fail(ProtocolErrorCode.BadFrame, 'edge sent a binary signaling message');
      }
      if (text.length > MAX_SIGNAL_MESSAGE_BYTES || ++received > MAX_SIGNAL_MESSAGES) {
        return fail(ProtocolErrorCode.BadFrame, 'edge sent too much signaling data');
      }
      let msg: unknown;
      try {
        msg = JSON.parse(text);
      } catch {
        return fail(ProtocolErrorCode.BadFrame, 'edge sent a signaling message that is not JSON');
      }
      if (!isObject(msg))
        return fail(ProtocolErrorCode.BadFrame, 'edge sent a signaling message that is not an object');
      if (msg.type === 'error') {
        const code = errorCodeFrom(msg.code);
        const detail = typeof msg.message === 'string' ? msg.message.slice(0, 500) : String(msg.code);
        return fail(code, `edge refused the connection (${code}): ${detail}`, { remote: true });
      }
      if (msg.type === 'signal') {
        const data = validateSignalData(msg.data, 'answer');
        if (typeof data === 'string')
          return fail(ProtocolErrorCode.BadFrame, `edge sent bad signal data: ${data}`);
        try {
          peer?.signal(data);
        } catch (e) {
          fail(ProtocolErrorCode.BadFrame, `edge sent unusable signal data: ${(e as Error).message}`, {
            cause: e,
          });
        }
      }
      // Other types are ignored so that an edge may add informational messages later.
    });

    socket.addEventListener('error', (ev: { message?: string; error?: unknown }) => {
      const why = typeof ev?.message === 'string' && ev.message ? `: ${ev.message}` : '';
      if (!opened)
        fail(ProtocolErrorCode.Closed, `cannot reach the edge at ${url}${why}`, {
          cause: ev?.error,
          reason: 'unreachable',
        });
      else fail(ProtocolErrorCode.Closed, `signaling socket to ${url} failed${why}`, { cause: ev?.error });
    });
    socket.addEventListener('close', () => {
      if (!opened)
        fail(ProtocolErrorCode.Closed, `cannot reach the edge at ${url}`, { reason: 'unreachable' });
      else
        fail(ProtocolErrorCode.Closed, `edge closed signaling before the WebRTC connection to ${url} opened`);
    });
  });
}
