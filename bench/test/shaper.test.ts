import test from 'node:test';
import assert from 'node:assert/strict';
import {
  LinkDirection,
  PACKET_OVERHEAD,
  PACKET_PAYLOAD,
  directions,
  seededUniform,
  shapedChannelPair,
} from '../src/shaper.js';
import { GRIDS, PAPER_GRID, PROFILES } from '../src/grid.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} ≉ ${b}`);

test('a single small message: serialization of its wire bytes, then one-way delay', () => {
  const d = new LinkDirection({ delayMs: 10, rateBps: 8e6 }); // 1 byte per µs
  const s = d.schedule(100, 1000);
  assert.equal(s.packets, 1);
  assert.equal(s.wireBytes, 1000 + PACKET_OVERHEAD);
  close(s.sentAt, 100 + (1000 + PACKET_OVERHEAD) / 1000);
  close(s.deliverAt, s.sentAt + 10);
});

test('back-to-back messages queue FIFO behind each other at the link rate', () => {
  const d = new LinkDirection({ delayMs: 5, rateBps: 8e6, packetOverhead: 0 });
  const a = d.schedule(0, 4000); // 4 ms on the wire
  const b = d.schedule(1, 2000); // waits for a, then 2 ms
  close(a.sentAt, 4);
  close(b.sentAt, 6);
  close(b.deliverAt, 11);
  // After the queue drains, a new message starts at its own send time.
  const c = d.schedule(50, 1000);
  close(c.sentAt, 51);
  close(c.deliverAt, 56);
});

test('large messages are split into packets, each with its header bytes', () => {
  const d = new LinkDirection({ delayMs: 0, rateBps: 1e6 });
  const s = d.schedule(0, 16 * 1024);
  const packets = Math.ceil((16 * 1024) / PACKET_PAYLOAD);
  assert.equal(s.packets, packets);
  assert.equal(s.wireBytes, 16 * 1024 + packets * PACKET_OVERHEAD);
  close(s.sentAt, ((s.wireBytes * 8) / 1e6) * 1000);
});

test('no serialization at an infinite rate; delivery stays in order', () => {
  const d = new LinkDirection({ delayMs: 3, rateBps: Infinity });
  const a = d.schedule(0, 100_000);
  close(a.deliverAt, 3);
  assert.equal(d.backlogBytes(0), 0);
});

test("loss adds RTT/2 and the lost packets' serialization; later messages wait (head-of-line)", () => {
  // A uniform source that loses the first draw only.
  const draws = [0, 0.9, 0.9, 0.9, 0.9];
  const d = new LinkDirection(
    { delayMs: 20, rateBps: 8e6, loss: 0.5, packetOverhead: 0 },
    () => draws.shift() ?? 0.9,
  );
  const a = d.schedule(0, 1000); // 1 ms; lost once: +1 ms resend, +20 ms
  assert.equal(a.lostPackets, 1);
  close(a.sentAt, 2);
  close(a.deliverAt, 2 + 20 + 20);
  const b = d.schedule(2, 1000); // not lost, would arrive at 23, but is held behind a
  assert.equal(b.lostPackets, 0);
  close(b.deliverAt, a.deliverAt);
});

test('lossy links are deterministic for a seed and lose about the configured fraction', () => {
  const run = (seed: number) => {
    const d = new LinkDirection({ delayMs: 1, rateBps: 1e7, loss: 0.05 }, seededUniform(seed));
    for (let i = 0; i < 2000; i++) d.schedule(i, 500);
    return d.lostPackets;
  };
  assert.equal(run(3), run(3));
  const lost = run(3);
  assert.ok(lost > 60 && lost < 150, `lost ${lost} of 2000`);
});

test('profiles: RTT splits evenly, rates per direction; invalid parameters are refused', () => {
  const { up, down } = directions(PROFILES['mobile-10/50']);
  assert.equal(up.p.delayMs + down.p.delayMs, PROFILES['mobile-10/50'].rttMs);
  assert.equal(up.p.rateBps, 10e6);
  assert.equal(down.p.rateBps, 50e6);
  assert.throws(() => new LinkDirection({ delayMs: -1, rateBps: 1 }), RangeError);
  assert.throws(() => new LinkDirection({ delayMs: 0, rateBps: 0 }), RangeError);
  assert.throws(() => new LinkDirection({ delayMs: 0, rateBps: 1, loss: 1 }), RangeError);
  assert.equal(PAPER_GRID.length, 9);
  for (const g of Object.values(GRIDS)) for (const c of g.cells) assert.ok(PROFILES[c.profile], c.profile);
});

test('the shaped pair delivers every message, in order, not before its due time', async () => {
  const p = shapedChannelPair({ name: 't', rttMs: 6, upMbps: 8, downMbps: 8 });
  const got: { n: number; t: number }[] = [];
  p.edge.onMessage((m) => got.push({ n: m[0], t: performance.now() }));
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) p.device.send(new Uint8Array(1000).fill(i));
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(
    got.map((g) => g.n),
    [0, 1, 2, 3, 4],
  );
  // Five 1085-byte messages at 1 byte/µs, then 3 ms: the last may not arrive before ~8.4 ms.
  assert.ok(got[4].t - t0 >= 3 + (5 * (1000 + PACKET_OVERHEAD)) / 1000 - 0.05);
  p.device.close();
});

test('adaptive γ: long drafts on a long round trip, short ones when drafting dominates', async () => {
  const { GammaController } = await import('@dssd/protocol');
  const feed = (
    c: InstanceType<typeof GammaController>,
    draftPerToken: number,
    wait: number,
    accept: number[],
  ) => {
    // Deterministic rounds: position k is accepted in a fraction accept[k-1] of rounds (given earlier ones).
    for (let r = 0; r < 60; r++) {
      const g = c.choose();
      let acc = 0;
      while (acc < g && ((r * 7 + acc * 3) % 10) / 10 < (accept[acc] ?? accept[accept.length - 1])) acc++;
      c.observe({ gamma: g, accepted: acc, draftMs: g * draftPerToken, waitMs: wait });
    }
    return c.choose();
  };
  const far = feed(new GammaController(8), 0.5, 60, [0.9]);
  const near = feed(new GammaController(8), 20, 2, [0.6]);
  assert.ok(far >= 6, `far: γ ${far}`);
  assert.ok(near <= 2, `near: γ ${near}`);
});
