// The CLI help is generated from the settings home: every setting's flag, range and default, and the edge's limits.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_EDGE_LIMITS,
  EDGE_NODE_DEFAULTS,
  GAMMA,
  SCORE_LIMITS,
  SETTING_SPECS,
  TARGET_COST_PRESETS,
  BATCH_COST_PRESETS,
  BATCH_DEFAULTS,
} from '@dssd/protocol';
import { HELP } from '../src/index.js';

test('dssd --help states the settings home’s flags, ranges and defaults', () => {
  for (const s of SETTING_SPECS) assert.match(HELP, new RegExp(`--${s.flag} `), s.flag);
  const gammaLine = HELP.split('\n').find((l) => l.startsWith('  --gamma '))!;
  assert.match(
    gammaLine,
    new RegExp(`\\[${GAMMA.min}, ${GAMMA.max}\\] or auto \\(default ${GAMMA.default}\\)`),
  );
  assert.match(
    HELP,
    new RegExp(`--max-gamma N .*1\\.\\.${GAMMA.ceiling} \\(default ${DEFAULT_EDGE_LIMITS.maxGamma}\\)`),
  );
  assert.match(HELP, new RegExp(`--max-sessions N .*default ${EDGE_NODE_DEFAULTS.maxSessions}\\)`));
  assert.match(HELP, new RegExp(`--codecs LIST .*default ${DEFAULT_EDGE_LIMITS.allowedCodecs.join(',')}\\)`));
  for (const name of Object.keys(TARGET_COST_PRESETS)) assert.match(HELP, new RegExp(name));
  for (const name of Object.keys(BATCH_COST_PRESETS)) assert.match(HELP, new RegExp(name));
  assert.match(HELP, /--batch /);
  assert.ok(HELP.includes(`up to ${BATCH_DEFAULTS.tokenBudget} tokens a pass`));
  // The hardening limits: each flag with its default from the settings home.
  const N = EDGE_NODE_DEFAULTS;
  const MiB = 1024 * 1024;
  for (const [flag, dflt] of [
    ['max-pending N', N.maxPending],
    ['max-held N', N.maxHeld],
    ['hello-timeout S', N.helloTimeoutS],
    ['partial-frame-timeout S', N.partialFrameTimeoutS],
    ['reassembly-budget-mb N', N.reassemblyBudgetBytes / MiB],
    ['joins-per-second N', N.joinsPerSecond],
    ['max-peer-errors N', N.maxPeerErrors],
    ['score-queue N', SCORE_LIMITS.maxQueued],
  ] as const)
    assert.match(HELP, new RegExp(`--${flag} .*\\(default ${dflt}\\b`), flag);
  assert.match(HELP, new RegExp(`--secret S .*>= ${N.minSecretLength} chars`));
  assert.match(HELP, new RegExp(`before hello: ${N.preHelloMaxFrameBytes / 1024} KiB`));
  assert.match(HELP, new RegExp(`${N.issuerFailuresPerMinute} failed guesses per minute`));
  for (const flag of ['--public-origin', '--metrics-token', '--single-use-tokens'])
    assert.match(HELP, new RegExp(flag));
});

test('--webrtc: the stacks and the default come from the settings home; a bad value is one line and exit 2', async () => {
  const { WEBRTC_STACKS } = await import('@dssd/protocol');
  assert.match(
    HELP,
    new RegExp(`--webrtc STACK .*${WEBRTC_STACKS.join('\\|')} \\(default ${EDGE_NODE_DEFAULTS.webrtc};`),
  );
  const { spawnSync } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const bin = fileURLToPath(new URL('../../bin/dssd.js', import.meta.url));
  for (const cmd of ['serve', 'generate', 'load']) {
    const extra = cmd === 'generate' ? ['--prompt', 'x'] : [];
    const r = spawnSync(process.execPath, [bin, cmd, '--webrtc', 'libwebrtc', ...extra], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 2, `${cmd}: ${r.stderr}`);
    assert.match(r.stderr, /--webrtc must be one of wrtc, datachannel, got 'libwebrtc'/, cmd);
  }
});
