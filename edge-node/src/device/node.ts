/** The Node device: the draft model on onnxruntime-node, joined to an edge over real WebRTC (either Node stack). */
import WebSocket from 'ws';
import { DEFAULT_MODEL_DIRS, loadNodeModel } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import {
  edgeChannel,
  identityOf,
  openDevice,
  type DeviceOptions,
  type DeviceSession,
  type RawChannel,
  type WebrtcStack,
  type WrtcLike,
} from '@dssd/protocol';
import { nodeWebrtc } from '@dssd/protocol/node';

/** The WebRTC implementation of a Node stack (default: the settings home's), for devices, drills and tests. */
export function nodeWrtc(stack?: WebrtcStack): WrtcLike {
  return nodeWebrtc(stack);
}

export interface NodeDeviceOptions extends Omit<
  DeviceOptions,
  'transport' | 'reconnect' | 'model' | 'drafter'
> {
  edge: string;
  draftDir?: string;
  /** Reuse a loaded draft model (tests, benchmarks, many sessions). */
  draft?: LanguageModel;
  token?: string;
  iceServers?: RTCIceServer[];
  /** WebRTC stack by name (default EDGE_NODE_DEFAULTS.webrtc); `wrtc` overrides it with an implementation. */
  webrtc?: WebrtcStack;
  /** WebRTC implementation (tests: a wrapped stack). */
  wrtc?: WrtcLike;
  /** Wraps the data channel (link shaping, timing). */
  wrap?: (channel: RawChannel) => RawChannel;
}

export interface NodeDevice {
  session: DeviceSession;
  draft: LanguageModel;
  close(): void;
}

export async function connectNodeDevice(o: NodeDeviceOptions): Promise<NodeDevice> {
  const { edge, draftDir, token, iceServers, webrtc, wrtc, wrap, ...device } = o;
  const draft = o.draft ?? (await loadNodeModel(draftDir ?? DEFAULT_MODEL_DIRS.draft));
  const connect = edgeChannel({
    url: edge,
    WebSocket: WebSocket as never,
    wrtc: wrtc ?? nodeWebrtc(webrtc),
    iceServers,
    token,
    timeoutMs: o.timeoutMs,
  });
  const drafter = o.settings.mode === 'ar' ? undefined : draft.createSession();
  try {
    const session = await openDevice({
      ...device,
      channel: wrap ? async (resume) => wrap(await connect(resume)) : connect,
      model: identityOf(draft),
      drafter,
    });
    return {
      session,
      draft,
      close: () => {
        session.close();
        drafter?.dispose();
      },
    };
  } catch (e) {
    drafter?.dispose();
    throw e;
  }
}
