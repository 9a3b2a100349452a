"""Distil a draft further on CPU: on the target's own samples, and/or from a layer-dropped copy of the target.

Why on-policy data: in DSSD the draft always predicts continuations the target itself sampled (the accepted output
is distributed as the target's sampling), not held-out corpus text, and the target overfits its 1.5 M training
tokens, so its predictions on training text are sharper than on anything new. Loss: forward KL to the target's full
distribution plus total variation (alpha = 1 - TV, so the second term optimises acceptance directly), as in
DistillSpec (Zhou et al., 2023). --init target:I,J starts from the target's embeddings, final norm and blocks I, J
(a wider, deeper-informed draft than the committed 1 M one). --replay 1 trains on corpus windows only.

Reads work/ckpt/{target,draft}.{json,npz}; writes the best draft by alpha on generated text to
work/ckpt/draft_op.{json,npz} and the history to work/ckpt/onpolicy_log.json; --resume continues from them.
Results of the runs made with it: runs/cpu-draft-experiments/README.md.
"""
import argparse, json, math, os, sys, time
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt import GPT, Config  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument('--data', default='work')
ap.add_argument('--ckpt', default='work/ckpt')
ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
ap.add_argument('--seconds', type=float, default=3600, help='wall-clock budget for generation + training')
ap.add_argument('--gen-batch', type=int, default=128, help='sequences generated per chunk')
ap.add_argument('--prompt', type=int, default=16, help='prompt tokens taken from the corpus')
ap.add_argument('--length', type=int, default=240, help='tokens the target generates after each prompt')
ap.add_argument('--reuse', type=int, default=4, help='how many times each generated chunk is trained on')
ap.add_argument('--batch', type=int, default=32)
ap.add_argument('--lr', type=float, default=1e-3)
ap.add_argument('--tv', type=float, default=1.0, help='weight of the total-variation term')
ap.add_argument('--replay', type=float, default=0.25, help='share of each batch drawn from corpus text')
ap.add_argument('--eval-seqs', type=int, default=64)
ap.add_argument('--eval-every', type=float, default=300, help='seconds between evaluations')
ap.add_argument('--resume', action='store_true')
ap.add_argument('--init', default='draft',
                help="'draft' (the distilled draft) or 'target:I,J,...' (the target's embeddings and those blocks)")
ap.add_argument('--eval-only', action='store_true')
args = ap.parse_args()

torch.manual_seed(3)
if args.device == 'cpu':
    torch.set_num_threads(2)
dev = torch.device(args.device)


def load(name):
    cfg = Config(**json.load(open(os.path.join(args.ckpt, f'{name}.json'))))
    cfg.dropout = 0.0
    m = GPT(cfg).to(dev)
    z = np.load(os.path.join(args.ckpt, f'{name}.npz'))
    m.load_state_dict({k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files})
    return m, cfg


target, tcfg = load('target')
target.eval()
for p in target.parameters():
    p.requires_grad_(False)


def from_target(blocks):
    """A shallow copy of the target: its embeddings, final norm and the chosen blocks (a layer-dropped start)."""
    cfg = Config(**{**tcfg.to_dict(), 'n_layer': len(blocks), 'dropout': 0.0})
    m = GPT(cfg).to(dev)
    sd = {k: v for k, v in target.state_dict().items() if not k.startswith('h.')}
    for i, j in enumerate(blocks):
        sd.update({f'h.{i}.' + k[len(f'h.{j}.'):]: v for k, v in target.state_dict().items() if k.startswith(f'h.{j}.')})
    m.load_state_dict(sd)
    return m, cfg


if args.resume and os.path.exists(os.path.join(args.ckpt, 'draft_op.npz')):
    draft, dcfg = load('draft_op')
    args.init = 'draft_op (resumed)'
elif args.init.startswith('target:'):
    draft, dcfg = from_target([int(b) for b in args.init[len('target:'):].split(',')])
else:
    draft, dcfg = load('draft')
for p in draft.parameters():
    p.requires_grad_(True)
print(f'draft: {dcfg.to_dict()} from {args.init}, {sum(p.numel() for p in draft.parameters())} parameters', flush=True)

train = torch.from_numpy(np.fromfile(os.path.join(args.data, 'train.bin'), dtype=np.uint16).astype(np.int64)).to(dev)
val = torch.from_numpy(np.fromfile(os.path.join(args.data, 'val.bin'), dtype=np.uint16).astype(np.int64)).to(dev)
SEQ = args.prompt + args.length


@torch.no_grad()
def generate(corpus, n, gen):
    """n target samples at temperature 1: a corpus prompt, then args.length sampled tokens (KV cache)."""
    ix = torch.randint(0, len(corpus) - args.prompt, (n,), device=dev, generator=gen)
    x = corpus[ix[:, None] + torch.arange(args.prompt, device=dev)[None]]
    hd = tcfg.n_embd // tcfg.n_head
    past = [(torch.zeros(n, tcfg.n_head, 0, hd, device=dev),) * 2 for _ in range(tcfg.n_layer)]
    lg, past = target.forward_with_past(x, torch.ones(n, args.prompt, device=dev),
                                        torch.arange(args.prompt, device=dev)[None].expand(n, -1), past)
    out = [x]
    for s in range(args.length):
        nxt = torch.multinomial(F.softmax(lg[:, -1].float(), -1), 1, generator=gen)
        out.append(nxt)
        if s + 1 == args.length:
            break
        L = args.prompt + s
        lg, past = target.forward_with_past(nxt, torch.ones(n, L + 1, device=dev),
                                            torch.full((n, 1), L, device=dev), past)
    return torch.cat(out, 1)


@torch.no_grad()
def alpha(seqs, first):
    """E[sum_x min(P, Q)] at temperature 1 over positions predicting tokens from index `first` on."""
    draft.eval()
    tot, cnt = 0.0, 0
    for i in range(0, len(seqs), 16):
        x = seqs[i:i + 16, :-1]
        p = F.softmax(target(x).float(), -1)[:, first - 1:]
        q = F.softmax(draft(x).float(), -1)[:, first - 1:]
        tot += torch.minimum(p, q).sum(-1).sum().item()
        cnt += p.shape[0] * p.shape[1]
    draft.train()
    return tot / cnt


def corpus_windows(n, gen):
    ix = torch.randint(0, len(train) - SEQ, (n,), device=dev, generator=gen)
    return train[ix[:, None] + torch.arange(SEQ, device=dev)[None]]


g_eval = torch.Generator(device=dev).manual_seed(1234)
t_start = time.time()
eval_gen = generate(val, args.eval_seqs, g_eval)
nval = (len(val) - 1) // SEQ
eval_text = val[: nval * SEQ].view(nval, SEQ)
print(f'eval set: {args.eval_seqs} target samples from held-out prompts ({time.time() - t_start:.0f}s)', flush=True)


def evaluate():
    return {'alpha_generated': alpha(eval_gen, args.prompt), 'alpha_heldout_text': alpha(eval_text, 1)}


log_path = os.path.join(args.ckpt, 'onpolicy_log.json')
log = json.load(open(log_path)) if args.resume and os.path.exists(log_path) else {'history': []}
score = evaluate()
print(f'start: {score}', flush=True)
if args.eval_only:
    sys.exit(0)
log.setdefault('start', score)
best = max([h['alpha_generated'] for h in log['history']] + [score['alpha_generated']])


def save():
    state = {k: v.detach().float().cpu() for k, v in draft.state_dict().items()}
    np.savez(os.path.join(args.ckpt, 'draft_op.npz'), **{k: v.numpy().astype(np.float16) for k, v in state.items()})
    cfg = dcfg.to_dict()
    json.dump(cfg, open(os.path.join(args.ckpt, 'draft_op.json'), 'w'))


opt = torch.optim.AdamW(draft.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
g = torch.Generator(device=dev).manual_seed(int(time.time()))
draft.train()
tokens, step, last_eval = 0, 0, time.time()
n_corpus = int(round(args.batch * args.replay))
while time.time() - t_start < args.seconds:
    # replay 1: corpus text only (no generation), one pass per chunk of windows
    chunk = generate(train, args.gen_batch, g) if n_corpus < args.batch else corpus_windows(args.gen_batch, g)
    for _ in range(args.reuse if n_corpus < args.batch else 1):
        for idx in torch.randperm(len(chunk), generator=g, device=dev).split(args.batch - n_corpus if n_corpus < args.batch else args.batch):
            frac = min(1.0, (time.time() - t_start) / args.seconds)
            for pg in opt.param_groups:
                pg['lr'] = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            x = chunk[idx] if n_corpus in (0, args.batch) else torch.cat([chunk[idx], corpus_windows(n_corpus, g)])
            x = x[:, :-1]
            with torch.no_grad():
                p_log = F.log_softmax(target(x).float(), -1)
            q_log = F.log_softmax(draft(x).float(), -1)
            p = p_log.exp()
            kl = (p * (p_log - q_log)).sum(-1).mean()
            tv = 0.5 * (p - q_log.exp()).abs().sum(-1).mean()
            loss = kl + args.tv * tv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(draft.parameters(), 1.0)
            opt.step()
            step += 1
            tokens += x.numel()
    if time.time() - last_eval > args.eval_every or time.time() - t_start >= args.seconds:
        last_eval = time.time()
        score = evaluate()
        score.update(step=step, tokens=tokens, kl=kl.item(), tv=tv.item(), seconds=round(time.time() - t_start))
        log['history'].append(score)
        if score['alpha_generated'] > best:
            best = score['alpha_generated']
            save()
        json.dump(log, open(log_path, 'w'), indent=1)
        print(f'step {step} tokens {tokens} kl {kl.item():.3f} tv {tv.item():.3f} alpha on generated '
              f'{score["alpha_generated"]:.4f} on held-out text {score["alpha_heldout_text"]:.4f} best {best:.4f} '
              f'({score["seconds"]}s)', flush=True)
print('done; best alpha on generated text', round(best, 4))
