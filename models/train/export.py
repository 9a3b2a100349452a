"""Export trained checkpoints to Hugging Face / transformers.js decoder-with-past ONNX folders.

Usage: python3 export.py --ckpt work/ckpt --tokenizer work --out ../default --fixtures ../../packages/models/test/fixtures
Per model: <out>/<name>/{config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx}; weights are stored
as float16 initializers followed by Cast-to-float32 nodes (inputs, outputs and compute stay float32), and
do_constant_folding=False keeps the tied embedding a single initializer.
Fixtures: for a fixed token sequence, the PyTorch logits (from the same fp16-rounded weights) at every position,
as raw little-endian float32, for the runtime's parity tests.
"""
import argparse, json, os, shutil
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper
import torch
from gpt import GPT, Config

ap = argparse.ArgumentParser()
ap.add_argument('--ckpt', default='work/ckpt')
ap.add_argument('--tokenizer', default='work')
ap.add_argument('--out', default='../default')
ap.add_argument('--fixtures', default='../../packages/models/test/fixtures')
ap.add_argument('--models', default='target,draft')
args = ap.parse_args()
torch.set_num_threads(2)


class WithPast(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, position_ids, *flat_past):
        past = [(flat_past[2 * i], flat_past[2 * i + 1]) for i in range(len(flat_past) // 2)]
        logits, presents = self.m.forward_with_past(input_ids, attention_mask, position_ids, past)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


def load(name):
    cfg = Config(**{k: v for k, v in json.load(open(os.path.join(args.ckpt, f'{name}.json'))).items()})
    cfg.dropout = 0.0
    m = GPT(cfg)
    z = np.load(os.path.join(args.ckpt, f'{name}.npz'))
    # Round through fp16 so PyTorch fixtures use exactly the weights the ONNX file stores.
    m.load_state_dict({k: torch.from_numpy(z[k].astype(np.float16).astype(np.float32)) for k in z.files})
    return m.eval(), cfg


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


tok = json.load(open(os.path.join(args.tokenizer, 'tokenizer.json')))
fixture_ids = [0] + [int(x) for x in np.fromfile(os.path.join(args.tokenizer, 'val.bin'), dtype=np.uint16)[1:32]]
os.makedirs(args.fixtures, exist_ok=True)
for name in args.models.split(','):
    m, cfg = load(name)
    d = os.path.join(args.out, name)
    os.makedirs(os.path.join(d, 'onnx'), exist_ok=True)
    L, H, hd = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head
    b, s, p = 1, 3, 2
    ids = torch.randint(0, cfg.vocab_size, (b, s))
    mask = torch.ones(b, p + s, dtype=torch.int64)
    pos = torch.arange(p, p + s)[None]
    past = []
    for _ in range(L):
        past += [torch.randn(b, H, p, hd), torch.randn(b, H, p, hd)]
    in_names = ['input_ids', 'attention_mask', 'position_ids']
    out_names = ['logits']
    dyn = {'input_ids': {0: 'batch_size', 1: 'sequence_length'},
           'attention_mask': {0: 'batch_size', 1: 'total_sequence_length'},
           'position_ids': {0: 'batch_size', 1: 'sequence_length'},
           'logits': {0: 'batch_size', 1: 'sequence_length'}}
    for i in range(L):
        for kv in ('key', 'value'):
            in_names.append(f'past_key_values.{i}.{kv}')
            out_names.append(f'present.{i}.{kv}')
            dyn[f'past_key_values.{i}.{kv}'] = {0: 'batch_size', 2: 'past_sequence_length'}
            dyn[f'present.{i}.{kv}'] = {0: 'batch_size', 2: 'total_sequence_length'}
    path = os.path.join(d, 'onnx', 'model.onnx')
    torch.onnx.export(WithPast(m), (ids, mask, pos, *past), path, input_names=in_names, output_names=out_names,
                      dynamic_axes=dyn, opset_version=14, do_constant_folding=False)
    to_fp16_weights(path)
    json.dump({
        'architectures': ['GPT2LMHeadModel'], 'model_type': 'gpt2', 'vocab_size': cfg.vocab_size,
        'n_positions': cfg.n_ctx, 'n_ctx': cfg.n_ctx, 'n_embd': cfg.n_embd, 'n_layer': cfg.n_layer,
        'n_head': cfg.n_head, 'activation_function': 'gelu_new', 'layer_norm_epsilon': 1e-5,
        'tie_word_embeddings': True, 'bos_token_id': 0, 'eos_token_id': 0, 'torch_dtype': 'float16',
        'transformers.js_config': {'dtype': 'fp32'},
    }, open(os.path.join(d, 'config.json'), 'w'), indent=2)
    shutil.copy(os.path.join(args.tokenizer, 'tokenizer.json'), d)
    shutil.copy(os.path.join(args.tokenizer, 'tokenizer_config.json'), d)
    with torch.no_grad():
        logits = m(torch.tensor([fixture_ids]))[0].numpy().astype('<f4')
    logits.tofile(os.path.join(args.fixtures, f'{name}-logits.f32'))
    print(f'{name}: {os.path.getsize(path) / 1e6:.2f} MB, {sum(p.numel() for p in m.parameters())} params')
json.dump({'ids': fixture_ids, 'vocabSize': 4096, 'note': 'logits files: float32 LE [len(ids), vocabSize] from PyTorch'},
          open(os.path.join(args.fixtures, 'fixture.json'), 'w'))
