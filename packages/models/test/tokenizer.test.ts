import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TextTokenizer, sha256Hex, tokenizerHash } from '../src/index.js';
import type { TokenizerJson } from '../src/index.js';
import { DRAFT, FIXTURE_IDS, TARGET, model } from './helpers.js';

const json = (dir: string): TokenizerJson => JSON.parse(readFileSync(dir + '/tokenizer.json', 'utf8'));
const tokCfg = JSON.parse(readFileSync(DRAFT + '/tokenizer_config.json', 'utf8'));

// Ids from the reference Rust implementation (npm `tokenizers` 0.23.2, add_special_tokens false).
const EXPECTED: [string, number[]][] = [
  [
    'The jury said Friday, 1961: "It is 42 percent!"',
    [1849, 500, 1165, 548, 1050, 4043, 45, 2848, 59, 325, 74, 117, 327, 1143, 51, 3283, 34, 35],
  ],
  [
    'naïve café — 中文 🙂\ttabs\n\n  spaces   3.14159',
    [
      2380, 196, 176, 309, 1335, 103, 196, 170, 33, 227, 129, 149, 33, 229, 185, 174, 231, 151, 136, 33, 241,
      160, 154, 131, 10, 117, 403, 116, 11, 11, 33, 555, 3900, 33, 33, 870, 47, 50, 53, 50, 54, 58,
    ],
  ],
];

test('encode matches the reference implementation and adds no special tokens', async () => {
  const tok = (await model(DRAFT)).tokenizer;
  for (const [text, ids] of EXPECTED) assert.deepEqual(tok.encode(text), ids, text);
  assert.equal(tok.size, 4096);
  assert.deepEqual([...tok.specialIds], [0]);
  assert.equal(tok.tokenToId('<|endoftext|>'), 0);
  assert.equal(tok.idToToken(66), 'A');
});

test('decode(encode(text)) round-trips unicode, whitespace and digits', async () => {
  const tok = (await model(DRAFT)).tokenizer;
  const texts = [
    '',
    ' ',
    'Hello, world.',
    '  leading and trailing  ',
    'tabs\tand\nnew\r\nlines\n\n\n',
    'digits 0123456789 and 3.14159e-10, 1,000,000',
    'Ünïcödé: façade, Straße, ñ, Ø, Ελληνικά, русский, 日本語, 한국어, עברית, العربية',
    'emoji 👩‍👩‍👧‍👦 🇩🇪 ✓ 🙂🙂',
    'mixed<|endoftext|>special',
  ];
  for (const t of texts) assert.equal(tok.decode(tok.encode(t)), t, JSON.stringify(t));
  // The special token inside text is recognised as one id; skipSpecialTokens drops it on decode.
  const ids = tok.encode('a<|endoftext|>b');
  assert.ok(ids.includes(0));
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'ab');
});

test('decodeStream emits exactly decode(all) without broken characters', async () => {
  const tok = (await model(DRAFT)).tokenizer;
  for (const text of [
    'Ünïcödé 中文 🙂 emoji 👩‍👩‍👧 end',
    'plain words, with punctuation.',
    FIXTURE_IDS.join(' '),
  ]) {
    const ids = tok.encode(text);
    const stream = tok.decodeStream();
    let out = '';
    let pieces = 0;
    for (const id of ids) {
      const piece = stream.push(id);
      assert.ok(!piece.includes('\uFFFD'), `broken piece ${JSON.stringify(piece)}`);
      if (piece) pieces++;
      out += piece;
    }
    out += stream.flush();
    assert.equal(out, text);
    assert.ok(pieces > 1);
  }
  // Bytes of one 4-byte character arrive over several ids: nothing is emitted until it is complete.
  const emoji = tok.encode('🙂');
  assert.ok(emoji.length > 1);
  const s = tok.decodeStream();
  assert.equal(s.push(emoji.slice(0, -1)), '');
  assert.equal(s.flush(), tok.decode(emoji.slice(0, -1)));
  assert.equal(s.push(emoji.slice(-1)), '🙂');
});

test('sha256Hex matches FIPS 180-4 test vectors', () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  assert.equal(sha256Hex(enc('')), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(sha256Hex(enc('abc')), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.equal(
    sha256Hex(enc('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  );
  assert.equal(
    sha256Hex(new Uint8Array(1000).fill(0x61)),
    '41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3',
  );
  // Every padding boundary (55/56/64 bytes, …) against node:crypto, on deterministic bytes.
  for (let n = 0; n <= 200; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 131 + n * 7) & 255);
    assert.equal(sha256Hex(bytes), createHash('sha256').update(bytes).digest('hex'), `length ${n}`);
  }
});

test('tokenizerHash is stable across formatting and changes with the vocabulary', async () => {
  const a = json(DRAFT);
  const h = tokenizerHash(a);
  assert.match(h, /^[0-9a-f]{64}$/);
  assert.equal(h, tokenizerHash(json(TARGET)));
  assert.equal(h, (await model(DRAFT)).tokenizerHash);
  // Pinned, so an accidental change of the canonical form (which would split deployed pairs) is caught.
  assert.equal(h, PINNED);

  // Key order, whitespace and unrelated fields do not matter.
  const shuffled = JSON.parse(JSON.stringify({ ...a, truncation: { max_length: 9 }, decoder: null }));
  shuffled.model.vocab = Object.fromEntries(Object.entries(a.model!.vocab as object).reverse());
  assert.equal(tokenizerHash(shuffled), h);
  // The legacy "a b" string form of merges hashes like the [a, b] pair form.
  const stringMerges = structuredClone(a);
  stringMerges.model!.merges = (a.model!.merges as string[][]).map((m) => m.join(' '));
  assert.equal(tokenizerHash(stringMerges), h);

  const changes: ((t: TokenizerJson) => void)[] = [
    (t) => ((t.model!.merges as string[][])[100] = ['x', 'y']),
    (t) => ((t.model!.vocab as Record<string, number>)['zzz'] = 4096),
    (t) => t.added_tokens!.push({ id: 4096, content: '<pad>', special: true }),
    (t) => (t.pre_tokenizer = { type: 'Metaspace' }),
    (t) => (t.normalizer = { type: 'NFC' }),
  ];
  for (const change of changes) {
    const t = structuredClone(a);
    change(t);
    assert.notEqual(tokenizerHash(t), h);
  }
  const tok = new TextTokenizer(a, tokCfg);
  assert.equal(tok.hash, h);
});

const PINNED = '62db5109187a4a3a9b5b9245852a800bb9dae30756ecab3544f451ba281fcfa0';
