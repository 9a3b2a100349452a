/**
 * Child process of the kernel-shaped (netns + tc) benchmark, run inside its network namespace: the real Node device (draft
 * model on onnxruntime-node, real WebRTC via @roamhq/wrtc) as connectNodeDevice builds it, with two additions:
 * its ICE sockets use DEVICE_PORTS, so the kernel can tell uplink from downlink by UDP port, and its data
 * channel goes through the transport shaper's delay line (rate left to the kernel). Reads one JSON job per
 * line on stdin (one prompt each, a fresh session) and prints {id, stats} or {id, error} per job.
 */
import readline from 'node:readline';
import { DEFAULT_MODEL_DIRS, loadNodeModel } from '@dssd/models/node';
import { connectNodeDevice, nodeWrtc } from '@dssd/edge-node';
import { gammaFor, type WrtcLike } from '@dssd/protocol';
import { LinkDirection, delayChannel } from './shaper.js';
import { SETTINGS } from './run.js';
import { DEVICE_PORTS, type DeviceJob } from './netns-job.js';

const emit = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

/** @roamhq/wrtc with every peer connection's ICE ports pinned to DEVICE_PORTS (its non-standard portRange). */
function pinnedWrtc(): WrtcLike {
  const wrtc = nodeWrtc('wrtc') as WrtcLike & { RTCPeerConnection: new (c?: object) => object };
  const Base = wrtc.RTCPeerConnection;
  class Pinned extends Base {
    constructor(config?: object) {
      super({ ...config, portRange: { min: DEVICE_PORTS.min, max: DEVICE_PORTS.max } });
    }
  }
  return { ...wrtc, RTCPeerConnection: Pinned };
}

async function main(): Promise<void> {
  const draft = await loadNodeModel(DEFAULT_MODEL_DIRS.draft);
  const wrtc = pinnedWrtc();
  emit({ ready: true });
  const run = async (job: DeviceJob) => {
    const half = job.rttMs / 2;
    const m = job.method;
    const dev = await connectNodeDevice({
      edge: job.url,
      draft,
      wrtc,
      timeoutMs: 60_000,
      wrap: (channel) =>
        delayChannel(
          channel,
          new LinkDirection({ delayMs: half, rateBps: Infinity }),
          new LinkDirection({ delayMs: half, rateBps: Infinity }),
        ),
      settings: {
        mode: m.mode,
        gamma: gammaFor(m.mode, job.gamma),
        codec: m.codec ?? 'auto',
        dsdPrecision: m.dsdPrecision ?? 'f32',
        sampling: SETTINGS[job.setting].sampling,
        seed: job.seed,
      },
      adaptiveGamma: m.adaptive ?? false,
    });
    try {
      return (await dev.session.generate(job.prompt, { maxNewTokens: job.maxNewTokens })).stats;
    } finally {
      dev.close();
    }
  };
  // Jobs run one at a time, in order.
  let chain = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const job = JSON.parse(line) as DeviceJob;
    chain = chain.then(() =>
      run(job).then(
        (stats) => void emit({ id: job.id, stats }),
        (e: unknown) => void emit({ id: job.id, error: (e as Error).message ?? String(e) }),
      ),
    );
  });
  rl.on('close', () => void chain.finally(() => process.exit(0)));
}

main().catch((e: unknown) => {
  emit({ error: (e as Error).stack ?? String(e) });
  process.exit(1);
});
