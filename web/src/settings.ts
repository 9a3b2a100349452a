/**
 * The page's settings: the settings home's user settings, read from a URL query
 * (`?temperature=0&gamma=4&maxTokens=64&topK=10&topP=1&seed=1&mode=dssd&codec=candidates`), from the widget's
 * attributes, or from the settings form. Pure: runs in Node for the unit tests.
 */
import {
  PAGE_DEFAULT_SETTINGS,
  parseSettings,
  settingsToQuery as toQuery,
  toSessionSettings as toSession,
  type DeviceOptions,
  type SettingSource,
  type SettingSpec,
  type UserSettings,
} from '@dssd/protocol';

export type UiSettings = UserSettings;
export const DEFAULT_UI_SETTINGS = PAGE_DEFAULT_SETTINGS;

export class SettingsError extends Error {
  override readonly name = 'SettingsError';
  readonly code = 'BadSetting' as const;
}

/** Query parameters the page reads that are not settings. */
export const NON_SETTING_PARAMS: readonly string[] = [
  'token',
  'origin',
  'offline',
  'webgpu',
  'ui',
  'scheme',
  'webllmModel',
  'webllmLib',
  'webllmId',
  'webllmVocab',
  'webllmContext',
];

/**
 * The page's one load option (page-only: the Node device has no WebGPU), read before the draft loads: where the
 * Worker runs the ONNX draft. `auto`: WebGPU on a hardware adapter, else WASM; `any`: WebGPU on any adapter,
 * software ones (SwiftShader) included, which is slow but runs the WebGPU path; `off`: WASM only. URL `webgpu=…`,
 * widget attribute `webgpu="…"`.
 */
export const WEBGPU_CHOICES = ['auto', 'any', 'off'] as const;
export type WebGpuChoice = (typeof WEBGPU_CHOICES)[number];

/** The `webgpu` option from a query or attribute value (null: the default, auto), or what is wrong with it. */
export function parseWebGpu(raw: string | null): { value: WebGpuChoice; problem?: SettingProblem } {
  if (raw === null) return { value: 'auto' };
  const t = raw.trim() as WebGpuChoice;
  if (WEBGPU_CHOICES.includes(t)) return { value: t };
  return {
    value: 'auto',
    problem: {
      key: 'webgpu',
      message: `must be one of ${WEBGPU_CHOICES.join(', ')}, got ${JSON.stringify(raw)}`,
    },
  };
}

/** One bad or unknown setting: the name as given and what is wrong with it (without the name). */
export interface SettingProblem {
  key: string;
  message: string;
}

/**
 * Reads settings from string pairs (URLSearchParams, form fields) over `base`, per key: every valid value is
 * applied and each bad or unknown one is reported (so one typo never discards the rest, and nothing is dropped
 * silently). Parameters in NON_SETTING_PARAMS are not settings and not reported.
 */
export function parsePageSettings(
  source: SettingSource,
  base: UiSettings = DEFAULT_UI_SETTINGS,
): { settings: UiSettings; problems: SettingProblem[] } {
  const { settings, errors } = parseSettings(source, { base, ignore: NON_SETTING_PARAMS });
  const problems = errors.map((e) => ({
    key: e.key,
    // The home's messages start with the name; the page shows the name next to it (or on the field) itself.
    message: e.message.startsWith(`${e.key} must `) ? e.message.slice(e.key.length + 1) : e.message,
  }));
  try {
    toSessionSettings(settings); // the protocol's own validation: nothing reaches it that would be refused
  } catch (e) {
    return { settings: base, problems: [...problems, { key: 'settings', message: (e as Error).message }] };
  }
  return { settings, problems };
}

/** All or nothing (tests, callers that must not run on partial settings): throws naming every bad value. */
export function readSettings(source: SettingSource, base: UiSettings = DEFAULT_UI_SETTINGS): UiSettings {
  const { settings, problems } = parsePageSettings(source, base);
  const bad = problems.filter((e) => !e.message.startsWith('unknown setting'));
  if (bad.length) throw new SettingsError(bad.map((e) => `${e.key} ${e.message}`).join('; '));
  return settings;
}

export function settingsFromQuery(search: string, base?: UiSettings): UiSettings {
  return readSettings(new URLSearchParams(search), base);
}

/** Human-readable settings of one answer, e.g. "dssd · γ 4 · temperature 0.8 · top-p 0.95 · seed secret". */
export function describeSettings(s: UiSettings): string {
  const parts: string[] = [s.mode];
  if (s.mode !== 'ar') parts.push(`γ ${s.gamma}`, `codec ${s.codec}`);
  if (s.pipeline && s.mode === 'dssd') parts.push('pipelined');
  parts.push(`temperature ${s.temperature}`);
  if (s.topK > 0) parts.push(`top-k ${s.topK}`);
  if (s.topP < 1) parts.push(`top-p ${s.topP}`);
  parts.push(s.seed === null ? 'seed secret' : `seed ${s.seed}`);
  return parts.join(' · ');
}

/** The query string that reproduces these settings (the page's defaults left out). */
export function settingsToQuery(s: UiSettings): string {
  return toQuery(s, DEFAULT_UI_SETTINGS);
}

/** Device options for these settings: the session settings and whether γ adapts. */
export function toDeviceSettings(s: UiSettings): {
  settings: DeviceOptions['settings'];
  adaptiveGamma: boolean;
} {
  try {
    return toSession(s);
  } catch (e) {
    throw new SettingsError((e as Error).message);
  }
}

/** The session settings alone. */
export function toSessionSettings(s: UiSettings): DeviceOptions['settings'] {
  return toDeviceSettings(s).settings;
}

/** A select for choices and for small integer ranges with `auto` (γ); a bounded number input otherwise. */
export function fieldControl(
  spec: SettingSpec,
): { options: string[] } | { min?: string; max?: string; step: string } {
  if (spec.kind === 'choice') return { options: [...spec.choices!] };
  if (spec.kind === 'bool') return { options: ['false', 'true'] };
  if (spec.auto && spec.max! - spec.min! <= 64) {
    return {
      options: [
        'auto',
        ...Array.from({ length: spec.max! - spec.min! + 1 }, (_, i) => String(spec.min! + i)),
      ],
    };
  }
  const lo = spec.min ?? spec.above;
  return {
    ...(lo !== undefined ? { min: String(lo) } : {}),
    ...(spec.max !== undefined ? { max: String(spec.max) } : {}),
    step: spec.step !== undefined ? String(spec.step) : 'any',
  };
}
