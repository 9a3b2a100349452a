// The page's pure parts: settings from the URL query, the statistics panel's numbers, the postMessage parsers.
import test from 'node:test';
import assert from 'node:assert/strict';
import { chunkedSize, dsdDraftFrameSize, draftFrameSize } from '@dssd/codec';
import { GAMMA, PAGE_SETTING_KEYS, SETTING_SPEC, emptyTurnStats, type TurnStats } from '@dssd/protocol';
import {
  DEFAULT_UI_SETTINGS,
  SettingsError,
  describeSettings,
  parsePageSettings,
  parseWebGpu,
  settingsFromQuery,
  toDeviceSettings,
  fieldControl,
  settingsToQuery,
  toSessionSettings,
} from '../src/settings.js';
import { STAT_HELP, displayStats, headline, statRows } from '../src/stats.js';
import { parseEmbedMessage, parseHostMessage } from '../src/messages.js';

test('settings: the issue’s example query, round trip, and errors', () => {
  const s = settingsFromQuery(
    '?temperature=0&gamma=4&maxTokens=64&topK=10&topP=1&seed=1&mode=dssd&codec=candidates',
  );
  assert.deepEqual(s, {
    ...DEFAULT_UI_SETTINGS,
    mode: 'dssd',
    codec: 'candidates',
    gamma: 4,
    temperature: 0,
    topK: 10,
    topP: 1,
    seed: 1,
    maxTokens: 64,
  });
  assert.deepEqual(settingsFromQuery('?' + settingsToQuery(s)), s);
  assert.equal(settingsToQuery(DEFAULT_UI_SETTINGS), '');
  assert.deepEqual(settingsFromQuery('?unknown=3'), DEFAULT_UI_SETTINGS);
  assert.deepEqual(toSessionSettings(s), {
    mode: 'dssd',
    codec: 'candidates',
    gamma: 4,
    sampling: { temperature: 0, topK: 10, topP: 1 },
    draftSampling: { temperature: 0, topK: 10, topP: 1 },
    dsdPrecision: 'f32',
    topK: 20,
    candidates: 'auto',
    pipeline: false,
    window: 0,
    seed: 1,
  });
  // γ auto: the bound adaptive γ starts from, and adaptation on.
  assert.deepEqual(
    [
      toDeviceSettings({ ...s, gamma: 'auto' }).settings.gamma,
      toDeviceSettings({ ...s, gamma: 'auto' }).adaptiveGamma,
    ],
    [GAMMA.auto, true],
  );
  assert.equal(toSessionSettings({ ...s, mode: 'ar' }).gamma, 0);
  assert.equal(toSessionSettings({ ...s, seed: null }).seed, undefined);
  for (const [q, re] of [
    ['?gamma=0', new RegExp(`gamma must be an integer in \\[1, ${GAMMA.max}\\]`)],
    ['?gamma=20', /gamma/],
    ['?gamma=2.5', /gamma/],
    ['?temperature=hot', /temperature must be a number/],
    ['?mode=fast', /mode must be one of ar, dsd, dssd/],
    ['?codec=zip', /codec must be one of/],
    ['?topP=0', /topP|top-p|topP/i],
    ['?maxTokens=', /maxTokens/],
  ] as const) {
    assert.throws(
      () => settingsFromQuery(q),
      (e: unknown) => e instanceof SettingsError && re.test(e.message),
      q,
    );
  }
});

test('settings per key: the valid part applies, each bad or unknown key is named', () => {
  const { settings, problems } = parsePageSettings(
    new URLSearchParams('gamma=999&temperature=0&mode=ar&tmperature=1&token=x&origin=y'),
  );
  assert.equal(settings.mode, 'ar');
  assert.equal(settings.temperature, 0);
  assert.equal(settings.gamma, DEFAULT_UI_SETTINGS.gamma);
  assert.deepEqual(
    problems.map((p) => p.key),
    ['tmperature', 'gamma'],
  );
  assert.match(problems[1]!.message, /^must be an integer in \[1, 16\] or auto, got "999"$/);
  assert.match(problems[0]!.message, /unknown setting 'tmperature'/);
  assert.deepEqual(parsePageSettings(new URLSearchParams('topP=2&topK=5')).settings, {
    ...DEFAULT_UI_SETTINGS,
    topK: 5,
  });
  assert.equal(
    describeSettings(DEFAULT_UI_SETTINGS),
    'dssd · γ 4 · codec candidates · temperature 0.8 · top-p 0.95 · seed secret',
  );
});

function turnStats(over: Partial<TurnStats>): TurnStats {
  return { ...emptyTurnStats(), ...over };
}

test('statistics: per-token bytes and the DSD comparison', () => {
  const V = 4096;
  const t = turnStats({
    rounds: 3,
    draftedTokens: 10,
    acceptedTokens: 6,
    acceptancePerPosition: [1, 0.5, 0.5, 0],
    meanAcceptanceLength: 3,
    uplinkBytes: 200,
    downlinkBytes: 300,
    generatedTokens: 9,
    tokensPerSecond: 120,
    gammas: [4, 4, 2],
  });
  const d = displayStats('dssd', t, V);
  assert.equal(d.acceptanceRate, 0.6);
  assert.equal(d.uplinkBytesPerToken, 200 / 9);
  assert.equal(d.downlinkBytesPerToken, 300 / 9);
  const dsd = 2 * chunkedSize(dsdDraftFrameSize(4, V)) + chunkedSize(dsdDraftFrameSize(2, V));
  assert.equal(d.dsdUplinkBytesPerToken, dsd / 9);
  assert.equal(
    d.draftUplinkBytesPerToken,
    (2 * chunkedSize(draftFrameSize(4, V)) + chunkedSize(draftFrameSize(2, V))) / 9,
  );
  assert.ok(d.dsdUplinkBytesPerToken > 100 * d.draftUplinkBytesPerToken);
  const keys = statRows(d).map(([k]) => k);
  assert.deepEqual(keys, [
    'tokens',
    'tps',
    'mal',
    'acceptance',
    'perpos',
    'passes',
    'up',
    'down',
    'wasted',
    'dsdup',
  ]);
  for (const k of keys) assert.ok(STAT_HELP[k], `tooltip for ${k}`);
  assert.equal(statRows(d).find(([k]) => k === 'passes')![2], (3 / 9).toFixed(2));
  assert.deepEqual(
    headline(d).map(([, t]) => t),
    ['3.0 tokens per round trip', `${(200 / 9).toFixed(0)} B up per token`, '0.33 edge passes per token'],
  );
  assert.equal(statRows(d).find(([k]) => k === 'perpos')![2], '1.00 0.50 0.50 0.00');
  // ar: no drafts, no acceptance rows, no division by zero.
  const ar = displayStats('ar', turnStats({ generatedTokens: 0, uplinkBytes: 50 }), V);
  assert.equal(ar.acceptanceRate, 0);
  assert.equal(ar.uplinkBytesPerToken, 50);
  assert.deepEqual(
    statRows(ar).map(([k]) => k),
    ['tokens', 'tps', 'passes', 'up', 'down'],
  );
});

test('postMessage parsers accept only the vocabulary', () => {
  assert.deepEqual(parseHostMessage({ type: 'dssd:init', token: 'abc' }), {
    type: 'dssd:init',
    token: 'abc',
  });
  assert.deepEqual(parseHostMessage({ type: 'dssd:init' }), { type: 'dssd:init' });
  assert.deepEqual(parseHostMessage({ type: 'dssd:ask', prompt: 'hi' }), { type: 'dssd:ask', prompt: 'hi' });
  assert.deepEqual(parseHostMessage({ type: 'dssd:stop', extra: 1 }), { type: 'dssd:stop' });
  for (const bad of [
    null,
    'dssd:stop',
    [],
    { type: 'dssd:ask' },
    { type: 'dssd:init', token: 5 },
    { type: 'x' },
  ])
    assert.equal(parseHostMessage(bad), null);
  assert.equal(parseHostMessage({ type: 'dssd:ask', prompt: 'x'.repeat(100_001) }), null);
  // Theme values: colours and fonts pass; anything that could load a URL or end the declaration does not.
  assert.deepEqual(
    parseHostMessage({
      type: 'dssd:init',
      theme: {
        accent: '#ff8800',
        bg: 'rgb(10, 20, 30)',
        fg: 'url(x)',
        line: 'red; x: y',
        font: "'Inter', sans-serif",
      },
    }),
    { type: 'dssd:init', theme: { accent: '#ff8800', bg: 'rgb(10, 20, 30)', font: "'Inter', sans-serif" } },
  );
  assert.deepEqual(parseEmbedMessage({ type: 'dssd:ready' }), { type: 'dssd:ready' });
  assert.equal(parseEmbedMessage({ type: 'dssd:ask', prompt: 'x' }), null);
  assert.equal(parseEmbedMessage(42), null);
});

test("the settings form's choices and ranges come from the settings home", () => {
  for (const k of PAGE_SETTING_KEYS) {
    const spec = SETTING_SPEC[k];
    const c = fieldControl(spec);
    if (spec.kind === 'choice') assert.deepEqual('options' in c && c.options, [...spec.choices!]);
    else if (spec.kind === 'bool') assert.deepEqual('options' in c && c.options, ['false', 'true']);
    else if ('options' in c) {
      // γ: auto, then every value from the lower to the upper bound.
      assert.equal(c.options[0], 'auto');
      assert.equal(Number(c.options[1]), spec.min);
      assert.equal(Number(c.options.at(-1)), spec.max);
    } else {
      assert.equal(c.max, spec.max === undefined ? undefined : String(spec.max), k);
      assert.equal(c.min, String(spec.min ?? spec.above), k);
    }
  }
  const g = fieldControl(SETTING_SPEC.gamma);
  assert.ok('options' in g && g.options.at(-1) === String(GAMMA.max));
});

test('webgpu load option: auto by default, any/off taken, a bad value named; it is not a session setting', () => {
  assert.deepEqual(parseWebGpu(null), { value: 'auto' });
  assert.deepEqual(parseWebGpu('any'), { value: 'any' });
  assert.deepEqual(parseWebGpu(' off '), { value: 'off' });
  const bad = parseWebGpu('yes');
  assert.equal(bad.value, 'auto');
  assert.deepEqual(bad.problem, { key: 'webgpu', message: 'must be one of auto, any, off, got "yes"' });
  // The page reads it beside the settings: the settings parser neither applies nor reports it.
  const { problems } = parsePageSettings(new URLSearchParams('webgpu=any&temperature=0'));
  assert.deepEqual(problems, []);
});

test('statistics: the prefill figures, when given, are a row with a tooltip', () => {
  const d = displayStats('dssd', emptyTurnStats(), 100, { prefilled: 14, reused: 31 });
  assert.equal(d.prefilled, 14);
  const row = statRows(d).find(([k]) => k === 'prefill');
  assert.deepEqual(row, ['prefill', 'prefilled tokens', '14 (31 reused from the caches)']);
  assert.ok(STAT_HELP.prefill);
  assert.equal(
    statRows(displayStats('dssd', emptyTurnStats(), 100)).find(([k]) => k === 'prefill'),
    undefined,
  );
});
