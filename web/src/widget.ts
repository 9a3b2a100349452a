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
 * mode, codec, gamma, temperature, top-k, top-p, seed, max-tokens, height.
 * Events (bubbling, composed): dssd-ready, dssd-status {text}, dssd-token {text, origin, tokens},
 * dssd-answer {prompt, text, tokens, done, stats}, dssd-error {code, message}.
 * Methods: ask(prompt), stop().
 */
import { parseEmbedMessage, type HostToEmbed } from './messages.js';
import { PAGE_SETTING_KEYS, SETTING_SPEC } from '@dssd/protocol/settings';

const SCRIPT_ORIGIN = new URL(import.meta.url).origin;

const EVENT_OF: Record<string, string> = {
  'dssd:ready': 'dssd-ready',
  'dssd:status': 'dssd-status',
  'dssd:token': 'dssd-token',
  'dssd:answer': 'dssd-answer',
  'dssd:error': 'dssd-error',
};

export class DssdChatElement extends HTMLElement {
  static get observedAttributes(): string[] {
    return ['edge', 'height', ...PAGE_SETTING_KEYS.map((k) => SETTING_SPEC[k].flag)];
  }

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
      const token = this.getAttribute('token');
      this.post(token === null ? { type: 'dssd:init' } : { type: 'dssd:init', token });
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

  /** The embed page's URL: the settings travel in its query (shareable, not secret); the token does not. */
  get embedUrl(): string {
    const edge = new URL(this.getAttribute('edge') || SCRIPT_ORIGIN);
    const u = new URL('/embed.html', edge);
    for (const k of PAGE_SETTING_KEYS) {
      const v = this.getAttribute(SETTING_SPEC[k].flag);
      if (v !== null) u.searchParams.set(k, v);
    }
    u.searchParams.set('origin', location.origin);
    return u.toString();
  }

  private build(): void {
    const src = this.embedUrl;
    this.edgeOrigin = new URL(src).origin;
    this.ready = false;
    const root = this.shadowRoot ?? this.attachShadow({ mode: 'open' });
    const frame = document.createElement('iframe');
    frame.src = src;
    frame.title = 'dssd chat';
    frame.allow = 'cross-origin-isolated';
    frame.style.cssText = `width:100%;height:${this.getAttribute('height') ?? '560px'};border:1px solid #ccd;border-radius:8px;`;
    const style = document.createElement('style');
    style.textContent = ':host{display:block}';
    root.replaceChildren(style, frame);
    this.iframe = frame;
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
