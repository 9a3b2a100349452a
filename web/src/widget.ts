/**
 * <dssd-chat>: the embeddable widget. One script tag plus the element on any page:
 *
 *   <script type="module" src="https://EDGE/widget.js"></script>
 *   <dssd-chat edge="https://EDGE" temperature="0" max-tokens="64"></dssd-chat>
 *
 * A host page of another origin cannot start a Worker from the edge's origin (nor send the edge's headers), so
 * the element hosts an iframe of the edge's embed page, where worker, wasm and model are same-origin, and talks
 * to it by postMessage, accepting only messages from that iframe's window and the edge's origin.
 *
 * Attributes: edge (default: where widget.js came from), token (join token; sent by postMessage, never in a URL),
 * mode, codec, gamma, temperature, top-k, top-p, seed, max-tokens, height, webgpu (auto | any | off: where the
 * draft runs; `any` uses WebGPU on software adapters too); `stats` and `settings` (boolean: show
 * those panels; by default only the composer and the answers), `theme` (light | dark; default: the visitor's).
 * Theme: CSS custom properties on the element (--dssd-accent, --dssd-bg, --dssd-fg, --dssd-card, --dssd-line,
 * --dssd-muted, --dssd-font) are handed to the embed page. Children of the element are its fallback content,
 * shown when the edge refuses to be framed here (or does not answer).
 * Events (bubbling, composed): dssd-ready, dssd-status {text}, dssd-token {text, origin, tokens},
 * dssd-answer {prompt, text, tokens, done, stats}, dssd-error {code, message} (also for a bad attribute, code
 * BadSetting, and for a refused embed, code EmbedRefused).
 * Methods: ask(prompt), stop().
 */
import { THEME_KEYS, parseEmbedMessage, type HostToEmbed, type Theme } from './messages.js';
import {
  PAGE_DEFAULT_SETTINGS,
  PAGE_SETTING_KEYS,
  SETTING_SPEC,
  parseSettings,
} from '@dssd/protocol/settings';

const SCRIPT_ORIGIN = new URL(import.meta.url).origin;

/** How long the embed page may take to say it is there after its frame loaded (a refused frame never does). */
const READY_AFTER_LOAD_MS = 4000;

/** Attributes any element may carry (not settings). */
const GLOBAL_ATTRIBUTE =
  /^(id|class|style|title|lang|dir|hidden|slot|part|tabindex|role|inert|is|nonce|autofocus|translate|draggable|spellcheck|accesskey|contenteditable|enterkeyhint|inputmode|popover|data-.*|aria-.*|on.*)$/;

const EVENT_OF: Record<string, string> = {
  'dssd:ready': 'dssd-ready',
  'dssd:status': 'dssd-status',
  'dssd:token': 'dssd-token',
  'dssd:answer': 'dssd-answer',
  'dssd:error': 'dssd-error',
};

export class DssdChatElement extends HTMLElement {
  static get observedAttributes(): string[] {
    return [
      'edge',
      'height',
      'stats',
      'settings',
      'theme',
      'webgpu',
      ...PAGE_SETTING_KEYS.map((k) => SETTING_SPEC[k].flag),
    ];
  }

  private readyTimer: ReturnType<typeof setTimeout> | undefined;

  private iframe: HTMLIFrameElement | null = null;
  private edgeOrigin = '';
  private ready = false;
  private pending: HostToEmbed[] = [];
  private readonly onMessage = (ev: MessageEvent) => {
    if (!this.iframe || ev.source !== this.iframe.contentWindow || ev.origin !== this.edgeOrigin) return;
    const m = parseEmbedMessage(ev.data);
    if (!m) return;
    if (m.type === 'dssd:ready') {
      this.ready = true;
      clearTimeout(this.readyTimer);
      const token = this.getAttribute('token');
      const init: HostToEmbed = { type: 'dssd:init', theme: this.theme() };
      if (token !== null) init.token = token;
      this.post(init);
      for (const p of this.pending.splice(0)) this.post(p);
    }
    const { type: _t, ...detail } = m as { type: string } & Record<string, unknown>;
    this.dispatchEvent(new CustomEvent(EVENT_OF[m.type], { detail, bubbles: true, composed: true }));
  };

  connectedCallback(): void {
    window.addEventListener('message', this.onMessage);
    this.build();
  }

  disconnectedCallback(): void {
    window.removeEventListener('message', this.onMessage);
    clearTimeout(this.readyTimer);
    this.iframe?.remove();
    this.iframe = null;
    this.ready = false;
  }

  attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if (!this.isConnected || old === value) return;
    if (name === 'height') {
      if (this.iframe) this.iframe.style.height = value ?? '';
      return;
    }
    if (name === 'token') return; // takes effect on the next session only via a rebuild
    this.build(); // new settings mean a new session
  }

  /** The settings attributes, checked per attribute: the valid ones, and a message per bad one. */
  private settingsFromAttributes(): { query: [string, string][]; problems: string[] } {
    const { errors } = parseSettings((name) => this.getAttribute(name), {
      names: 'flag',
      base: PAGE_DEFAULT_SETTINGS,
    });
    const bad = new Set(errors.map((e) => e.key));
    const query: [string, string][] = [];
    for (const k of PAGE_SETTING_KEYS) {
      const flag = SETTING_SPEC[k].flag;
      const v = this.getAttribute(flag);
      if (v !== null && !bad.has(flag)) query.push([k, v]);
    }
    const known = new Set([...DssdChatElement.observedAttributes, 'token']);
    // A misspelt setting (max-token) would otherwise be dropped silently; HTML's own attributes are not ours.
    const unknown = [...this.attributes]
      .map((a) => a.name)
      .filter((n) => !known.has(n) && !GLOBAL_ATTRIBUTE.test(n))
      .map((n) => `unknown attribute '${n}'`);
    return { query, problems: [...errors.map((e) => e.message), ...unknown] };
  }

  /** The embed page's URL: the valid settings travel in its query (shareable, not secret); the token does not. */
  get embedUrl(): string {
    return this.embedSetup().url;
  }

  private embedSetup(): { url: string; problems: string[] } {
    const edge = new URL(this.getAttribute('edge') || SCRIPT_ORIGIN);
    const u = new URL('/embed.html', edge);
    const { query, problems } = this.settingsFromAttributes();
    for (const [k, v] of query) u.searchParams.set(k, v);
    const ui = ['stats', 'settings'].filter((a) => this.hasAttribute(a));
    if (ui.length) u.searchParams.set('ui', ui.join(','));
    const theme = this.getAttribute('theme');
    if (theme === 'light' || theme === 'dark') u.searchParams.set('scheme', theme);
    // The load option: the embed page checks it (parseWebGpu) and reports a bad value as dssd-error.
    const webgpu = this.getAttribute('webgpu');
    if (webgpu !== null) u.searchParams.set('webgpu', webgpu);
    u.searchParams.set('origin', location.origin);
    return { url: u.toString(), problems };
  }

  /** The host's CSS custom properties for the embed page. */
  private theme(): Theme {
    const cs = getComputedStyle(this);
    const t: Theme = {};
    for (const k of THEME_KEYS) {
      const v = cs.getPropertyValue(`--dssd-${k}`).trim();
      if (v) t[k] = v;
    }
    return t;
  }

  private emit(type: string, detail: Record<string, unknown>): void {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  private build(): void {
    const { url: src, problems } = this.embedSetup();
    if (problems.length) {
      // After the current script, so a host that adds its listener right after creating the element hears it.
      const message = `Ignored (the other attributes apply): ${problems.join('; ')}`;
      queueMicrotask(() => this.emit('dssd-error', { code: 'BadSetting', message }));
    }
    this.edgeOrigin = new URL(src).origin;
    this.ready = false;
    clearTimeout(this.readyTimer);
    const root = this.shadowRoot ?? this.attachShadow({ mode: 'open' });
    const frame = document.createElement('iframe');
    frame.src = src;
    frame.title = 'dssd chat';
    frame.allow = 'cross-origin-isolated';
    frame.style.height = this.getAttribute('height') ?? '420px';
    // A frame the edge refuses (frame-ancestors) still fires load, but its page never says ready.
    frame.addEventListener('load', () => {
      clearTimeout(this.readyTimer);
      if (!this.ready) this.readyTimer = setTimeout(() => this.refused(), READY_AFTER_LOAD_MS);
    });
    const style = document.createElement('style');
    style.textContent =
      ':host{display:block}iframe{display:block;width:100%;box-sizing:border-box;' +
      'border:1px solid var(--dssd-line,#ccd);border-radius:8px;background:var(--dssd-bg,transparent);' +
      'color-scheme:light dark}.fallback{padding:.75rem 1rem;border:1px solid var(--dssd-line,#ccd);' +
      'border-radius:8px}';
    root.replaceChildren(style, frame);
    this.iframe = frame;
  }

  /** The edge would not be framed here: the fallback content (the element's children) and an event. */
  private refused(): void {
    if (this.ready || !this.iframe) return;
    const edge = this.edgeOrigin;
    this.iframe.remove();
    this.iframe = null;
    const box = document.createElement('div');
    box.className = 'fallback';
    box.setAttribute('role', 'note');
    const slot = document.createElement('slot');
    slot.textContent = `The chat from ${edge} could not be shown on this page.`;
    box.append(slot);
    this.shadowRoot?.append(box);
    this.emit('dssd-error', {
      code: 'EmbedRefused',
      message: `The edge at ${edge} did not load in this page (it may not allow ${location.origin} to embed it).`,
    });
  }

  private post(m: HostToEmbed): void {
    if (!this.ready) {
      this.pending.push(m);
      return;
    }
    this.iframe?.contentWindow?.postMessage(m, this.edgeOrigin);
  }

  /** Sends a prompt as if typed into the widget. */
  ask(prompt: string): void {
    this.post({ type: 'dssd:ask', prompt });
  }

  stop(): void {
    this.post({ type: 'dssd:stop' });
  }
}

if (!customElements.get('dssd-chat')) customElements.define('dssd-chat', DssdChatElement);
