/** The Node device: the draft model on onnxruntime-node, joined to an edge over real WebRTC (@roamhq/wrtc). */
import { createRequire } from 'node:module';
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
  type WrtcLike,
} from '@dssd/protocol';

const require = createRequire(import.meta.url);

/** @roamhq/wrtc: the WebRTC stack of Node devices and of the edge. */
export function nodeWrtc(): WrtcLike {
  return require('@roamhq/wrtc') as WrtcLike;
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
  /** WebRTC stack (default @roamhq/wrtc). */
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
  const { edge, draftDir, token, iceServers, wrtc, wrap, ...device } = o;
  const draft = o.draft ?? (await loadNodeModel(draftDir ?? DEFAULT_MODEL_DIRS.draft));
  const connect = edgeChannel({
    url: edge,
    WebSocket: WebSocket as never,
    wrtc: wrtc ?? nodeWrtc(),
    iceServers,
    token,
    timeoutMs: o.timeoutMs,
  });
  const drafter = o.settings.mode === 'ar' ? undefined : draft.createSession();
  try {
    const session = await openDevice({
      ...device,
      channel: wrap ? async () => wrap(await connect()) : connect,
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
