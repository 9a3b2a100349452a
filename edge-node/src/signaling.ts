/**
 * The edge side of WebSocket signaling: waits for the device's join, checks its token, answers its offer as the
 * non-initiating simple-peer and hands back the open data channel. Every incoming message is validated; bad input
 * is answered with `{type:'error', code, message}` and the socket is closed. Nothing throws out of an event
 * handler: failures reject the returned promise.
 */
import type { RawData, WebSocket } from 'ws';
import SimplePeer from 'simple-peer';
import {
  DEVICE_TIMEOUTS,
  MAX_SIGNAL_MESSAGE_BYTES,
  MAX_SIGNAL_MESSAGES,
  ProtocolError,
  ProtocolErrorCode,
  peerChannel,
  validateSignalData,
  type PeerConstructor,
  type PeerLike,
  type RawChannel,
  type SignalMessage,
  type WrtcLike,
} from '@dssd/protocol';

export interface AcceptPeerOptions {
  /** WebRTC implementation (`@roamhq/wrtc`). */
  wrtc: unknown;
  iceServers?: RTCIceServer[];
  /** From the socket's arrival to an open data channel (default 15 s). */
  timeoutMs?: number;
  /**
   * Decides whether the join token is acceptable; absent means everyone is. Returns true (or null) to accept,
   * false or a message for the device to refuse.
   */
  authorize?: (token: string | undefined) => boolean | string | null;
  /** Peer constructor (default: simple-peer). */
  Peer?: PeerConstructor;
  /** How long the socket may stay open after the data channel opened, for the device to close it (default 2 s). */
  lingerMs?: number;
}

/** Longest token accepted in a join message. */
export const MAX_TOKEN_LENGTH = 4096;

const OPEN = 1;
const CLOSE_NORMAL = 1000;
const CLOSE_POLICY = 1008;

function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.byteLength, 0);
  return data.byteLength;
}

function rawText(data: RawData): string {
  const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
  return bytes.toString('utf8');
}

/**
 * Runs the edge side of one signaling exchange on `ws`. Resolves with the data channel once it is open (the socket
 * is then closed); rejects with a ProtocolError (BadFrame, Unauthorized, Timeout, Closed, Internal) after telling
 * the device why where the socket still allows it.
 */
export function acceptPeer(ws: WebSocket, opts: AcceptPeerOptions): Promise<RawChannel> {
  return new Promise<RawChannel>((resolve, reject) => {
    const Peer = opts.Peer ?? (SimplePeer as unknown as PeerConstructor);
    const timeoutMs = opts.timeoutMs ?? DEVICE_TIMEOUTS.connectMs;
    let settled = false;
    let peer: PeerLike | null = null;
    let received = 0;
    let linger: ReturnType<typeof setTimeout> | undefined;

    const send = (m: SignalMessage) => {
      if (ws.readyState !== OPEN) return;
      try {
        ws.send(JSON.stringify(m));
      } catch {
        // the socket went away; its close event settles the exchange
      }
    };
    const closeSocket = (code: number) => {
      try {
        if (ws.readyState <= OPEN) ws.close(code);
      } catch {
        // already closing
      }
    };
    const fail = (code: ProtocolErrorCode, message: string, tell = true) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (tell) send({ type: 'error', code, message });
      closeSocket(
        code === ProtocolErrorCode.Timeout || code === ProtocolErrorCode.Closed ? CLOSE_NORMAL : CLOSE_POLICY,
      );
      peer?.destroy();
      reject(new ProtocolError(code, message));
    };
    const timer = setTimeout(
      () => fail(ProtocolErrorCode.Timeout, `no WebRTC connection within ${timeoutMs} ms`),
      timeoutMs,
    );

    const onJoin = (msg: Record<string, unknown>) => {
      const token = msg.token;
      if (token !== undefined && (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH)) {
        return fail(ProtocolErrorCode.BadFrame, 'join token must be a string');
      }
      let verdict: boolean | string | null = true;
      if (opts.authorize) {
        try {
          verdict = opts.authorize(token);
        } catch {
          verdict = false;
        }
      }
      if (verdict !== true && verdict !== null) {
        return fail(
          ProtocolErrorCode.Unauthorized,
          typeof verdict === 'string'
            ? verdict
            : token === undefined
              ? 'this edge requires a token'
              : 'the token was not accepted',
        );
      }
      const p = new Peer({
        initiator: false,
        wrtc: opts.wrtc as WrtcLike,
        config: { iceServers: opts.iceServers ?? [] },
        trickle: true,
      });
      peer = p;
      p.on('signal', (data: unknown) => send({ type: 'signal', data: data as never }));
      p.on('error', (err: Error) =>
        fail(ProtocolErrorCode.Closed, `WebRTC connection failed: ${err.message}`),
      );
      p.on('close', () => fail(ProtocolErrorCode.Closed, 'WebRTC peer closed before connecting', false));
      p.on('connect', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // The device closes the socket once its side is open too; closing here at once could race its 'connect'.
        linger = setTimeout(() => closeSocket(CLOSE_NORMAL), opts.lingerMs ?? 2000);
        resolve(peerChannel(p));
      });
    };

    const onMessage = (data: RawData, isBinary: boolean) => {
      if (settled) return;
      if (isBinary) return fail(ProtocolErrorCode.BadFrame, 'signaling messages must be JSON text');
      if (rawLength(data) > MAX_SIGNAL_MESSAGE_BYTES) {
        return fail(ProtocolErrorCode.BadFrame, `signaling message over ${MAX_SIGNAL_MESSAGE_BYTES} bytes`);
      }
      if (++received > MAX_SIGNAL_MESSAGES) {
        return fail(ProtocolErrorCode.BadFrame, `more than ${MAX_SIGNAL_MESSAGES} signaling messages`);
      }
      let msg: unknown;
      try {
        msg = JSON.parse(rawText(data));
      } catch {
        return fail(ProtocolErrorCode.BadFrame, 'signaling message is not JSON');
      }
      if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
        return fail(ProtocolErrorCode.BadFrame, 'signaling message must be a JSON object');
      }
      const m = msg as Record<string, unknown>;
      if (m.type === 'join') {
        if (peer) return fail(ProtocolErrorCode.BadFrame, 'duplicate join');
        return onJoin(m);
      }
      if (m.type === 'signal') {
        if (!peer) return fail(ProtocolErrorCode.BadFrame, 'the first signaling message must be a join');
        const sd = validateSignalData(m.data, 'offer');
        if (typeof sd === 'string') return fail(ProtocolErrorCode.BadFrame, `bad signal data: ${sd}`);
        peer.signal(sd);
        return;
      }
      return fail(ProtocolErrorCode.BadFrame, `unknown signaling message type ${JSON.stringify(m.type)}`);
    };

    ws.on('message', (data: RawData, isBinary: boolean) => {
      try {
        onMessage(data, isBinary);
      } catch (e) {
        fail(ProtocolErrorCode.Internal, `signaling failed: ${(e as Error).message}`);
      }
    });
    ws.on('error', (err: Error) => {
      if (!peer) fail(ProtocolErrorCode.Closed, `signaling socket failed: ${err.message}`, false);
    });
    ws.on('close', () => {
      clearTimeout(linger);
      // The device closes the socket on its own 'connect', which can come before ours: once the offer is in, the
      // connection completes without signaling (the timeout and the peer's close still end a failed attempt).
      if (!peer) fail(ProtocolErrorCode.Closed, 'the device closed signaling before joining', false);
    });
  });
}
