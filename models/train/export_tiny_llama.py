"""Export a tiny random-weight Llama-architecture decoder as a test fixture for @dssd/models.

Usage (from models/train): /usr/bin/python3 export_tiny_llama.py
  [--tokenizer ../default/draft] [--out ../../packages/models/test/fixtures/tiny-llama]

It exercises what the GPT-2 default pair does not: RoPE, grouped-query attention (4 query heads, 2 KV heads, so
the cache has fewer heads than attention), RMSNorm, SwiGLU, a scalar `num_logits_to_keep` input, no
`position_ids` input (positions are past_length + arange inside the graph), and 4160 vocabulary rows for the
4096-token tokenizer (padded like real pairs; the padding rows get large weights so an untrimmed row would show).
Output folder: config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx (fp16 initializers + Cast, as
export.py), logits.f32 = PyTorch float32 LE logits [len(ids), 4096] for fixture.json's first N ids (full
recompute, the first 4096 rows only), fixture.json = those ids. Also writes ../nopast.onnx beside the folder: a
graph with input_ids -> logits and no KV cache inputs, for the runtime's bad-layout test.
Afterwards run `npx prettier --write packages/models/test/fixtures` at the repository root (the JSON files are
checked by the root lint; the tokenizer hash ignores formatting).
Weights are random (seeded) with a larger scale than training init so logits and attention are far from uniform.
"""
import argparse, json, math, os, shutil
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
here = os.path.dirname(os.path.abspath(__file__))
ap.add_argument('--tokenizer', default=os.path.join(here, '../default/draft'))
ap.add_argument('--out', default=os.path.join(here, '../../packages/models/test/fixtures/tiny-llama'))
ap.add_argument('--ids', type=int, default=16)
args = ap.parse_args()
torch.set_num_threads(2)
torch.manual_seed(1234)

TOKENIZER_SIZE = 4096
ROWS, D, HEADS, KV_HEADS, LAYERS, FFN, CTX, THETA, EPS = 4160, 32, 4, 2, 2, 64, 128, 10000.0, 1e-6
HD = D // HEADS


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


def rotate_half(x):
    x1, x2 = x[..., : HD // 2], x[..., HD // 2:]
    return torch.cat([-x2, x1], dim=-1)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = RMSNorm(D)
        self.q_proj = nn.Linear(D, HEADS * HD, bias=False)
        self.k_proj = nn.Linear(D, KV_HEADS * HD, bias=False)
        self.v_proj = nn.Linear(D, KV_HEADS * HD, bias=False)
        self.o_proj = nn.Linear(HEADS * HD, D, bias=False)
        self.post_attention_layernorm = RMSNorm(D)
        self.gate_proj = nn.Linear(D, FFN, bias=False)
        self.up_proj = nn.Linear(D, FFN, bias=False)
        self.down_proj = nn.Linear(FFN, D, bias=False)

    def forward(self, x, cos, sin, bias, pk, pv):
        b, s, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(b, s, HEADS, HD).transpose(1, 2)
        k = self.k_proj(h).view(b, s, KV_HEADS, HD).transpose(1, 2)
        v = self.v_proj(h).view(b, s, KV_HEADS, HD).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = torch.cat([pk, k], dim=2)  # the cache holds post-RoPE keys of the KV heads only, as in HF Llama
        v = torch.cat([pv, v], dim=2)
        t = k.shape[2]
        rep = HEADS // KV_HEADS
        kr = k[:, :, None].expand(b, KV_HEADS, rep, t, HD).reshape(b, HEADS, t, HD)
        vr = v[:, :, None].expand(b, KV_HEADS, rep, t, HD).reshape(b, HEADS, t, HD)
        att = F.softmax((q @ kr.transpose(-2, -1)) / math.sqrt(HD) + bias, dim=-1)
        y = (att @ vr).transpose(1, 2).reshape(b, s, HEADS * HD)
        x = x + self.o_proj(y)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h)), k, v


class TinyLlama(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(ROWS, D)
        self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])
        self.norm = RMSNorm(D)
        with torch.no_grad():
            nn.init.normal_(self.embed_tokens.weight, 0.0, 0.5)
            self.embed_tokens.weight[TOKENIZER_SIZE:] *= 8.0  # padding rows: huge logits if left untrimmed
            for layer in self.layers:
                for lin in (layer.q_proj, layer.k_proj, layer.v_proj, layer.o_proj, layer.gate_proj, layer.up_proj,
                            layer.down_proj):
                    nn.init.normal_(lin.weight, 0.0, 1.5 / math.sqrt(lin.in_features))
        self.register_buffer('inv_freq', 1.0 / THETA ** (torch.arange(0, HD, 2).float() / HD), persistent=False)

    def forward(self, input_ids, attention_mask, num_logits_to_keep, *flat_past):
        b, s = input_ids.shape
        past_len = flat_past[0].shape[2]
        pos = torch.arange(s)[None] + past_len
        freqs = pos[..., None].float() * self.inv_freq
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        total = past_len + s
        q_pos = torch.arange(s)[:, None] + past_len
        k_pos = torch.arange(total)[None, :]
        allowed = (k_pos <= q_pos)[None, None] & (attention_mask[:, None, None, :] > 0)
        x = self.embed_tokens(input_ids)
        bias = torch.zeros(allowed.shape, dtype=x.dtype).masked_fill(~allowed, -1e9)
        out = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cos, sin, bias, flat_past[2 * i], flat_past[2 * i + 1])
            out += [k, v]
        # Only the last num_logits_to_keep positions go through the LM head (transformers' logits_to_keep).
        x = x.index_select(1, torch.arange(s - num_logits_to_keep, s))
        return (self.norm(x) @ self.embed_tokens.weight.t(), *out)


def to_fp16_weights(path):
    model = onnx.load(path)
    g = model.graph
    casts = []
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT or numpy_helper.to_array(init).size < 16:
            continue
        arr = numpy_helper.to_array(init)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), name + '_fp16'))
        casts.append(helper.make_node('Cast', [name + '_fp16'], [name], to=TensorProto.FLOAT, name=name + '_cast'))
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, path)


m = TinyLlama().eval()
with torch.no_grad():  # round through fp16 so the PyTorch reference uses exactly the stored weights
    for p in m.parameters():
        p.copy_(p.half().float())

os.makedirs(os.path.join(args.out, 'onnx'), exist_ok=True)
b, s, p = 1, 3, 2
ex_ids = torch.randint(0, TOKENIZER_SIZE, (b, s))
ex_mask = torch.ones(b, p + s, dtype=torch.int64)
ex_keep = torch.tensor(s, dtype=torch.int64)
past = []
in_names = ['input_ids', 'attention_mask', 'num_logits_to_keep']
out_names = ['logits']
dyn = {'input_ids': {0: 'batch_size', 1: 'sequence_length'},
       'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
       'logits': {0: 'batch_size', 1: 'num_logits'}}
for i in range(LAYERS):
    for kv in ('key', 'value'):
        past.append(torch.randn(b, KV_HEADS, p, HD))
        in_names.append(f'past_key_values.{i}.{kv}')
        out_names.append(f'present.{i}.{kv}')
        dyn[f'past_key_values.{i}.{kv}'] = {0: 'batch_size', 2: 'past_sequence_length'}
        dyn[f'present.{i}.{kv}'] = {0: 'batch_size', 2: 'total_sequence_length'}
path = os.path.join(args.out, 'onnx', 'model.onnx')
torch.onnx.export(m, (ex_ids, ex_mask, ex_keep, *past), path, input_names=in_names, output_names=out_names,
                  dynamic_axes=dyn, opset_version=14, do_constant_folding=False)
to_fp16_weights(path)

json.dump({
    'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'vocab_size': ROWS, 'hidden_size': D,
    'intermediate_size': FFN, 'num_hidden_layers': LAYERS, 'num_attention_heads': HEADS,
    'num_key_value_heads': KV_HEADS, 'head_dim': HD, 'max_position_embeddings': CTX, 'rms_norm_eps': EPS,
    'rope_theta': THETA, 'hidden_act': 'silu', 'tie_word_embeddings': True, 'bos_token_id': 0, 'eos_token_id': 0,
    'torch_dtype': 'float16',
}, open(os.path.join(args.out, 'config.json'), 'w'), indent=2)
for f in ('tokenizer.json', 'tokenizer_config.json'):
    shutil.copy(os.path.join(args.tokenizer, f), args.out)

fixture = json.load(open(os.path.join(args.out, '..', 'fixture.json')))
ids = fixture['ids'][: args.ids]
with torch.no_grad():
    empty = [torch.zeros(1, KV_HEADS, 0, HD) for _ in range(2 * LAYERS)]
    logits = m(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.int64), torch.tensor(len(ids)), *empty)[0]
logits[0, :, :TOKENIZER_SIZE].numpy().astype('<f4').tofile(os.path.join(args.out, 'logits.f32'))
json.dump({'ids': ids, 'rows': TOKENIZER_SIZE,
           'note': 'logits.f32: float32 LE [len(ids), rows] from PyTorch, full recompute'},
          open(os.path.join(args.out, 'fixture.json'), 'w'))

# A graph that is not a decoder-with-past: input_ids -> Gather -> logits, no cache inputs or outputs.
emb = numpy_helper.from_array(np.random.RandomState(0).randn(TOKENIZER_SIZE, 1).astype(np.float32), 'emb')
g = helper.make_graph(
    [helper.make_node('Gather', ['emb', 'input_ids'], ['logits'])], 'nopast',
    [helper.make_tensor_value_info('input_ids', TensorProto.INT64, ['batch_size', 'sequence_length'])],
    [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch_size', 'sequence_length', 1])], [emb])
nopast = helper.make_model(g, opset_imports=[helper.make_opsetid('', 14)])
nopast.ir_version = 7
onnx.checker.check_model(nopast)
onnx.save(nopast, os.path.join(args.out, '..', 'nopast.onnx'))

print(f'tiny-llama: {os.path.getsize(path) / 1e3:.0f} kB onnx, {sum(p.numel() for p in m.parameters())} params, '
      f'logits std {logits.std().item():.2f}')
