/**
 * The Node WebRTC stacks (`@dssd/protocol/node`): the one place that turns a --webrtc choice into the
 * implementation simple-peer is given. Node-only (native bindings); browsers use their own RTCPeerConnection.
 */
import { createRequire } from 'node:module';
import { EDGE_NODE_DEFAULTS, WEBRTC_STACKS, parseWebrtcStack, type WebrtcStack } from '../settings.js';
import type { WrtcLike } from '../wire/webrtc.js';

const require = createRequire(import.meta.url);
const loaded = new Map<WebrtcStack, WrtcLike>();

type Description = { type: string; sdp: string };
type PolyfillPc = new (config?: unknown) => EventTarget & {
  createOffer(o?: unknown): Promise<Description>;
  createAnswer(o?: unknown): Promise<Description>;
  setRemoteDescription(d: Description): Promise<void>;
  get localDescription(): Description | null;
  getStats(): Promise<Map<string, Record<string, unknown>>>;
};

/** An SDP without its candidate lines (they are trickled instead). */
const withoutCandidates = (sdp: string) => sdp.replace(/^a=(?:candidate:|end-of-candidates).*\r?\n/gm, '');

/** ICE candidate events a peer connection holds back until its remote description is set (see below). */
const heldCandidates = new WeakMap<object, Event[]>();

/**
 * node-datachannel's RTCPeerConnection polyfill, adapted for simple-peer: its session descriptions have a
 * getter-only `sdp`, which simple-peer rewrites, so offers and answers are handed out as plain objects.
 *
 * An offerer also keeps its ICE candidates to itself until it holds the answer (the offer goes out without the
 * candidates libdatachannel puts in its local description; they follow, trickled, once the answer is set). Otherwise the
 * answerer can finish ICE and send its DTLS hello before the answer reaches the offerer, whose DTLS server then
 * checks the client's certificate against a fingerprint it does not have yet and fails the handshake ("unknown
 * CA", then "Got a remote candidate without ICE transport"): ~3% of loopback connections between two
 * node-datachannel peers here.
 */
function datachannel(): WrtcLike {
  const p = require('node-datachannel/polyfill') as {
    RTCPeerConnection: PolyfillPc;
    RTCSessionDescription: unknown;
    RTCIceCandidate: unknown;
  };
  class RTCPeerConnection extends p.RTCPeerConnection {
    constructor(config?: unknown) {
      super(config);
      // Held from the start: libdatachannel gathers (and reports candidates) before simple-peer asks for the offer.
      heldCandidates.set(this, []);
    }
    override async createOffer(o?: unknown): Promise<Description> {
      const d = await super.createOffer(o);
      return { type: d.type, sdp: withoutCandidates(d.sdp) };
    }
    // simple-peer sends `localDescription` (by then with the gathered candidates), not the offer it made.
    override get localDescription(): Description | null {
      const d = super.localDescription;
      return d && heldCandidates.has(this) ? { type: d.type, sdp: withoutCandidates(d.sdp) } : d;
    }
    override dispatchEvent(e: Event): boolean {
      const held = heldCandidates.get(this);
      if (held && e.type === 'icecandidate') {
        held.push(e);
        return true;
      }
      return super.dispatchEvent(e);
    }
    // Its byte counters are SCTP payload (the application's bytes), not DTLS/SCTP/UDP on the wire: dropped, so
    // peerChannel's transportStats says "unknown" rather than passing them off as wire bytes.
    override async getStats(): Promise<Map<string, Record<string, unknown>>> {
      const report = await super.getStats();
      for (const s of report.values()) {
        delete s.bytesSent;
        delete s.bytesReceived;
      }
      return report;
    }
    override async setRemoteDescription(d: Description): Promise<void> {
      await super.setRemoteDescription(d);
      const held = heldCandidates.get(this);
      heldCandidates.delete(this);
      for (const e of held ?? []) super.dispatchEvent(e);
    }
    override async createAnswer(o?: unknown): Promise<Description> {
      const d = await super.createAnswer(o);
      return { type: d.type, sdp: d.sdp };
    }
  }
  return {
    RTCPeerConnection,
    RTCSessionDescription: p.RTCSessionDescription,
    RTCIceCandidate: p.RTCIceCandidate,
  };
}

/** The WebRTC implementation for `stack` (default: the settings home's), loaded on first use. */
export function nodeWebrtc(stack: WebrtcStack = EDGE_NODE_DEFAULTS.webrtc): WrtcLike {
  parseWebrtcStack(stack);
  let w = loaded.get(stack);
  if (!w) {
    w = stack === 'wrtc' ? (require('@roamhq/wrtc') as WrtcLike) : datachannel();
    loaded.set(stack, w);
  }
  return w;
}

/**
 * Closes every node-datachannel peer connection still open and releases its native threads: unlike libwebrtc,
 * libdatachannel keeps the process alive while any peer connection exists. For the end of a test file or tool.
 */
export function releaseWebrtc(): void {
  if (loaded.has('datachannel')) (require('node-datachannel') as { cleanup(): void }).cleanup();
}

export { WEBRTC_STACKS };
export type { WebrtcStack };
