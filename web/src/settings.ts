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

/**
 * Reads settings from string pairs (URLSearchParams, form fields) over `base`. All or nothing: throws
 * SettingsError naming every bad value; names the page does not know (e.g. `token`, `origin`) are ignored.
 */
export function readSettings(source: SettingSource, base: UiSettings = DEFAULT_UI_SETTINGS): UiSettings {
  const { settings, errors } = parseSettings(source, { base });
  const bad = errors.filter((e) => !e.message.startsWith('unknown setting'));
  if (bad.length) throw new SettingsError(bad.map((e) => e.message).join('; '));
  toSessionSettings(settings); // the protocol's own validation, as a SettingsError
  return settings;
}

export function settingsFromQuery(search: string, base?: UiSettings): UiSettings {
  return readSettings(new URLSearchParams(search), base);
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
