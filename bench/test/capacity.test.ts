import test from 'node:test';
import assert from 'node:assert/strict';
import { emulatedPoint, withSection } from '../src/capacity.js';

test('capacity: the section replaces only its own heading in docs/capacity.md, or starts the file', () => {
  const other = '# Edge capacity\n\n## WebRTC stack\n\nnode-datachannel figures.\n';
  const mine = '## Batched verification\n\nv1\n';
  const once = withSection(other, mine);
  assert.match(once, /## WebRTC stack\n\nnode-datachannel figures\./);
  assert.match(once, /## Batched verification\n\nv1/);
  const twice = withSection(once + '\n## Later\n\nkept\n', '## Batched verification\n\nv2\n');
  assert.doesNotMatch(twice, /v1/);
  assert.match(twice, /## WebRTC stack[\s\S]*## Batched verification\n\nv2\n\n## Later\n\nkept/);
  assert.equal(withSection(null, mine), '# Edge capacity\n\n## Batched verification\n\nv1\n');
});

test('capacity: an EMULATED point batches edge-only steps and stays within the emulated time', async () => {
  const r = await emulatedPoint({ devices: 8, mode: 'ar', batch: true, target: 'h200-7b', seconds: 0.5 });
  assert.ok(r.target.includes('EMULATION'));
  assert.ok(r.meanBatch > 4, `sessions per pass ${r.meanBatch}`);
  assert.ok(r.valid && r.overrunShare <= 0.05);
  // 8 sessions per ≈ 6.3 ms pass: about 1,270 tokens/s; timers on a busy machine only slow it down.
  assert.ok(r.totalTokensPerSecond < 1400, `${r.totalTokensPerSecond} tokens/s`);
});
