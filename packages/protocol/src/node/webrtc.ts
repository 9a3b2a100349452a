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
type PolyfillPc = new (config?: unknown) => {
  createOffer(o?: unknown): Promise<Description>;
  createAnswer(o?: unknown): Promise<Description>;
};

/**
 * node-datachannel's RTCPeerConnection polyfill, adapted for simple-peer: its session descriptions have a
 * getter-only `sdp`, which simple-peer rewrites, so offers and answers are handed out as plain objects.
 */
function datachannel(): WrtcLike {
  const p = require('node-datachannel/polyfill') as {
    RTCPeerConnection: PolyfillPc;
    RTCSessionDescription: unknown;
    RTCIceCandidate: unknown;
  };
  class RTCPeerConnection extends p.RTCPeerConnection {
    override async createOffer(o?: unknown): Promise<Description> {
      const d = await super.createOffer(o);
      return { type: d.type, sdp: d.sdp };
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

export { WEBRTC_STACKS };
export type { WebrtcStack };
