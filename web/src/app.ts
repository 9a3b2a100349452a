/**
 * The chat page (index.html) and the widget's embed page (embed.html, `<html data-embed>`): prompt box, answers
 * streamed and coloured by origin, stop, multi-turn, settings (also from the URL query), a progress bar while the
 * draft model loads, live statistics, and clear messages when something is missing. In embed mode the page talks
 * to its host (the <dssd-chat> element) by postMessage, checking origins both ways.
 */
import type { TokenEvent, TokenOrigin, TurnResult } from '@dssd/protocol';
import { SETTING_SPEC, type SettingKey } from '@dssd/protocol';
import { BrowserDevice, DeviceError, explain } from './device.js';
import {
  DEFAULT_UI_SETTINGS,
  SettingsError,
  fieldControl,
  readSettings,
  settingsFromQuery,
  settingsToQuery,
  type UiSettings,
} from './settings.js';
import { displayStats, statRows, type DisplayStats } from './stats.js';
import { webLlmConfigFromQuery } from './webllm-drafter.js';
import type { LoadProgress } from './worker.js';
import { parseHostMessage, type EmbedToHost } from './messages.js';

const ORIGIN_LABEL: Record<TokenOrigin, string> = {
  draft: 'accepted draft token',
  resampled: 'resampled on the device',
  bonus: 'bonus token from the edge',
  edge: 'edge token (ar)',
  unverified: 'unverified (draft only, edge unreachable)',
};

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
];

class ChatApp {
  private readonly embed = document.documentElement.hasAttribute('data-embed');
  private settings: UiSettings;
  private device: BrowserDevice | null = null;
  private loading: Promise<BrowserDevice | null> | null = null;
  private abort: AbortController | null = null;
  private turns = 0;
  private token: string | undefined;
  private hostOrigin: string | null = null;
  private tokenReady: Promise<void> = Promise.resolve();

  private readonly status = h('p', { class: 'status', role: 'status' });
  private readonly error = h('p', { class: 'error', role: 'alert', hidden: '' });
  private readonly progress = h('progress', {
    max: '1',
    value: '0',
    'aria-label': 'Loading the draft model',
  });
  private readonly progressText = h('span', { class: 'progress-text' });
  private readonly progressBox = h('div', { class: 'progress' }, this.progress, this.progressText);
  private readonly transcript = h('section', { class: 'transcript', 'aria-label': 'Conversation' });
  private readonly prompt = h('textarea', { id: 'prompt', rows: '2', placeholder: 'Write a prompt…' });
  private readonly send = h('button', { type: 'submit', class: 'send' }, 'Send');
  private readonly stop = h('button', { type: 'button', class: 'stop', disabled: '' }, 'Stop');
  private readonly reset = h('button', { type: 'button', class: 'new' }, 'New conversation');
  private readonly statsBox = h('dl', { class: 'stats', 'aria-label': 'Statistics' });
  private readonly settingsForm = h('form', { class: 'settings-form' });
  private readonly share = h('a', { class: 'share', href: '?' }, 'link to these settings');

  constructor() {
    let settings = DEFAULT_UI_SETTINGS;
    let queryError: string | null = null;
    try {
      settings = settingsFromQuery(location.search);
    } catch (e) {
      queryError = `Ignoring the URL's settings: ${(e as Error).message}`;
    }
    this.settings = settings;
    const q = new URLSearchParams(location.search);
    this.token = q.get('token') ?? undefined;
    this.render();
    if (queryError) this.showError(queryError);
    if (this.embed) this.setupHost(q.get('origin'));
    this.loading = this.load();
  }

  private render(): void {
    const composer = h(
      'form',
      { class: 'composer' },
      h('label', { for: 'prompt' }, 'Prompt'),
      this.prompt,
      h('div', { class: 'buttons' }, this.send, this.stop, this.reset),
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

    for (const f of FIELDS) {
      const id = `set-${f.key}`;
      const v = this.settings[f.key];
      const c = fieldControl(SETTING_SPEC[f.key]);
      const input =
        'options' in c
          ? h('select', { id, name: f.key }, ...c.options.map((o) => h('option', { value: o }, o)))
          : h('input', { id, name: f.key, type: 'number', ...c, value: v === null ? '' : String(v) });
      if ('options' in c) (input as HTMLSelectElement).value = String(v);
      this.settingsForm.append(h('label', { for: id }, f.label), input);
    }
    this.settingsForm.addEventListener('change', () => this.readSettingsForm());
    this.updateShare();

    const legend = h(
      'p',
      { class: 'legend' },
      ...(['draft', 'resampled', 'bonus', 'edge'] as TokenOrigin[]).map((o) =>
        h('span', { class: `tok tok-${o}` }, ORIGIN_LABEL[o]),
      ),
    );
    const settings = h(
      'details',
      { class: 'settings' },
      h('summary', {}, 'Settings'),
      this.settingsForm,
      h('p', {}, this.share),
    );
    const side = h('aside', {}, h('h2', {}, 'Statistics'), this.statsBox, legend, settings);
    const header = this.embed
      ? h('header', {}, this.status)
      : h(
          'header',
          {},
          h('h1', {}, 'dssd'),
          h('p', { class: 'tagline' }, 'split speculative decoding, live'),
          this.status,
        );
    const main = h('main', {}, header, this.progressBox, this.error, this.transcript, composer, side);
    document.body.append(main);
    this.setStatus('Loading the draft model…');
  }

  private readSettingsForm(): void {
    const data = new FormData(this.settingsForm);
    try {
      this.settings = readSettings((k) => {
        const v = data.get(k);
        return typeof v === 'string' ? v : null;
      }, this.settings);
      this.clearError();
      this.updateShare();
    } catch (e) {
      this.showError(e instanceof SettingsError ? e.message : String(e));
    }
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

  private onProgress(p: LoadProgress): void {
    if (p.phase === 'ready') {
      this.progressBox.hidden = true;
      return;
    }
    if (p.phase === 'init') this.progress.removeAttribute('value');
    else this.progress.value = p.total > 0 ? p.loaded / p.total : 0;
    const mb = (n: number) => (n / 1e6).toFixed(1);
    this.progressText.textContent =
      p.phase === 'download' && p.total > 1 ? `${p.text} (${mb(p.loaded)} / ${mb(p.total)} MB)` : p.text;
  }

  private async load(): Promise<BrowserDevice | null> {
    try {
      const device = await BrowserDevice.create(
        {
          edge: location.origin,
          token: this.token,
          workerUrl: new URL('worker.js', import.meta.url),
          webllm: this.webllmConfig(),
          onProgress: (p) => this.onProgress(p),
          offlineFallback: new URLSearchParams(location.search).get('offline') === '1',
        },
        this.settings,
      );
      this.device = device;
      this.progressBox.hidden = true;
      this.setStatus(`Draft model ready (${device.info.reason}). Joining the edge…`);
      await this.tokenReady;
      device.opts.token = this.token;
      await device.connect(this.settings).then(
        (s) =>
          this.setStatus(
            `Connected to the edge (${s.welcome.model.name ?? 'target'}). ${device.info.reason}.`,
          ),
        (e) => this.fail(e),
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

  private newConversation(): void {
    if (this.abort) return;
    this.device?.disconnect();
    this.transcript.replaceChildren();
    this.turns = 0;
    this.statsBox.replaceChildren();
    this.clearError();
    this.setStatus('New conversation.');
  }

  private setBusy(busy: boolean): void {
    this.send.disabled = busy;
    this.stop.disabled = !busy;
    this.reset.disabled = busy;
  }

  /** One turn: encode, stream the answer with its origins, then show the statistics. */
  async ask(text = this.prompt.value): Promise<void> {
    if (this.abort || !text.trim()) return;
    this.readSettingsForm();
    this.clearError();
    const abort = new AbortController();
    this.abort = abort;
    this.setBusy(true);
    const answer = h('div', {
      class: 'answer',
      role: 'article',
      'aria-label': 'Answer',
      'aria-busy': 'true',
    });
    const turnEl = h('article', { class: 'turn' }, h('p', { class: 'user' }, text), answer);
    this.transcript.append(turnEl);
    this.prompt.value = '';
    let answerText = '';
    let result: TurnResult | null = null;
    try {
      const device = this.device ?? (await this.loading);
      if (!device) throw new DeviceError('ModelLoad', 'The draft model is not loaded; reload the page.');
      // Later turns continue the same text: a newline separates them.
      const ids = device.tokenizer.encode(this.turns > 0 && device.connected ? '\n' + text : text);
      if (ids.length === 0) throw new DeviceError('Generation', 'The prompt encodes to no tokens.');
      const stream = device.tokenizer.decodeStream();
      const t0 = performance.now();
      let n = 0;
      const onTokens = (ev: TokenEvent) => {
        const piece = stream.push(ev.tokens);
        n += ev.tokens.length;
        answerText += piece;
        if (piece)
          answer.append(h('span', { class: `tok tok-${ev.origin}`, title: ORIGIN_LABEL[ev.origin] }, piece));
        this.liveStats(n, performance.now() - t0);
        this.post({ type: 'dssd:token', text: piece, origin: ev.origin, tokens: ev.tokens });
      };
      if (!device.connected) this.setStatus('Joining the edge…');
      result = await device.generate(ids, this.settings, onTokens, abort.signal);
      const tail = stream.flush();
      if (tail) {
        answerText += tail;
        answer.append(h('span', { class: 'tok' }, tail));
      }
      this.turns++;
      const stats = displayStats(this.settings.mode, result.stats, device.info.identity.vocabSize);
      this.showStats(stats);
      answer.dataset.done = result.done;
      this.setStatus(
        `Done (${result.done}): ${result.tokens.length} tokens at ${stats.tokensPerSecond.toFixed(1)} tokens/s.`,
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
      if (err.code === 'ConnectionLost' || err.code === 'Unreachable' || err.code === 'Timeout') {
        this.turns = 0; // the next Send starts a new conversation
        this.showError(`${err.message} Press Send to reconnect (a new conversation starts).`, err.code);
        this.setStatus('Disconnected.');
      } else this.showError(err.message, err.code);
    } finally {
      answer.setAttribute('aria-busy', 'false');
      this.abort = null;
      this.setBusy(false);
    }
  }

  private liveStats(tokens: number, ms: number): void {
    const rows: [string, string, string][] = [
      ['tokens', 'tokens', String(tokens)],
      ['tps', 'tokens/s', ms > 0 ? ((1000 * tokens) / ms).toFixed(1) : '–'],
    ];
    this.fillStats(rows);
  }

  private showStats(s: DisplayStats): void {
    this.fillStats(statRows(s));
    this.statsBox.dataset.json = JSON.stringify(s);
  }

  private fillStats(rows: [string, string, string][]): void {
    this.statsBox.replaceChildren(
      ...rows.flatMap(([key, label, value]) => [h('dt', {}, label), h('dd', { 'data-stat': key }, value)]),
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
