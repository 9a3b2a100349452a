/** Setting names shared by the page's query, the settings form and the widget's attributes (no imports: widget.js stays small). */
export const SETTING_KEYS = [
  'mode',
  'codec',
  'gamma',
  'temperature',
  'topK',
  'topP',
  'seed',
  'maxTokens',
] as const;

export type SettingKey = (typeof SETTING_KEYS)[number];

/** Widget attribute name for each setting (kebab case). */
export const SETTING_ATTRIBUTES: Record<SettingKey, string> = {
  mode: 'mode',
  codec: 'codec',
  gamma: 'gamma',
  temperature: 'temperature',
  topK: 'top-k',
  topP: 'top-p',
  seed: 'seed',
  maxTokens: 'max-tokens',
};
