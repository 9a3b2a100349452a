/** The Node device: the draft model on onnxruntime-node, joined to an edge over real WebRTC (@roamhq/wrtc). */
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { loadNodeModel } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import { DeviceSession, FrameTransport, connectEdge, type DeviceOptions } from '@dssd/protocol';
import { DEFAULT_DRAFT_DIR } from './server.js';

const require = createRequire(import.meta.url);

export interface NodeDeviceOptions {
  edge: string;
  settings: DeviceOptions['settings'];
  draftDir?: string;
  /** Reuse a loaded draft model (tests, benchmarks, many sessions). */
  draft?: LanguageModel;
  adaptiveGamma?: boolean;
  token?: string;
  iceServers?: RTCIceServer[];
  timeoutMs?: number;
  plantedBug?: 'no-max';
  /** Re-sync after faults and resume after drops (new signaling, new peer connection, same session). */
  recovery?: DeviceOptions['recovery'];
  /** Opt-in: finish answers with the draft model alone while the edge is unreachable ('unverified'). */
  offlineFallback?: boolean;
}

export interface NodeDevice {
  session: DeviceSession;
  draft: LanguageModel;
  close(): void;
}

export async function connectNodeDevice(o: NodeDeviceOptions): Promise<NodeDevice> {
  const draft = o.draft ?? (await loadNodeModel(o.draftDir ?? DEFAULT_DRAFT_DIR));
  const open = async () => {
    const { channel } = await connectEdge({
      url: o.edge,
      WebSocket: WebSocket as never,
      wrtc: require('@roamhq/wrtc'),
      iceServers: o.iceServers,
      token: o.token,
      timeoutMs: o.timeoutMs ?? 15_000,
    });
    return new FrameTransport(channel);
  };
  const transport = await open();
  const c = draft.config;
  const drafter = o.settings.mode === 'ar' ? undefined : draft.createSession();
  try {
    const session = await DeviceSession.open({
      transport,
      model: {
        tokenizerHash: draft.tokenizerHash,
        vocabSize: c.vocabSize,
        maxContext: c.maxContext,
        eosTokenId: c.eosTokenId,
        name: c.name,
      },
      drafter,
      settings: o.settings,
      adaptiveGamma: o.adaptiveGamma,
      timeoutMs: o.timeoutMs,
      plantedBug: o.plantedBug,
      recovery: o.recovery,
      reconnect: o.recovery ? open : undefined,
      offlineFallback: o.offlineFallback,
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
    transport.close();
    drafter?.dispose();
    throw e;
  }
}
