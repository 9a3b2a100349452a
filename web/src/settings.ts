/**
 * The page's settings: parsed from a URL query (`?temperature=0&gamma=4&maxTokens=64&topK=10&topP=1&seed=1
 * &mode=dssd&codec=candidates`), from the widget's attributes, or from the settings form, and turned into the
 * protocol's session settings. Pure: runs in Node for the unit tests.
 */
import {
  DOWNLINK_CODECS,
  MODES,
  validateSettings,
  type DeviceOptions,
  type DownlinkCodec,
  type Mode,
} from '@dssd/protocol';
import { SETTING_KEYS, type SettingKey } from './setting-keys.js';

export interface UiSettings {
  mode: Mode;
  codec: DownlinkCodec;
  gamma: number;
  temperature: number;
  topK: number;
  topP: number;
  /** Session seed; null = each side draws its own secret seed. */
  seed: number | null;
  maxTokens: number;
}

export const DEFAULT_UI_SETTINGS: UiSettings = {
  mode: 'dssd',
  codec: 'auto',
  gamma: 4,
  temperature: 0.8,
  topK: 0,
  topP: 0.95,
  seed: null,
  maxTokens: 96,
};

export { SETTING_ATTRIBUTES, SETTING_KEYS } from './setting-keys.js';

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  readonly code = 'BadSetting' as const;
}

function numberOf(key: string, raw: string, int: boolean, min: number, max: number): number {
  const x = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(x) || (int && !Number.isInteger(x)) || x < min || x > max) {
    throw new SettingsError(
      `${key} must be ${int ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(raw)}`,
    );
  }
  return x;
}

/**
 * Reads settings from string pairs (URLSearchParams, attributes, form fields). Unknown keys are ignored;
 * missing ones keep `base`. Throws SettingsError naming the first bad value.
 */
export function parseSettings(
  get: (key: SettingKey) => string | null | undefined,
  base: UiSettings = DEFAULT_UI_SETTINGS,
): UiSettings {
  const s: UiSettings = { ...base };
  for (const key of SETTING_KEYS) {
    const raw = get(key);
    if (raw === null || raw === undefined) continue;
    switch (key) {
      case 'mode':
        if (!MODES.includes(raw as Mode)) throw new SettingsError(`mode must be one of ${MODES.join(', ')}`);
        s.mode = raw as Mode;
        break;
      case 'codec':
        if (!DOWNLINK_CODECS.includes(raw as DownlinkCodec))
          throw new SettingsError(`codec must be one of ${DOWNLINK_CODECS.join(', ')}`);
        s.codec = raw as DownlinkCodec;
        break;
      case 'gamma':
        s.gamma = numberOf(key, raw, true, 1, 32);
        break;
      case 'temperature':
        s.temperature = numberOf(key, raw, false, 0, 100);
        break;
      case 'topK':
        s.topK = numberOf(key, raw, true, 0, 1 << 24);
        break;
      case 'topP':
        s.topP = numberOf(key, raw, false, 0, 1);
        break;
      case 'seed':
        s.seed = raw.trim() === '' ? null : numberOf(key, raw, true, 0, Number.MAX_SAFE_INTEGER);
        break;
      case 'maxTokens':
        s.maxTokens = numberOf(key, raw, true, 1, 4096);
        break;
    }
  }
  toSessionSettings(s); // the protocol's own validation (e.g. topP = 0) as a SettingsError
  return s;
}

export function settingsFromQuery(search: string, base?: UiSettings): UiSettings {
  const q = new URLSearchParams(search);
  return parseSettings((k) => q.get(k), base);
}

/** The query string that reproduces these settings (defaults left out). */
export function settingsToQuery(s: UiSettings): string {
  const q = new URLSearchParams();
  for (const key of SETTING_KEYS) {
    const v = s[key];
    if (v === DEFAULT_UI_SETTINGS[key]) continue;
    q.set(key, v === null ? '' : String(v));
  }
  return q.toString();
}

/** Session settings for DeviceSession.open (the draft samples with the target's parameters). */
export function toSessionSettings(s: UiSettings): DeviceOptions['settings'] {
  const sampling = { temperature: s.temperature, topK: s.topK, topP: s.topP };
  const out: DeviceOptions['settings'] = {
    mode: s.mode,
    codec: s.codec,
    gamma: s.mode === 'ar' ? 0 : s.gamma,
    sampling,
    draftSampling: sampling,
  };
  if (s.seed !== null) out.seed = s.seed;
  try {
    validateSettings({ dsdPrecision: 'f32', topK: 20, ...out });
  } catch (e) {
    throw new SettingsError((e as Error).message);
  }
  return out;
}
