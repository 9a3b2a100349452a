// The WebLLM drafter without WebLLM (no MLC model can be loaded here): the forcing processor on real logits from
// the ONNX draft model, the configuration checks, the drafter switch, and WebLlmSession driven by a stand-in
// engine that behaves like web-llm (logits only through the processor, its own sampler after it, no KV rollback)
// inside a real DeviceSession ↔ EdgeSession pair.
import test from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadNodeModel } from '@dssd/models/node';
import type { LanguageModel, ModelSession } from '@dssd/models';
import { SessionRng, processLogits, type SamplingParams } from '@dssd/kernel';
import {
  DeviceSession,
  EdgeSession,
  FrameTransport,
  memoryChannelPair,
  type DeviceOptions,
  type LmSession,
} from '@dssd/protocol';
import {
  DrafterError,
  FORCING_CHAT_OPTIONS,
  ForcingLogitProcessor,
  WebLlmSession,
  chooseDrafter,
  forcingLogits,
  validateWebLlmConfig,
  webLlmConfigFromQuery,
  type WebLlmEngineLike,
} from '../src/webllm-drafter.js';

const MODELS = fileURLToPath(new URL('../../../models/default/', import.meta.url));
let draftModel: Promise<LanguageModel> | null = null;
let targetModel: Promise<LanguageModel> | null = null;
const draft = () => (draftModel ??= loadNodeModel(MODELS + 'draft'));
const target = () => (targetModel ??= loadNodeModel(MODELS + 'target'));

/** A uniform stream from the kernel's Philox generator. */
function uniforms(seed: number): () => number {
  const rr = new SessionRng(seed).round(1, 0);
  let k = 0;
  return () => rr.draft((k++ % 250) + 1);
}

/** What web-llm's sampler does after the logit processor: bias, penalties, temperature, top-p, a draw. */
function webLlmSample(logits: Float32Array, seen: number[], u: number): number {
  const t = 0.7; // deliberately not the processor's temperature
  const x = Float64Array.from(logits);
  for (const s of seen) x[s] -= 0.5 + 1.5; // presence + frequency penalty
  x[3] += 2; // a logit bias
  let max = -Infinity;
  for (const v of x) max = Math.max(max, v / t);
  const p = Array.from(x, (v) => Math.exp(v / t - max));
  const z = p.reduce((a, b) => a + b, 0);
  const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a]);
  let acc = 0;
  const kept: number[] = [];
  for (const i of order) {
    kept.push(i);
    acc += p[i] / z;
    if (acc >= 0.9) break;
  }
  const kz = kept.reduce((a, i) => a + p[i], 0);
  let c = 0;
  for (const i of kept) {
    c += p[i] / kz;
    if (u < c) return i;
  }
  return kept[kept.length - 1];
}

/**
 * Stands in for MLCEngine: logits for the last input token only, shown to the processor (padded like MLC's
 * vocabularies), then its own sampler; no truncation, only resetChat.
 */
class FakeEngine implements WebLlmEngineLike {
  resets = 0;
  private readonly draw = uniforms(99);
  private readonly seen: number[] = [];
  constructor(
    private readonly session: ModelSession,
    private readonly processor: ForcingLogitProcessor,
    private readonly pad = 64,
  ) {}
  async forwardTokensAndSample(ids: number[], isPrefill: boolean): Promise<number> {
    if (!isPrefill && ids.length !== 1) throw new Error('decode takes exactly one token');
    if (isPrefill !== (this.session.length === 0 || ids.length > 1))
      throw new Error('unexpected prefill flag');
    const rows = await this.session.forward(ids);
    const last = rows[rows.length - 1];
    const padded = new Float32Array(last.length + this.pad).fill(-5);
    padded.set(last);
    const out = this.processor.processLogits(padded);
    const tok = webLlmSample(out, this.seen, this.draw());
    this.seen.push(tok);
    this.processor.processSampledToken(tok);
    return tok;
  }
  async resetChat(): Promise<void> {
    this.resets++;
    this.seen.length = 0;
    this.session.truncate(0);
  }
}

test('forcing processor: samples from processLogits of real draft logits; the forced token survives web-llm sampling', async () => {
  const m = await draft();
  const s = m.createSession();
  const V = m.config.vocabSize;
  const rows = await s.forward(m.tokenizer.encode('The jury said that the'));
  const sampling: SamplingParams = { temperature: 0.8, topK: 50, topP: 0.95 };
  const p1 = new ForcingLogitProcessor(V, sampling, uniforms(5));
  const p2 = new ForcingLogitProcessor(V, sampling, uniforms(5));
  const seen = new Set<number>();
  for (const row of rows) {
    const forced = p1.processLogits(Float32Array.from(row));
    const step = p1.last!;
    // Q is exactly the kernel's processed distribution of the raw logits; q = Q(token).
    assert.deepEqual(step.Q, processLogits(row, sampling));
    assert.deepEqual(step.logits, Float32Array.from(row));
    assert.equal(step.q, step.Q[step.token]);
    assert.ok(step.q > 0);
    // Only the sampled token is finite, and any web-llm post-processing returns it.
    assert.equal(forced.filter((v) => Number.isFinite(v)).length, 1);
    assert.equal(forced[step.token], 0);
    for (const u of [0, 0.3, 0.999999]) assert.equal(webLlmSample(forced, [step.token, 3], u), step.token);
    // Seeded: a second processor with the same uniforms draws the same tokens.
    p2.processLogits(Float32Array.from(row));
    assert.equal(p2.last!.token, step.token);
    seen.add(step.token);
  }
  assert.ok(seen.size > 1, 'different positions draw different tokens');
  // Greedy: the argmax of the raw logits.
  const g = new ForcingLogitProcessor(V, { temperature: 0, topK: 0, topP: 1 }, uniforms(1));
  g.processLogits(Float32Array.from(rows[0]));
  let arg = 0;
  for (let i = 1; i < V; i++) if (rows[0][i] > rows[0][arg]) arg = i;
  assert.equal(g.last!.token, arg);
  // A 0/1 vector would not force anything after a softmax; our forcing vector does.
  assert.notEqual(
    webLlmSample(
      Float32Array.from({ length: 8 }, (_, i) => (i === 5 ? 1 : 0)),
      [],
      0.01,
    ),
    5,
  );
  assert.equal(webLlmSample(forcingLogits(8, 5), [], 0.01), 5);
  // Too few logits (a model with another vocabulary) is refused.
  assert.throws(
    () => p1.processLogits(new Float32Array(V - 1)),
    (e: unknown) => e instanceof DrafterError && e.code === 'VocabMismatch',
  );
  // A sampler that moved the forced token is detected.
  p1.processLogits(Float32Array.from(rows[0]));
  p1.processSampledToken((p1.last!.token + 1) % V);
  assert.throws(() => p1.check(), /WebLLM sampled/);
  assert.deepEqual(FORCING_CHAT_OPTIONS, {
    temperature: 1,
    top_p: 1,
    repetition_penalty: 1,
    frequency_penalty: 0,
    presence_penalty: 0,
  });
  s.dispose();
});

test('WebLLM configuration: validation and the query form', () => {
  const base = 'https://edge.example/chat/?x=1';
  const ok = validateWebLlmConfig(
    { modelUrl: '/mlc/draft', modelLibUrl: 'https://cdn.example/libs/draft-webgpu.wasm', vocabSize: 4096 },
    base,
  );
  assert.deepEqual(ok, {
    modelUrl: 'https://edge.example/mlc/draft/',
    modelLibUrl: 'https://cdn.example/libs/draft-webgpu.wasm',
    modelId: 'dssd-draft',
    vocabSize: 4096,
  });
  const bad = (x: unknown, re: RegExp) =>
    assert.throws(
      () => validateWebLlmConfig(x, base),
      (e: unknown) => e instanceof DrafterError && e.code === 'BadConfig' && re.test(e.message),
    );
  bad(null, /must be an object/);
  bad({ modelLibUrl: 'x.wasm' }, /modelUrl is required/);
  bad({ modelUrl: '/m', modelLibUrl: '/lib.js' }, /modelLibUrl must point at/);
  bad({ modelUrl: 'ftp://x/m', modelLibUrl: '/lib.wasm' }, /modelUrl must be an http/);
  bad({ modelUrl: '/m', modelLibUrl: '/lib.wasm', modelId: 'a b' }, /modelId/);
  bad({ modelUrl: '/m', modelLibUrl: '/lib.wasm', vocabSize: 1 }, /vocabSize/);
  bad({ modelUrl: '/m', modelLibUrl: '/lib.wasm', contextWindowSize: 8 }, /contextWindowSize/);
  assert.equal(webLlmConfigFromQuery('?temperature=0', base), null);
  const q = webLlmConfigFromQuery(
    '?webllmModel=/w/&webllmLib=/w/lib.wasm&webllmId=small&webllmContext=1024',
    base,
  );
  assert.deepEqual(q, {
    modelUrl: 'https://edge.example/w/',
    modelLibUrl: 'https://edge.example/w/lib.wasm',
    modelId: 'small',
    vocabSize: 0,
    contextWindowSize: 1024,
  });
  assert.throws(() => webLlmConfigFromQuery('?webllmModel=/w/', base), /modelLibUrl is required/);
});

test('drafter switch: WebLLM only when configured and a real WebGPU adapter exists', () => {
  const cfg = validateWebLlmConfig(
    { modelUrl: '/m/', modelLibUrl: '/m/lib.wasm', vocabSize: 10 },
    'http://e/',
  );
  const real = { adapter: true, fallback: false };
  const soft = { adapter: true, fallback: true };
  const none = { adapter: false, fallback: false };
  assert.equal(chooseDrafter(null, real).kind, 'onnx');
  assert.equal(chooseDrafter(cfg, real).kind, 'webllm');
  assert.equal(chooseDrafter(cfg, none).kind, 'onnx');
  assert.match(chooseDrafter(cfg, none).reason, /no WebGPU adapter/);
  assert.equal(chooseDrafter(cfg, soft).kind, 'onnx');
  assert.equal(chooseDrafter(cfg, soft, { allowFallback: true }).kind, 'webllm');
});

/** One DeviceSession ↔ EdgeSession turn in memory with the given drafter. */
async function runTurn(
  drafter: LmSession,
  settings: DeviceOptions['settings'],
  prompt: number[],
  maxNewTokens: number,
) {
  const [tm, dm] = await Promise.all([target(), draft()]);
  const [a, b] = memoryChannelPair();
  const dt = new FrameTransport(a);
  const et = new FrameTransport(b);
  const identity = {
    tokenizerHash: dm.tokenizerHash,
    vocabSize: dm.config.vocabSize,
    maxContext: dm.config.maxContext,
    eosTokenId: dm.config.eosTokenId,
  };
  const targetSession = tm.createSession();
  const edge = new EdgeSession({
    sessionId: 3,
    model: identity,
    createTarget: () => targetSession,
    secretSeed: 1,
    send: (f) => et.send(f),
  });
  et.onFrame((f) => void edge.handle(f));
  const device = await DeviceSession.open({
    transport: dt,
    model: identity,
    drafter,
    settings,
    timeoutMs: 20_000,
  });
  const turn1 = await device.generate(prompt, { maxNewTokens });
  const turn2 = await device.generate(dm.tokenizer.encode('\nThen'), { maxNewTokens: 12 });
  device.close();
  targetSession.dispose();
  return [turn1, turn2];
}

for (const [name, sampling, seed] of [
  ['greedy', { temperature: 0, topK: 0, topP: 1 }, 1],
  ['sampled with a seed', { temperature: 1, topK: 0, topP: 0.95 }, 11],
] as const) {
  test(`WebLlmSession in a real session (${name}): same tokens as the ONNX drafter; re-prefills after rejections`, async () => {
    const dm = await draft();
    const prompt = dm.tokenizer.encode('The jury said');
    const settings: DeviceOptions['settings'] = {
      mode: 'dssd',
      codec: 'candidates',
      gamma: 4,
      sampling,
      seed,
    };
    const direct = dm.createSession();
    const ref = await runTurn(direct, settings, prompt, 40);
    direct.dispose();

    const inner = dm.createSession();
    const proc = new ForcingLogitProcessor(dm.config.vocabSize, sampling, uniforms(seed));
    const engine = new FakeEngine(inner, proc);
    const session = new WebLlmSession(engine, proc);
    const got = await runTurn(session, settings, prompt, 40);
    inner.dispose();

    for (let t = 0; t < 2; t++) {
      assert.deepEqual(got[t].tokens, ref[t].tokens, `turn ${t + 1}`);
      assert.deepEqual(got[t].origins, ref[t].origins);
    }
    const rejections = ref[0].stats.resampledTokens + ref[1].stats.resampledTokens;
    assert.ok(rejections > 0, 'the pair rejects sometimes');
    // Every rejection truncates the draft cache; WebLLM cannot, so each is a reset plus a prefill.
    assert.ok(
      session.reprefills > 0 && session.reprefills === engine.resets,
      `${session.reprefills} re-prefills`,
    );
  });
}
