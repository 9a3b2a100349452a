/**
 * Child process of the kernel-shaped benchmark, run inside its network namespace: the real edge node
 * (EdgeNode.start, real WebRTC) on 127.0.0.1. Prints JSON lines on stdout: {ready: url} once listening,
 * {session: id} when a device connects and {pass: ms} after each target pass (verify pass or ar step), so the
 * parent can take T_LLM per session. Exits when stdin closes.
 *
 * Usage: node netns-edge.js [A,B]   (A,B: pad each target pass to A + B·tokens ms, an emulation)
 */
import { EdgeNode, Logger } from '@dssd/edge-node';
import { parseTargetCost } from '@dssd/protocol';

const emit = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

async function main(): Promise<void> {
  const arg = process.argv[2];
  const node = await EdgeNode.start({
    port: 0,
    host: '127.0.0.1',
    log: new Logger('warn'),
    // The device side pins its ICE ports with @roamhq/wrtc's portRange; the published figures used it on both ends.
    webrtc: 'wrtc',
    targetCost: arg ? parseTargetCost(arg) : undefined,
  });
  // Observe the node's own hooks rather than change it: each new session, then each pass it times.
  const set = node.sessions.set.bind(node.sessions);
  node.sessions.set = (id, live) => {
    emit({ session: id });
    return set(id, live);
  };
  for (const h of [node.metrics.verify, node.metrics.arStep]) {
    const observe = h.observe.bind(h);
    h.observe = (ms: number) => {
      emit({ pass: ms });
      observe(ms);
    };
  }
  // 'localhost' may resolve to ::1 first; the node listens on 127.0.0.1.
  emit({ ready: node.url.replace('//localhost:', '//127.0.0.1:') });
  process.stdin.resume();
  process.stdin.on('end', () => {
    void node.close().finally(() => process.exit(0));
  });
}

main().catch((e: unknown) => {
  emit({ error: (e as Error).stack ?? String(e) });
  process.exit(1);
});
