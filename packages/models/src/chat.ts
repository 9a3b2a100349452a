import { Template } from '@huggingface/jinja';
import { ModelError, ModelErrorCode } from './errors.js';
import type { TextTokenizer } from './tokenizer.js';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderOptions {
  /** End with the assistant's turn opened (default true): what a model continues to answer. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. Qwen3's `enable_thinking`). */
  variables?: Record<string, unknown>;
}

/**
 * A model's chat template (tokenizer_config.json `chat_template`), rendered with @huggingface/jinja, the
 * implementation transformers.js uses, so a conversation becomes the exact text the model was trained on.
 */
export class ChatTemplate {
  readonly source: string;
  readonly #template: Template;
  readonly #specials: Record<string, string>;

  constructor(source: string, specials: Record<string, string> = {}) {
    this.source = source;
    this.#specials = specials;
    try {
      this.#template = new Template(source);
    } catch (e) {
      throw new ModelError(
        ModelErrorCode.BadConfig,
        `tokenizer_config.json: the chat template does not parse: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
  }

  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    return this.#template.render({
      ...this.#specials,
      ...options.variables,
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      add_generation_prompt: options.addGenerationPrompt ?? true,
    });
  }
}

/** The template of a tokenizer_config.json (a string, or HF's list of named templates: `default`), or null. */
export function chatTemplateFrom(tokenizerConfig: Record<string, unknown>): ChatTemplate | null {
  let src = tokenizerConfig.chat_template;
  if (Array.isArray(src))
    src = (src as { name?: unknown; template?: unknown }[]).find((t) => t?.name === 'default')?.template;
  if (typeof src !== 'string' || src === '') return null;
  // Templates refer to the special tokens by name (`{{ bos_token }}`); objects carry them as `content`.
  const specials: Record<string, string> = {};
  for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
    const v = tokenizerConfig[key];
    const s = typeof v === 'string' ? v : (v as { content?: unknown } | null)?.content;
    if (typeof s === 'string') specials[key] = s;
  }
  return new ChatTemplate(src, specials);
}

/**
 * What to feed for the next turn: keep the first `keep` tokens a session already holds (and their KV caches) and
 * feed the rest. Re-rendering the whole conversation every turn keeps any template exact (Qwen3's rewrites earlier
 * assistant turns); the common prefix keeps the caches of all it leaves unchanged. At least one token is fed, so
 * the turn has logits to start from.
 */
export function conversationDelta(
  cached: readonly number[],
  ids: readonly number[],
): { keep: number; feed: number[] } {
  let keep = 0;
  while (keep < cached.length && keep < ids.length && cached[keep] === ids[keep]) keep++;
  if (keep === ids.length && keep > 0) keep--;
  return { keep, feed: ids.slice(keep) };
}

/**
 * A multi-turn conversation over one session's token history. Each user turn appends only the template's text
 * after the tokens the session already holds (the previous answer stays exactly as generated, its KV caches
 * reused); when the template rewrites history instead (or an answer holds special tokens), the whole
 * conversation is re-rendered and the common prefix kept.
 */
export class ChatConversation {
  readonly messages: ChatMessage[] = [];
  readonly #template: ChatTemplate;
  readonly #tokenizer: Pick<TextTokenizer, 'encode' | 'decode'>;
  /** The text the session's history stands for. */
  #text = '';

  constructor(template: ChatTemplate, tokenizer: Pick<TextTokenizer, 'encode' | 'decode'>) {
    this.#template = template;
    this.#tokenizer = tokenizer;
  }

  /** Adds a user turn; the session keeps `keep` tokens of its history (rewind to it) and is fed `feed`. */
  user(content: string, history: readonly number[], options: RenderOptions = {}) {
    this.messages.push({ role: 'user', content });
    const text = this.#template.render(this.messages, options);
    const appended =
      history.length > 0 && this.#text !== '' && text.startsWith(this.#text)
        ? this.#tokenizer.encode(text.slice(this.#text.length))
        : [];
    this.#text = text;
    if (appended.length > 0) return { keep: history.length, feed: appended };
    return conversationDelta(history, this.#tokenizer.encode(text));
  }

  /** Records the answer: the tokens the turn added to the history (an end-of-turn token it stopped on included). */
  assistant(added: readonly number[]): string {
    const content = this.#tokenizer.decode(added, { skipSpecialTokens: true });
    this.messages.push({ role: 'assistant', content });
    this.#text += this.#tokenizer.decode(added);
    return content;
  }
}
