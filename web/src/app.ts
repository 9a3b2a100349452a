/**
 * The chat page (index.html) and the widget's embed page (embed.html, `<html data-embed>`): prompt box, answers
 * streamed and coloured by origin, stop, multi-turn with a context meter, settings (also from the URL query)
 * validated per field, a progress bar over every byte the page loads, statistics with tooltips, and clear
 * messages when something is missing. In embed mode the page talks to its host (the <dssd-chat> element) by
 * postMessage, checking origins both ways, and shows only the composer and the answers unless asked (`ui`).
 */
import type { TokenEvent, TokenOrigin, TurnResult } from '@dssd/protocol';
import { SETTING_SPEC, type SettingKey } from '@dssd/protocol';
import { ChatConversation } from '@dssd/models';
import { BrowserDevice, DeviceError, explain } from './device.js';
import {
  DEFAULT_UI_SETTINGS,
  describeSettings,
  fieldControl,
  parsePageSettings,
  parseWebGpu,
  settingsToQuery,
  type UiSettings,
  type WebGpuChoice,
} from './settings.js';
import { STAT_HELP, displayStats, headline, statRows, type DisplayStats } from './stats.js';
import { webLlmConfigFromQuery } from './webllm-drafter.js';
import type { LoadProgress } from './worker.js';
import { THEME_KEYS, parseHostMessage, type EmbedToHost, type Theme } from './messages.js';

const ORIGIN_LABEL: Record<TokenOrigin, string> = {
  draft: 'accepted draft token',
  resampled: 'resampled on the device',
  bonus: 'bonus token from the edge',
  edge: 'edge token (ar)',
  unverified: 'unverified (draft only, edge unreachable)',
};

/** How each origin is marked besides its colour (so it reads without hue). */
const ORIGIN_MARK: Record<TokenOrigin, string> = {
  draft: 'solid underline',
  resampled: 'wavy underline',
  bonus: 'double underline',
  edge: 'dotted underline',
  unverified: 'dashed underline',
};

/** Prompts that suit the default pair: openings of 1960s American prose for it to continue. */
const EXAMPLES = ['The jury said', 'In the morning the', 'The city council voted', 'After the war,'];

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** The settings form: labels here, names, choices and ranges from the settings home. */
const FIELDS: { key: SettingKey; label: string }[] = [
  { key: 'mode', label: 'mode' },
  { key: 'codec', label: 'downlink codec' },
  { key: 'gamma', label: 'γ (draft length)' },
  { key: 'temperature', label: 'temperature' },
  { key: 'topK', label: 'top-k (0 = off)' },
  { key: 'topP', label: 'top-p' },
  { key: 'seed', label: 'seed (empty = secret)' },
  { key: 'maxTokens', label: 'max new tokens' },
  { key: 'pipeline', label: 'pipelined drafting (dssd)' },
];
const LABEL = Object.fromEntries(FIELDS.map((f) => [f.key, f.label])) as Record<string, string>;

const LOOPBACK = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])$/;

/** Share of the bar the downloads take; the rest is compiling, warming up and joining the edge. */
const DOWNLOAD_SHARE = 0.85;
const PHASE_AT: Record<string, number> = { init: 0.88, warmup: 0.93, join: 0.97 };

class ChatApp {
  private readonly embed = document.documentElement.hasAttribute('data-embed');
  private readonly ui: Set<string>;
  private settings: UiSettings;
  /** The page's load option: where the Worker runs the ONNX draft. */
  private readonly webgpu: WebGpuChoice;
  /** Form fields that hold an invalid value (Send is blocked while any does). */
  private invalid = new Set<string>();
  private device: BrowserDevice | null = null;
  private loading: Promise<BrowserDevice | null> | null = null;
  private abort: AbortController | null = null;
  private turns = 0;
  /** Where each turn of the current session starts in the history, and its element (for trimming). */
  private turnStarts: { start: number; el: HTMLElement }[] = [];
  /** After trimming: the kept history, re-sent (base 0) before the next prompt. */
  private carried: number[] | null = null;
  /**
   * With a chat template: the conversation's messages and the text the session holds (each turn feeds only what
   * the session does not hold yet); null when the next turn starts a new conversation.
   */
  private conversation: ChatConversation | null = null;
  /** A prompt held back by a full context, sent once the person chooses how to make room. */
  private heldPrompt: string | null = null;
  private token: string | undefined;
  private hostOrigin: string | null = null;
  private tokenReady: Promise<void> = Promise.resolve();
  private readonly files = new Map<string, [number, number]>();
  private barValue = 0;
  private readonly lastTps: Partial<Record<string, number>> = {};

  private readonly status = h('p', { class: 'status', role: 'status' });
  private readonly error = h('p', { class: 'error', role: 'alert', hidden: '' });
  private readonly progress = h('progress', {
    max: '1',
    value: '0',
    'aria-label': 'Loading the draft model',
  });
  private readonly progressText = h('span', { class: 'progress-text' });
  private readonly progressBox = h('div', { class: 'progress' }, this.progress, this.progressText);
  private readonly transcript = h('section', {
    class: 'transcript',
    'aria-label': 'Conversation',
    // A log: a screen reader announces each finished answer (answers are aria-busy while they stream).
    role: 'log',
    'aria-live': 'polite',
  });
  private readonly meter = h('meter', { min: '0', max: '512', value: '0', 'aria-label': 'Context used' });
  private readonly meterText = h('span', { class: 'context-text' }, '0 / 512 tokens');
  private readonly trimButton = h('button', { type: 'button', class: 'trim' }, 'Drop oldest turns');
  private readonly freshButton = h('button', { type: 'button', class: 'fresh' }, 'New conversation');
  private readonly contextNote = h('p', { class: 'context-note', hidden: '' });
  private readonly contextBox = h(
    'div',
    { class: 'context' },
    h('span', { class: 'context-label' }, 'Context'),
    this.meter,
    this.meterText,
  );
  private readonly contextFull = h(
    'div',
    { class: 'context-full', hidden: '' },
    this.contextNote,
    h('div', { class: 'buttons' }, this.freshButton, this.trimButton),
  );
  private readonly prompt = h('textarea', { id: 'prompt', rows: '2', placeholder: 'Write a prompt…' });
  private readonly send = h('button', { type: 'submit', class: 'send' }, 'Send');
  private readonly stop = h('button', { type: 'button', class: 'stop', disabled: '' }, 'Stop');
  private readonly reset = h('button', { type: 'button', class: 'new' }, 'New conversation');
  private readonly blocked = h('p', { class: 'blocked', id: 'send-blocked', hidden: '' });
  private readonly headlineBox = h('p', { class: 'headline' });
  private readonly statsBox = h('dl', { class: 'stats', 'aria-label': 'Statistics' });
  private readonly why = h('p', { class: 'why', hidden: '' });
  private readonly colours = h('input', { type: 'checkbox', id: 'colours', checked: '' });
  private readonly settingsForm = h('form', { class: 'settings-form', novalidate: '' });
  private readonly share = h('a', { class: 'share', href: '?' }, 'link to these settings');

  constructor() {
    const q = new URLSearchParams(location.search);
    this.ui = new Set((q.get('ui') ?? '').split(',').filter(Boolean));
    const scheme = q.get('scheme');
    if (scheme === 'light' || scheme === 'dark') document.documentElement.dataset.scheme = scheme;
    // The valid part of the query applies; each bad or unknown key is named (never the whole query dropped).
    const { settings, problems } = parsePageSettings(q);
    const gpu = parseWebGpu(q.get('webgpu'));
    this.webgpu = gpu.value;
    if (gpu.problem) problems.push(gpu.problem);
    this.settings = settings;
    this.token = q.get('token') ?? undefined;
    // The bridge first, so an error about the query reaches the host as dssd-error.
    if (this.embed) this.setupHost(q.get('origin'));
    this.render();
    if (problems.length) {
      const names = this.embed ? 'attribute' : 'URL setting';
      this.showError(
        `Ignored ${problems.length === 1 ? `this ${names}` : `these ${names}s`} (the others apply): ` +
          problems.map((p) => `${p.key}: ${p.message}`).join('; '),
        'BadSetting',
      );
    }
    this.loading = this.load();
  }

  private show(part: string): boolean {
    return !this.embed || this.ui.has(part);
  }

  private render(): void {
    const composer = h(
      'form',
      { class: 'composer' },
      h('label', { for: 'prompt' }, 'Prompt'),
      this.prompt,
      h('div', { class: 'buttons' }, this.send, this.stop, this.reset),
      this.blocked,
    );
    composer.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.ask();
    });
    this.prompt.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey) {
        ev.preventDefault();
        composer.requestSubmit();
      }
    });
    this.stop.addEventListener('click', () => this.abort?.abort());
    this.reset.addEventListener('click', () => this.newConversation());
    this.freshButton.addEventListener('click', () => {
      this.newConversation();
      this.sendHeld();
    });
    this.trimButton.addEventListener('click', () => {
      this.trimOldest();
      this.sendHeld();
    });

    for (const f of FIELDS) {
      const id = `set-${f.key}`;
      const v = this.settings[f.key];
      const c = fieldControl(SETTING_SPEC[f.key]);
      const common = { id, name: f.key, 'aria-describedby': `err-${f.key}` };
      const input =
        'options' in c
          ? h('select', common, ...c.options.map((o) => h('option', { value: o }, o)))
          : h('input', { ...common, type: 'number', ...c, value: v === null ? '' : String(v) });
      if ('options' in c) (input as HTMLSelectElement).value = String(v);
      this.settingsForm.append(
        h('label', { for: id }, f.label),
        input,
        h('span', { class: 'field-error', id: `err-${f.key}` }),
      );
    }
    // Checked on every keystroke: the form never shows a value other than the one the next answer uses.
    this.settingsForm.addEventListener('input', () => this.readSettingsForm());
    this.settingsForm.addEventListener('change', () => this.readSettingsForm());
    this.updateShare();

    const sample = (['draft', 'resampled', 'bonus', 'edge'] as TokenOrigin[]).map((o) =>
      h('span', { class: `tok tok-${o}`, title: ORIGIN_MARK[o] }, ORIGIN_LABEL[o]),
    );
    this.colours.addEventListener('change', () =>
      document.documentElement.classList.toggle('plain-tokens', !this.colours.checked),
    );
    const legend = h(
      'div',
      { class: 'legend' },
      h(
        'p',
        {},
        'Each piece of an answer is marked by where it came from: a draft token the edge accepted (solid ' +
          'underline), a token the device resampled after a rejection (wavy), the bonus token the edge adds ' +
          'when it accepts every draft (double), or, in edge-only mode, a token from the edge (dotted).',
      ),
      h('p', { class: 'samples' }, ...sample),
      h('p', {}, h('label', { for: 'colours' }, this.colours, ' Mark tokens by origin')),
    );
    const settings = h(
      'details',
      { class: 'settings' },
      h('summary', {}, 'Settings'),
      this.settingsForm,
      h('p', {}, this.share),
    );
    const side = h('aside', { 'aria-label': 'Statistics and settings' });
    if (this.show('stats'))
      side.append(h('h2', {}, 'Statistics'), this.headlineBox, this.statsBox, this.why, legend);
    if (this.show('settings')) side.append(settings);
    const intro = h(
      'div',
      { class: 'intro' },
      h(
        'p',
        {},
        'Your browser drafts tokens with a 1 M-parameter model; the edge checks them with a 6 M-parameter ' +
          'target. The default pair is a toy trained on 1960s American prose: it continues text, it does not ' +
          'answer questions. ',
        h('a', { href: 'README.txt' }, 'README'),
        ' · ',
        h('a', { href: 'model-card.txt' }, 'model card'),
      ),
      h(
        'p',
        { class: 'examples' },
        'Try: ',
        ...EXAMPLES.map((e) => {
          const b = h('button', { type: 'button', class: 'example' }, e);
          b.addEventListener('click', () => {
            this.prompt.value = e;
            this.prompt.focus();
          });
          return b;
        }),
      ),
    );
    const header = this.embed
      ? h('header', {}, h('h1', { class: 'visually-hidden' }, 'dssd chat'), this.status)
      : h(
          'header',
          {},
          h('h1', {}, 'dssd'),
          h('p', { class: 'tagline' }, 'split speculative decoding, live'),
          this.status,
        );
    const main = h(
      'main',
      {},
      header,
      ...(this.embed ? [] : [intro]),
      this.progressBox,
      this.error,
      this.transcript,
      this.contextBox,
      this.contextFull,
      composer,
      ...(side.childElementCount ? [side] : []),
    );
    document.body.append(main);
    this.setStatus('Loading the draft model…');
    this.progressText.textContent = 'Starting…';
  }

  /** Reads the form field by field: valid values apply at once, each invalid one is marked and blocks Send. */
  private readSettingsForm(): void {
    const data = new FormData(this.settingsForm);
    const { settings, problems } = parsePageSettings((k) => {
      const v = data.get(k);
      return typeof v === 'string' ? v : null;
    }, this.settings);
    this.invalid = new Set(problems.map((p) => p.key));
    for (const f of FIELDS) {
      const el = this.settingsForm.elements.namedItem(f.key) as HTMLInputElement | null;
      const err = this.settingsForm.querySelector<HTMLElement>(`#err-${f.key}`);
      const p = problems.find((x) => x.key === f.key);
      if (p) el?.setAttribute('aria-invalid', 'true');
      else el?.removeAttribute('aria-invalid');
      if (err) err.textContent = p ? `${f.label} ${p.message}` : '';
    }
    this.settings = settings;
    this.updateBlocked();
    this.updateShare();
  }

  private updateBlocked(): void {
    const names = [...this.invalid].map((k) => LABEL[k] ?? k);
    this.blocked.hidden = names.length === 0;
    this.blocked.textContent = names.length
      ? `Send is blocked: fix ${names.join(', ')} in the settings.`
      : '';
    if (names.length) this.send.setAttribute('aria-describedby', 'send-blocked');
    else this.send.removeAttribute('aria-describedby');
    this.send.disabled = !!this.abort || names.length > 0;
  }

  private updateShare(): void {
    const q = settingsToQuery(this.settings);
    this.share.href = `${location.pathname}${q ? '?' + q : ''}`;
  }

  private setStatus(text: string): void {
    this.status.textContent = text;
    this.post({ type: 'dssd:status', text });
  }

  private showError(text: string, code = 'Error'): void {
    this.error.textContent = text;
    this.error.hidden = false;
    this.error.dataset.code = code;
    this.post({ type: 'dssd:error', code, message: text });
  }

  private clearError(): void {
    this.error.hidden = true;
    this.error.textContent = '';
  }

  /** The bar: bytes of every file (model, wasm, tokenizer) up to 85%, then compile, warm-up, joining the edge. */
  private onProgress(p: LoadProgress | { phase: 'join' }): void {
    if (p.phase === 'ready') return; // 100% only once the edge is joined (see load)
    const mb = (n: number) => (n / 1e6).toFixed(1);
    let loaded = 0;
    let total = 0;
    if (p.phase === 'download') {
      this.files.set(p.file ?? p.text, [p.loaded, p.total]);
    }
    for (const [l, t] of this.files.values()) {
      loaded += l;
      total += t;
    }
    this.progressBox.dataset.totalBytes = String(total);
    this.progressBox.dataset.phase = p.phase;
    const v =
      p.phase === 'download' ? (total > 0 ? (DOWNLOAD_SHARE * loaded) / total : 0) : PHASE_AT[p.phase]!;
    // Never backwards: a file whose size arrives late would otherwise pull the bar back.
    this.barValue = Math.max(this.barValue, Math.min(v, 0.99));
    this.progress.value = this.barValue;
    const pct = `${Math.floor(100 * this.barValue)}%`;
    const text =
      p.phase === 'download'
        ? `Downloading the draft model, ORT wasm and tokenizer: ${mb(loaded)} / ${mb(total)} MB`
        : p.phase === 'init'
          ? 'Compiling the draft model'
          : p.phase === 'warmup'
            ? 'Warming up the draft model'
            : 'Joining the edge';
    this.progressText.textContent = `${text} (${pct})`;
  }

  private finishProgress(): void {
    this.progress.value = 1;
    this.progressText.textContent = 'Ready (100%)';
    this.progressBox.dataset.phase = 'done';
    this.progressBox.hidden = true;
  }

  private async load(): Promise<BrowserDevice | null> {
    try {
      const device = await BrowserDevice.create(
        {
          edge: location.origin,
          token: this.token,
          workerUrl: new URL('worker.js', import.meta.url),
          webllm: this.webllmConfig(),
          webgpu: this.webgpu,
          onProgress: (p) => this.onProgress(p),
          offlineFallback: new URLSearchParams(location.search).get('offline') === '1',
        },
        this.settings,
      );
      this.device = device;
      this.onProgress({ phase: 'join' });
      this.updateContext();
      this.setStatus(`Draft model ready (${device.info.reason}). Joining the edge…`);
      await this.tokenReady;
      device.opts.token = this.token;
      await device.connect(this.settings).then(
        (s) => {
          this.setStatus(
            this.embed
              ? 'Connected to the edge. Ready.'
              : `Connected to the edge (${s.welcome.model.name ?? 'target'}). ${device.info.reason}.`,
          );
          this.updateContext();
          this.finishProgress();
        },
        (e) => {
          this.progressBox.hidden = true; // not 100%: the page cannot generate (the next Send retries)
          this.fail(e);
        },
      );
      return device;
    } catch (e) {
      this.progressBox.hidden = true;
      this.fail(e);
      this.setStatus('Not ready.');
      return null;
    }
  }

  private webllmConfig() {
    try {
      return webLlmConfigFromQuery(location.search, location.href);
    } catch (e) {
      this.showError((e as Error).message);
      return null;
    }
  }

  private fail(e: unknown): void {
    const err = e instanceof DeviceError ? e : explain(e, location.origin);
    this.showError(err.message, err.code);
  }

  /** The meter: tokens both sides hold (or will hold: a trimmed history waiting to be re-sent). */
  private updateContext(streaming?: number): void {
    const d = this.device;
    if (!d) return;
    const max = d.maxContext;
    const used = streaming ?? (this.carried ? this.carried.length : d.used);
    this.meter.max = max;
    this.meter.value = Math.min(used, max);
    this.meter.setAttribute('aria-valuetext', `${used} of ${max} tokens`);
    this.meterText.textContent = `${used} / ${max} tokens`;
    this.contextBox.dataset.used = String(used);
    this.contextBox.dataset.max = String(max);
  }

  private newConversation(): void {
    if (this.abort) return;
    this.device?.disconnect();
    this.transcript.replaceChildren();
    this.turns = 0;
    this.turnStarts = [];
    this.carried = null;
    this.conversation = null;
    this.contextFull.hidden = true;
    this.statsBox.replaceChildren();
    this.headlineBox.replaceChildren();
    this.clearError();
    this.updateContext();
    this.setStatus('New conversation.');
  }

  /**
   * Drops the oldest turns until at least half the context is free (the newest turn is kept when it fits);
   * both sides forget everything and the next turn re-sends what is kept from position 0 (a turn frame with
   * base 0 makes the edge and the draft prefill it again).
   */
  private trimOldest(): void {
    const d = this.device;
    if (this.abort || !d || !d.session || !d.connected) return;
    const history = this.carried ?? d.session.history.slice();
    const target = Math.floor(d.maxContext / 2);
    let k = 0;
    while (k < this.turnStarts.length && history.length - this.turnStarts[k]!.start > target) k++;
    const from = k < this.turnStarts.length ? this.turnStarts[k]!.start : history.length;
    const dropped = this.turnStarts.slice(0, k);
    for (const t of dropped) t.el.remove();
    this.turnStarts = this.turnStarts.slice(k).map((t) => ({ start: t.start - from, el: t.el }));
    this.carried = history.slice(from);
    if (this.conversation && d.chat) {
      // Each turn is a user and an assistant message: the kept ones are rendered again (from position 0) with the
      // next prompt, so the template sees a well-formed conversation.
      const kept = this.conversation.messages.slice(2 * k);
      this.conversation = new ChatConversation(d.chat, d.tokenizer);
      this.conversation.messages.push(...kept);
      this.carried = [];
    }
    d.session.rewind(0);
    if (this.turnStarts.length === 0) this.turns = 0;
    this.transcript.prepend(
      h(
        'p',
        { class: 'divider', role: 'separator' },
        `${dropped.length} oldest turn${dropped.length === 1 ? '' : 's'} dropped from the context; the rest is sent again.`,
      ),
    );
    this.contextFull.hidden = true;
    this.updateContext();
  }

  private sendHeld(): void {
    const p = this.heldPrompt;
    this.heldPrompt = null;
    if (p !== null) void this.ask(p);
  }

  private setBusy(busy: boolean): void {
    this.stop.disabled = !busy;
    this.reset.disabled = busy;
    this.trimButton.disabled = busy;
    this.freshButton.disabled = busy;
    this.updateBlocked();
  }

  /** One turn: encode, stream the answer with its origins, then show the statistics. */
  async ask(text = this.prompt.value): Promise<void> {
    if (this.abort || !text.trim()) return;
    if (this.invalid.size) {
      // Never run on settings other than the ones shown (a host's ask() arrives here with Send blocked).
      this.showError(this.blocked.textContent ?? 'Some settings are invalid.', 'BadSetting');
      return;
    }
    this.clearError();
    const settings = this.settings;
    const device = this.device ?? (await this.loading);
    if (!device) {
      this.showError('The draft model is not loaded; reload the page.', 'ModelLoad');
      this.prompt.value = text;
      return;
    }
    // A settings change opens a new session: say so, so old turns are not mistaken for context.
    if (this.turns > 0 && device.connected && !device.sameSession(settings)) {
      this.transcript.append(
        h(
          'p',
          { class: 'divider', role: 'separator' },
          `Settings changed: a new conversation starts here (${describeSettings(settings)}).`,
        ),
      );
      this.turns = 0;
      this.turnStarts = [];
      this.carried = null; // a new session starts empty
      this.conversation = null;
    }
    const continuing = this.turns > 0 && (device.connected || this.carried !== null);
    if (!continuing && this.carried === null) this.conversation = null;
    let before = this.carried ? 0 : device.sameSession(settings) ? device.used : 0;
    let prefix = this.carried ?? [];
    let newIds: number[];
    let chatTurn: { conversation: ChatConversation; rewindTo: number | null } | null = null;
    if (device.chat) {
      // The template renders the whole conversation; the session is fed only what it does not hold yet (the
      // previous answers stay in both KV caches).
      const conversation = this.conversation ?? new ChatConversation(device.chat, device.tokenizer);
      const held = before > 0 && device.session ? device.session.history : [];
      const { keep, feed } = conversation.user(text, held);
      chatTurn = { conversation, rewindTo: keep < held.length ? keep : null };
      before = keep;
      prefix = [];
      newIds = feed;
    } else {
      // Later turns continue the same text: a newline separates them.
      newIds = device.tokenizer.encode(continuing ? '\n' + text : text);
    }
    if (newIds.length === 0) {
      chatTurn?.conversation.messages.pop();
      this.showError('The prompt encodes to no tokens.', 'Generation');
      return;
    }
    const ids = prefix.concat(newIds);
    const room = device.maxContext - before - ids.length - 1;
    if (room < 1) {
      chatTurn?.conversation.messages.pop(); // sent again once there is room
      this.heldPrompt = text;
      this.prompt.value = text;
      this.contextNote.textContent =
        this.turns > 0
          ? `The context is full (${before + ids.length} of ${device.maxContext} tokens with this prompt). ` +
            'Start a new conversation, or drop the oldest turns; your prompt is sent right after.'
          : `This prompt is too long for the ${device.maxContext}-token context.`;
      this.trimButton.hidden = this.turns === 0;
      this.contextFull.hidden = false;
      this.post({ type: 'dssd:error', code: 'ContextFull', message: this.contextNote.textContent });
      return;
    }
    this.contextFull.hidden = true;
    const maxNew = Math.min(settings.maxTokens, room);
    const abort = new AbortController();
    this.abort = abort;
    this.setBusy(true);
    const answer = h('div', {
      class: 'answer',
      role: 'group',
      'aria-label': 'Answer',
      'aria-busy': 'true',
    });
    const meta = h('p', { class: 'answer-meta' }, describeSettings(settings));
    const turnEl = h('article', { class: 'turn' }, h('p', { class: 'user' }, text), answer, meta);
    this.transcript.append(turnEl);
    this.prompt.value = '';
    let answerText = '';
    let result: TurnResult | null = null;
    try {
      // A chat answer ends on the template's end-of-turn token: special tokens are markup, not text.
      const stream = device.tokenizer.decodeStream({ skipSpecialTokens: chatTurn !== null });
      const t0 = performance.now();
      let n = 0;
      const onTokens = (ev: TokenEvent) => {
        const piece = stream.push(ev.tokens);
        n += ev.tokens.length;
        answerText += piece;
        if (piece)
          answer.append(h('span', { class: `tok tok-${ev.origin}`, title: ORIGIN_LABEL[ev.origin] }, piece));
        this.liveStats(n, performance.now() - t0);
        this.updateContext(before + ids.length + n);
        this.post({ type: 'dssd:token', text: piece, origin: ev.origin, tokens: ev.tokens });
      };
      if (!device.connected) this.setStatus('Joining the edge…');
      const fresh = !device.sameSession(settings);
      if (chatTurn?.rewindTo != null && !fresh) device.session!.rewind(chatTurn.rewindTo);
      result = await device.generate(ids, settings, onTokens, abort.signal, maxNew);
      if (chatTurn) {
        // The answer as the session holds it (an end-of-turn token it stopped on included).
        chatTurn.conversation.assistant(device.session!.history.slice(before + ids.length));
        this.conversation = chatTurn.conversation;
      }
      if (fresh) this.turnStarts = [];
      this.turnStarts.push({ start: before + prefix.length, el: turnEl });
      this.carried = null;
      const tail = stream.flush();
      if (tail) {
        answerText += tail;
        answer.append(h('span', { class: 'tok' }, tail));
      }
      this.turns++;
      const stats = displayStats(settings.mode, result.stats, device.info.identity.vocabSize, {
        prefilled: ids.length,
        reused: before,
      });
      answer.dataset.prefilled = String(ids.length);
      answer.dataset.reused = String(before);
      answer.dataset.tokens = result.tokens.join(',');
      this.showStats(stats);
      this.lastTps[settings.mode] = stats.tokensPerSecond;
      this.explainSpeed();
      answer.dataset.done = result.done;
      const capped =
        maxNew < settings.maxTokens ? `; capped at ${maxNew} by the room left in the context` : '';
      meta.replaceChildren(
        `${describeSettings(settings)} — `,
        ...headline(stats).flatMap(([k, t], i) => [i ? ' · ' : '', h('span', { title: STAT_HELP[k]! }, t)]),
        ` · ${stats.tokens} tokens, ${stats.tokensPerSecond.toFixed(0)} tokens per second · `,
        h(
          'span',
          { title: STAT_HELP.prefill!, 'data-meta': 'prefill' },
          `prefilled ${ids.length} tokens, ${before} reused from the caches`,
        ),
        capped,
      );
      this.setStatus(
        this.embed
          ? `Done: ${result.tokens.length} tokens.`
          : `Done (${result.done}): ${result.tokens.length} tokens at ${stats.tokensPerSecond.toFixed(1)} tokens/s.`,
      );
      this.post({
        type: 'dssd:answer',
        prompt: text,
        text: answerText,
        tokens: result.tokens,
        done: result.done,
        stats,
      });
    } catch (e) {
      const err = e instanceof DeviceError ? e : explain(e, location.origin);
      answer.dataset.done = 'error';
      chatTurn?.conversation.messages.pop(); // the failed prompt is not part of the conversation
      // A failed turn keeps its prompt, so it can be sent again as it was.
      if (!this.prompt.value) this.prompt.value = text;
      if (err.code === 'ConnectionLost' || err.code === 'Unreachable' || err.code === 'Timeout') {
        this.turns = 0; // the next Send starts a new conversation
        this.turnStarts = [];
        this.carried = null;
        this.conversation = null;
        this.showError(`${err.message} Press Send to reconnect (a new conversation starts).`, err.code);
        this.setStatus('Disconnected.');
      } else this.showError(err.message, err.code);
    } finally {
      answer.setAttribute('aria-busy', 'false');
      this.abort = null;
      this.setBusy(false);
      this.updateContext();
      // Stop (or Send) was pressed and is now disabled: focus would fall to <body>; give it to the composer.
      const a = document.activeElement;
      if (a === this.stop || a === this.send || a === document.body || a === null) {
        if (document.hasFocus()) this.prompt.focus();
      }
    }
  }

  /** Why edge-only decoding can beat speculation here (it surprises people on localhost). */
  private explainSpeed(): void {
    const ar = this.lastTps.ar;
    const spec = Math.max(this.lastTps.dssd ?? 0, this.lastTps.dsd ?? 0);
    const measured = ar !== undefined && spec > 0 && ar > spec;
    if (!measured && !LOOPBACK.test(location.hostname)) return;
    this.why.hidden = false;
    this.why.textContent =
      (measured
        ? `Edge-only decoding (ar) ran faster here (${ar!.toFixed(0)} vs ${spec.toFixed(0)} tokens per second). `
        : 'On this connection edge-only decoding (ar) is likely faster. ') +
      'Speculation saves round trips and target passes, but this edge is close by (no network latency) and ' +
      'its small target takes about 2 ms per pass, so drafting costs more than it saves. With tens of ' +
      'milliseconds per round trip and a large target, fewer round trips win.';
  }

  private liveStats(tokens: number, ms: number): void {
    const rows: [string, string, string][] = [
      ['tokens', 'tokens', String(tokens)],
      ['tps', 'tokens per second', ms > 0 ? ((1000 * tokens) / ms).toFixed(1) : '–'],
    ];
    this.fillStats(rows);
  }

  private showStats(s: DisplayStats): void {
    this.fillStats(statRows(s));
    this.headlineBox.replaceChildren(
      ...headline(s).flatMap(([k, t], i) => [
        i ? ' · ' : '',
        h('span', { title: STAT_HELP[k]!, 'data-headline': k }, t),
      ]),
    );
    this.statsBox.dataset.json = JSON.stringify(s);
  }

  private fillStats(rows: [string, string, string][]): void {
    this.statsBox.replaceChildren(
      ...rows.flatMap(([key, label, value]) => [
        h('dt', { title: STAT_HELP[key]! }, label),
        h('dd', { 'data-stat': key, title: STAT_HELP[key]! }, value),
      ]),
    );
  }

  // ---- embed mode: the bridge to the host page ----

  private setupHost(origin: string | null): void {
    let o: string | null = null;
    try {
      o = origin ? new URL(origin).origin : null;
    } catch {
      o = null;
    }
    if (!o || window.parent === window) return;
    this.hostOrigin = o;
    let gotInit: () => void = () => undefined;
    // Wait briefly for the host's init (it carries the join token); a host that sends none still works.
    this.tokenReady = new Promise<void>((resolve) => {
      gotInit = resolve;
      setTimeout(resolve, 3000);
    });
    window.addEventListener('message', (ev) => {
      // Only the embedding page, and only from the origin it declared (frame-ancestors limits who that can be).
      if (ev.source !== window.parent || ev.origin !== this.hostOrigin) return;
      const m = parseHostMessage(ev.data);
      if (!m) return;
      if (m.type === 'dssd:init') {
        if (m.token !== undefined) this.token = m.token;
        if (m.theme) applyTheme(m.theme);
        gotInit();
      } else if (m.type === 'dssd:ask') {
        void this.ask(m.prompt);
      } else if (m.type === 'dssd:stop') {
        this.abort?.abort();
      }
    });
    this.post({ type: 'dssd:ready' });
  }

  private post(m: EmbedToHost): void {
    if (this.hostOrigin) window.parent.postMessage(m, this.hostOrigin);
  }
}

const app = new ChatApp();
(globalThis as { dssdApp?: ChatApp }).dssdApp = app;

/** The host's theme (CSS custom properties on <dssd-chat>, validated by parseHostMessage) on this page. */
function applyTheme(t: Theme): void {
  for (const k of THEME_KEYS) {
    const v = t[k];
    if (v) document.documentElement.style.setProperty(`--${k}`, v);
  }
}
