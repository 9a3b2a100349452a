/**
 * The churn test of `dssd webrtc-bench` at CI size, on each Node WebRTC stack: connections opened, used and
 * closed in a bounded loop against an edge-side process of their own, which must survive with every connection
 * served. node-datachannel must also give its descriptors back; @roamhq/wrtc keeps about one per connection
 * (measured and reported, see docs/capacity.md), so its count is only printed.
 */
import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { WEBRTC_STACKS } from '@dssd/protocol';
import { releaseWebrtc } from '@dssd/protocol/node';
import { runChurn } from '../src/drills/webrtc-bench.js';

// A leftover node-datachannel peer connection would keep the test process alive (CI waited 15 min on one).
after(() => releaseWebrtc());

const CYCLES = 80;

for (const stack of WEBRTC_STACKS) {
  test(`${stack}: ${CYCLES} connects/disconnects, 8 at a time: the edge side survives, none fails`, async () => {
    const r = await runChurn({ stack, cycles: CYCLES, concurrency: 8 });
    console.log(
      `# ${stack}: ${r.cycles} connections in ${r.wallS} s; edge RSS ${Math.round(r.before.rssKiB / 1024)} → ` +
        `${r.after ? Math.round(r.after.rssKiB / 1024) : '?'} MiB, fds ${r.before.fds} → ${r.after?.fds}, ` +
        `threads ${r.before.threads} → ${r.after?.threads}; device fds ${r.deviceFdsBefore} → ${r.deviceFdsAfter}`,
    );
    assert.ok(r.survived, `the edge side ended: ${r.ended}`);
    assert.equal(r.cycles, CYCLES);
    assert.equal(r.failed, 0);
    if (stack === 'datachannel') {
      assert.ok(r.after!.fds - r.before.fds <= 8, `edge fds ${r.before.fds} → ${r.after!.fds}`);
      assert.ok(
        r.deviceFdsAfter - r.deviceFdsBefore <= 8,
        `device fds ${r.deviceFdsBefore} → ${r.deviceFdsAfter}`,
      );
    }
  });
}
