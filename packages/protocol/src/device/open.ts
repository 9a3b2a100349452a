/**
 * Opening a device: a channel to the edge → a FrameTransport → the hello/welcome of a DeviceSession. The one
 * way every device (CLI, load, bench, page) joins an edge; with recovery on, the same channel opener reconnects.
 */
import type { RawChannel } from '../wire/transport.js';
import { FrameTransport, type FrameTransportOptions } from '../wire/transport.js';
import { connectEdge, type ConnectEdgeOptions } from '../wire/webrtc.js';
import { DeviceSession } from './session.js';
import type { DeviceOptions } from './types.js';

export interface OpenDeviceOptions extends Omit<DeviceOptions, 'transport' | 'reconnect'> {
  /** Opens a channel to the edge; called again to reconnect when `recovery` is set, naming the session. */
  channel: (resume?: { sessionId: number }) => Promise<RawChannel>;
  transportOptions?: FrameTransportOptions;
  /** Observes each transport opened (e.g. to track its close). */
  onTransport?: (t: FrameTransport) => void;
}

/**
 * A channel opener over WebRTC: signaling at `url`, then a data channel (see connectEdge). A reconnect names
 * its session in the signaling URL, so a proxy in front of several edges sends it where the session lives.
 */
export function edgeChannel(o: ConnectEdgeOptions): (resume?: { sessionId: number }) => Promise<RawChannel> {
  return async (resume) => (await connectEdge(resume ? { ...o, session: resume.sessionId } : o)).channel;
}

/** Connects and says hello; the transport is closed again when the handshake fails. */
export async function openDevice(o: OpenDeviceOptions): Promise<DeviceSession> {
  const { channel, transportOptions, onTransport, ...device } = o;
  const open = async (resume?: { sessionId: number }) => {
    const t = new FrameTransport(await channel(resume), transportOptions);
    onTransport?.(t);
    return t;
  };
  const transport = await open();
  try {
    return await DeviceSession.open({
      ...device,
      transport,
      ...(device.recovery ? { reconnect: open } : {}),
    });
  } catch (e) {
    transport.close();
    throw e;
  }
}
