import { Tokenizer } from '@huggingface/tokenizers';
import { ModelError, ModelErrorCode } from './errors.js';

/** A parsed tokenizer.json (only the fields this package reads are typed). */
export interface TokenizerJson {
  model?: { type?: string; vocab?: unknown; merges?: unknown };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  [key: string]: unknown;
}

export interface DecodeOptions {
  /** Drop special tokens (e.g. `<|endoftext|>`) from the text. Default false. */
  skipSpecialTokens?: boolean;
}

/**
 * Turns a growing token stream into text pieces without splitting multi-byte characters: each `push` returns only
 * the newly completed text (possibly ''), so the concatenation of all pushes + `flush()` equals `decode(allIds)`.
 */
export interface DecodeStream {
  push(ids: number | readonly number[]): string;
  /** Text still held back (an incomplete UTF-8 sequence at the end); resets nothing. */
  flush(): string;
}

/**
 * The text side of a model: ids without special tokens added, tokenizer-sized vocabulary, and a stable hash so that
 * two ends of the protocol can check they tokenize identically.
 */
export class TextTokenizer {
  /** Number of token ids (max id + 1 over the model vocabulary and added tokens). */
  readonly size: number;
  /** Ids of added tokens marked special (e.g. `<|endoftext|>`). */
  readonly specialIds: ReadonlySet<number>;
  /** SHA-256 (hex) of the canonical tokenizer content; see {@link tokenizerHash}. */
  readonly hash: string;
  readonly #tok: Tokenizer;

  constructor(
    tokenizerJson: TokenizerJson,
    tokenizerConfig: Record<string, unknown> = {},
    file = 'tokenizer.json',
  ) {
    try {
      this.#tok = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new ModelError(
        ModelErrorCode.LoadFailed,
        `${file} could not be parsed as a tokenizer: ${msg(e)}`,
        {
          cause: e,
        },
      );
    }
    this.size = tokenizerSize(tokenizerJson, this.#tok);
    this.specialIds = new Set((tokenizerJson.added_tokens ?? []).filter((t) => t.special).map((t) => t.id));
    this.hash = tokenizerHash(tokenizerJson);
  }

  /** Token ids of `text`, without any special tokens added (no BOS). */
  encode(text: string): number[] {
    return this.#tok.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    if (ids.length === 0) return ''; // the library rejects empty input
    return this.#tok.decode(ids as number[], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  /**
   * Streaming decoder (the prefix/read-offset scheme of text-generation-inference): it re-decodes a short window so
   * that decoders which depend on neighbours (byte-level pieces, Metaspace's leading space) come out exactly right,
   * and holds back text ending in U+FFFD until the rest of the character arrives.
   */
  decodeStream(options: DecodeOptions = {}): DecodeStream {
    const ids: number[] = [];
    let prefix = 0;
    let read = 0;
    return {
      push: (more) => {
        if (typeof more === 'number') ids.push(more);
        else for (const id of more) ids.push(id);
        const before = this.decode(ids.slice(prefix, read), options);
        const now = this.decode(ids.slice(prefix), options);
        if (now.length > before.length && !now.endsWith('\uFFFD')) {
          prefix = read;
          read = ids.length;
          return now.slice(before.length);
        }
        return '';
      },
      flush: () => {
        const before = this.decode(ids.slice(prefix, read), options);
        return this.decode(ids.slice(prefix), options).slice(before.length);
      },
    };
  }

  tokenToId(token: string): number | undefined {
    return this.#tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.#tok.id_to_token(id);
  }
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function tokenizerSize(json: TokenizerJson, tok: Tokenizer): number {
  let max = -1;
  const vocab = json.model?.vocab;
  if (Array.isArray(vocab))
    max = vocab.length - 1; // Unigram: [piece, score][] indexed by id
  else if (vocab && typeof vocab === 'object') {
    for (const id of Object.values(vocab)) if (typeof id === 'number' && id > max) max = id;
  } else {
    for (const id of tok.get_vocab(true).values()) if (id > max) max = id;
  }
  for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id;
  if (max < 0) throw new ModelError(ModelErrorCode.BadConfig, 'tokenizer.json has an empty vocabulary');
  return max + 1;
}

/** Type names of a normalizer/pre-tokenizer tree: what changes ids, not the incidental options order. */
function typeTree(x: unknown): unknown {
  if (!x || typeof x !== 'object') return null;
  const o = x as Record<string, unknown>;
  const kids = o.pretokenizers ?? o.normalizers;
  return Array.isArray(kids) ? [o.type, ...kids.map(typeTree)] : (o.type ?? null);
}

/**
 * Stable hex SHA-256 of a tokenizer: model type, vocab (as [token, id] sorted by id), merges (as [a, b] pairs, whichever
 * of the two file formats they use),
 * added tokens ([id, content, special] sorted by id) and the normalizer/pre-tokenizer type trees. Formatting of the
 * JSON file, key order and unrelated fields (truncation, padding, decoder options) do not change it. Pure JS,
 * because crypto.subtle is missing on insecure origins.
 */
export function tokenizerHash(json: TokenizerJson): string {
  const model = json.model ?? {};
  let vocab: unknown;
  if (Array.isArray(model.vocab)) vocab = model.vocab;
  else if (model.vocab && typeof model.vocab === 'object') {
    vocab = Object.entries(model.vocab as Record<string, number>).sort((a, b) =>
      a[1] !== b[1] ? a[1] - b[1] : a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0,
    );
  } else vocab = null;
  const merges = Array.isArray(model.merges)
    ? model.merges.map((m: unknown) => (Array.isArray(m) ? m.map(String) : String(m).split(' ')))
    : null;
  const added = (json.added_tokens ?? [])
    .map((t) => [t.id, t.content, !!t.special] as const)
    .sort((a, b) => a[0] - b[0]);
  const canonical = JSON.stringify([
    'dssd-tokenizer-v1',
    model.type ?? null,
    vocab,
    merges,
    added,
    typeTree(json.normalizer),
    typeTree(json.pre_tokenizer),
  ]);
  return sha256Hex(new TextEncoder().encode(canonical));
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

/** SHA-256 (FIPS 180-4) of `data`, as lowercase hex. */
export function sha256Hex(data: Uint8Array): string {
  const bitLen = data.length * 8;
  const padded = new Uint8Array((((data.length + 9 + 63) >> 6) << 6) >>> 0);
  padded.set(data);
  padded[data.length] = 0x80;
  const dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
  dv.setUint32(padded.length - 4, bitLen >>> 0);
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = w[i - 15];
      const b = w[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + K[i] + w[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
  let out = '';
  for (const x of h) out += x.toString(16).padStart(8, '0');
  return out;
}
