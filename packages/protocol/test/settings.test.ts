/**
 * The settings home: parsing from strings reports every bad or unknown key and applies the rest; the device
 * refuses a γ above the shared bound before any connection; an edge configured tighter refuses at hello, naming
 * its limit; the codec table and the emulated-cost presets.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  CODECS,
  DEFAULT_USER_SETTINGS,
  DeviceSession,
  EdgeSession,
  FrameTransport,
  GAMMA,
  LOSSY_CODECS,
  ProtocolError,
  ProtocolErrorCode,
  TARGET_COST_PRESETS,
  completeSettings,
  memoryChannelPair,
  parseSettings,
  parseTargetCost,
  settingsToQuery,
  toSessionSettings,
} from '../src/index.js';
import { ToyLm, toyIdentity } from './toy.js';

const isCode = (code: ProtocolErrorCode) => (e: unknown) => e instanceof ProtocolError && e.code === code;

test('parseSettings applies every valid key and names each bad or unknown one', () => {
  const { settings, errors } = parseSettings(
    new URLSearchParams('gamma=999&temperature=0&mode=ar&topP=2&tempreature=1&seed=&codec=sparse'),
  );
  assert.equal(settings.mode, 'ar');
  assert.equal(settings.temperature, 0);
  assert.equal(settings.codec, 'sparse');
  assert.equal(settings.seed, null);
  assert.equal(settings.gamma, DEFAULT_USER_SETTINGS.gamma); // the bad value is not applied
  assert.equal(settings.topP, DEFAULT_USER_SETTINGS.topP);
  assert.deepEqual(errors.map((e) => e.key).sort(), ['gamma', 'tempreature', 'topP']);
  assert.match(
    errors.find((e) => e.key === 'gamma')!.message,
    new RegExp(`\\[${GAMMA.min}, ${GAMMA.max}\\]`),
  );
  assert.match(errors.find((e) => e.key === 'tempreature')!.message, /unknown setting/);
  // CLI flags and widget attributes use the kebab names; `ignore` passes other parameters through.
  const flags = parseSettings(
    { 'top-k': '10', 'draft-temperature': '0.5', gamma: 'auto', token: 'x' },
    {
      names: 'flag',
      ignore: ['token'],
    },
  );
  assert.deepEqual(flags.errors, []);
  assert.equal(flags.settings.topK, 10);
  assert.equal(flags.settings.draftTemperature, 0.5);
  assert.equal(flags.settings.gamma, 'auto');
  // A lookup function cannot list its names, so nothing is unknown.
  assert.deepEqual(parseSettings((k) => (k === 'gamma' ? '2.5' : null)).errors.length, 1);
});

test('user settings to session settings: ar drafts nothing, auto γ adapts from GAMMA.auto, round trip', () => {
  const ar = toSessionSettings({ ...DEFAULT_USER_SETTINGS, mode: 'ar', gamma: 7 });
  assert.equal(ar.settings.gamma, 0);
  assert.equal(ar.adaptiveGamma, false);
  const auto = toSessionSettings({ ...DEFAULT_USER_SETTINGS, gamma: 'auto' });
  assert.deepEqual([auto.settings.gamma, auto.adaptiveGamma], [GAMMA.auto, true]);
  const u = { ...DEFAULT_USER_SETTINGS, topK: 10, seed: 3, draftTemperature: 0.7 };
  assert.deepEqual(parseSettings(new URLSearchParams(settingsToQuery(u))).settings, u);
  const s = toSessionSettings(u).settings;
  assert.equal(s.draftSampling.temperature, 0.7);
  assert.equal(s.sampling.temperature, 1);
});

test('a γ above the shared bound fails on the device, before any frame is sent', async () => {
  assert.throws(
    () => completeSettings({ mode: 'dssd', gamma: GAMMA.max + 1 }),
    isCode(ProtocolErrorCode.BadSettings),
  );
  const [a] = memoryChannelPair();
  let sent = 0;
  const counting = { ...a, send: (m: Uint8Array) => (sent++, a.send(m)) };
  await assert.rejects(
    DeviceSession.open({
      transport: new FrameTransport(counting),
      model: toyIdentity(8),
      drafter: new ToyLm(8, 1),
      settings: { mode: 'dssd', gamma: 20 },
    }),
    isCode(ProtocolErrorCode.BadSettings),
  );
  assert.equal(sent, 0);
});

test('an edge configured tighter refuses at hello, naming its limit', async () => {
  const [d, e] = memoryChannelPair();
  const edgeT = new FrameTransport(e);
  const edge = new EdgeSession({
    sessionId: 1,
    model: toyIdentity(8),
    createTarget: () => new ToyLm(8, 1),
    secretSeed: 1,
    limits: { maxGamma: 4 },
    send: (f) => edgeT.send(f),
  });
  edgeT.onFrame((f) => void edge.handle(f));
  await assert.rejects(
    DeviceSession.open({
      transport: new FrameTransport(d),
      model: toyIdentity(8),
      drafter: new ToyLm(8, 1),
      settings: { mode: 'dssd', gamma: 8 },
    }),
    (err: unknown) =>
      err instanceof ProtocolError &&
      err.code === ProtocolErrorCode.BadSettings &&
      /\[1, 4\]/.test(err.message),
  );
  edge.close();
});

test('codec table: exactness in one place; emulated-cost presets and A,B', () => {
  assert.deepEqual([...LOSSY_CODECS].sort(), ['f16', 'topk']);
  assert.equal(CODECS.candidates.exact, true);
  assert.deepEqual(parseTargetCost('h200-32b'), TARGET_COST_PRESETS['h200-32b']);
  assert.deepEqual(parseTargetCost('25,0.5'), { a: 25, b: 0.5 });
  assert.deepEqual(parseTargetCost('7'), { a: 7, b: 0 });
  for (const bad of ['', 'a,b', '-1,0', '1,2,3', 'h100'])
    assert.throws(() => parseTargetCost(bad), isCode(ProtocolErrorCode.BadSettings), bad);
});
