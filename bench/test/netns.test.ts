import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { memoryChannelPair } from '@dssd/protocol';
import {
  DEVICE_PORTS,
  ShapedNamespace,
  NetnsShapingError,
  parseClassStats,
  tcCommands,
} from '../src/netns.js';
import { LinkDirection, delayChannel } from '../src/shaper.js';
import { GRIDS, KERNEL_CELLS, PROFILES } from '../src/grid.js';
import { SHAPING_KERNEL, SHAPING_SIMULATED, rowKey, type Row } from '../src/rows.js';
import { kernelComparison } from '../src/report.js';

test('device ports: one mask-aligned block, below the ephemeral range the edge uses', () => {
  assert.equal(DEVICE_PORTS.min & DEVICE_PORTS.mask, DEVICE_PORTS.min);
  assert.equal(DEVICE_PORTS.max, DEVICE_PORTS.min | (~DEVICE_PORTS.mask & 0xffff));
  assert.ok(DEVICE_PORTS.max < 32768);
});

test('htb: one class per direction at the profile rates, told apart by the device ports', () => {
  const cmds = tcCommands(PROFILES['mobile-10/50'], 'htb').map((c) => c.join(' '));
  assert.match(cmds[0], /^qdisc add dev lo root handle 1: htb default 30$/);
  assert.ok(cmds.some((c) => /classid 1:10 htb rate 10mbit ceil 10mbit burst 1600/.test(c)));
  assert.ok(cmds.some((c) => /classid 1:20 htb rate 50mbit ceil 50mbit burst 1600/.test(c)));
  const port = `${DEVICE_PORTS.min} 0xf000`;
  for (const fam of ['ip', 'ip6']) {
    assert.ok(
      cmds.some((c) => c.includes(`match ${fam} sport ${port} flowid 1:10`)),
      `${fam} uplink`,
    );
    assert.ok(
      cmds.some((c) => c.includes(`match ${fam} dport ${port} flowid 1:20`)),
      `${fam} downlink`,
    );
  }
  for (const c of cmds.filter((x) => x.includes('u32'))) assert.match(c, /match ip6? protocol 17 0xff/);
});

test('tbf: one bucket for both directions, so only symmetric links', () => {
  const [cmd] = tcCommands(PROFILES['rtt20-50M'], 'tbf');
  assert.equal(cmd.join(' '), 'qdisc add dev lo root handle 1: tbf rate 50mbit burst 1600 latency 500ms');
  assert.throws(
    () => tcCommands(PROFILES['mobile-10/50'], 'tbf'),
    (e: unknown) => e instanceof NetnsShapingError && e.code === 'asymmetric-needs-htb',
  );
});

test('tc class statistics are parsed per class', () => {
  const text = [
    'class htb 1:10 root prio 0 rate 10Mbit ceil 10Mbit burst 1600b cburst 1600b ',
    ' Sent 123456 bytes 100 pkt (dropped 2, overlimits 5 requeues 0) ',
    ' backlog 0b 0p requeues 0',
    'class htb 1:20 root prio 0 rate 50Mbit ceil 50Mbit burst 1600b cburst 1600b ',
    ' Sent 999 bytes 3 pkt (dropped 0, overlimits 0 requeues 0) ',
  ].join('\n');
  const m = parseClassStats(text);
  assert.deepEqual(m.get('1:10'), { bytes: 123456, packets: 100, dropped: 2 });
  assert.deepEqual(m.get('1:20'), { bytes: 999, packets: 3, dropped: 0 });
});

test('the delay line holds both directions for their one-way delay, in order, and counts held bytes', async () => {
  const [a, b] = memoryChannelPair();
  const dev = delayChannel(
    a,
    new LinkDirection({ delayMs: 8, rateBps: Infinity }),
    new LinkDirection({ delayMs: 12, rateBps: Infinity }),
  );
  const atEdge: { n: number; t: number }[] = [];
  const atDevice: { n: number; t: number }[] = [];
  b.onMessage((m) => atEdge.push({ n: m[0], t: performance.now() }));
  dev.onMessage((m) => atDevice.push({ n: m[0], t: performance.now() }));
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) dev.send(new Uint8Array(500).fill(i));
  assert.equal(dev.bufferedAmount(), 1500);
  for (let i = 0; i < 3; i++) b.send(new Uint8Array(10).fill(10 + i));
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(
    atEdge.map((g) => g.n),
    [0, 1, 2],
  );
  assert.deepEqual(
    atDevice.map((g) => g.n),
    [10, 11, 12],
  );
  // Lower bounds only: never early (timers may be late on a loaded machine).
  for (const g of atEdge) assert.ok(g.t - t0 >= 8 - 0.05, `up after ${g.t - t0} ms`);
  for (const g of atDevice) assert.ok(g.t - t0 >= 12 - 0.05, `down after ${g.t - t0} ms`);
  assert.equal(dev.bufferedAmount(), 0);
  dev.close();
});

test('the kernel subset: symmetric links at γ 4, each cell also in the simulated default grid', () => {
  assert.equal(KERNEL_CELLS.length, 8);
  assert.deepEqual(GRIDS.default.kernelCells, KERNEL_CELLS);
  assert.deepEqual(GRIDS.quick.kernelCells, []);
  for (const k of KERNEL_CELLS) {
    const p = PROFILES[k.profile];
    assert.equal(p.upMbps, p.downMbps, 'tbf fallback needs symmetric links');
    assert.ok(
      GRIDS.default.cells.some(
        (c) =>
          c.method === k.method && c.gamma === k.gamma && c.profile === k.profile && c.setting === k.setting,
      ),
      `${k.method} ${k.profile} has a simulated twin`,
    );
  }
});

test('the report compares each kernel row with its simulated twin and labels the shaping', () => {
  const cell = { method: 'dssd-auto', gamma: 4, profile: 'rtt20-10M', setting: 't1' as const };
  const row = (shaping: string, tps: number): Row =>
    ({
      ...cell,
      key: rowKey(cell, 'cpu', shaping, 64),
      part: 'methods',
      mode: 'dssd',
      lossy: false,
      target: 'cpu',
      targetMs: null,
      shaping,
      prompts: 2,
      generatedTokens: 128,
      tokensPerSecond: tps,
      speedupVsAr: null,
      uplinkBytesPerToken: 10,
      downlinkBytesPerToken: 20,
      ...(shaping === SHAPING_KERNEL
        ? { kernel: { qdisc: 'htb', up: { bytes: 12800, packets: 1, dropped: 0 }, down: undefined } }
        : {}),
    }) as unknown as Row;
  const md = kernelComparison([row(SHAPING_SIMULATED, 100), row(SHAPING_KERNEL, 80)], {
    kernelShaping: 'test',
  }).join('\n');
  assert.match(md, /Kernel shaping: test/);
  assert.match(md, /median ×0\.80/);
  assert.match(md, /\| real CPU \| rtt20-10M \| dssd-auto \| 100\.0 \| 80\.0 \| 0\.80 \|/);
  assert.match(md, /100 \/ –/); // kernel wire bytes per token up / down
});

const root = process.getuid?.() === 0 && spawnSync('tc', ['-V']).status === 0;

test(
  'a namespace of its own: lo shaped with htb, counters readable, deleted afterwards',
  { skip: !root && 'needs root, ip and tc' },
  () => {
    const ns = ShapedNamespace.create();
    try {
      assert.match(ns.name, /^dssd-bench-\d+$/);
      assert.equal(ns.shape(PROFILES['rtt20-10M']), 'htb');
      const c = ns.counters();
      assert.ok(c.up && c.down, 'both direction classes exist');
      // Reshaping replaces the qdisc (a second profile in the same run).
      assert.equal(ns.shape(PROFILES['mobile-10/50']), 'htb');
      const show = spawnSync('ip', ['netns', 'exec', ns.name, 'tc', 'class', 'show', 'dev', 'lo'], {
        encoding: 'utf8',
      }).stdout;
      assert.match(show, /1:20 .*rate 50Mbit/);
    } finally {
      ns.destroy();
    }
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    assert.ok(!list.includes(ns.name), 'namespace deleted');
  },
);
