"""Train the embedded default target, then distil the draft from it (and a plain-CE draft for comparison).

Usage: python3 train.py --data work --out work/ckpt [--device cuda] [--minutes M] [--smoke]
Writes <out>/{target,draft,draft_ce}.pt (state dicts, fp32) and <out>/train_log.json, keeping the best
checkpoint of each by validation (target: loss; drafts: acceptance alpha = E[sum min(P, Q)] at temperature 1).
"""
import argparse, json, math, os, time
import numpy as np
import torch
import torch.nn.functional as F
from gpt import GPT, Config

ap = argparse.ArgumentParser()
ap.add_argument('--data', default='work')
ap.add_argument('--out', default='work/ckpt')
ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
ap.add_argument('--smoke', action='store_true', help='a few steps of everything, to test the script')
ap.add_argument('--target-epochs', type=int, default=40)
ap.add_argument('--draft-epochs', type=int, default=60)
ap.add_argument('--target-seconds', type=float, default=60)
ap.add_argument('--draft-seconds', type=float, default=90)
ap.add_argument('--f16', action='store_true', help='store npz weights as float16 (the export uses fp16 anyway)')
ap.add_argument('--drafts', default='draft,draft_ce')
ap.add_argument('--sweep', default='0.1:2e-3,0.2:2e-3,0.2:1e-3,0.3:2e-3')
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
torch.manual_seed(0)
np.random.seed(0)
if args.device == 'cpu':
    torch.set_num_threads(2)
dev = torch.device(args.device)
amp = dict(device_type='cuda', dtype=torch.bfloat16) if dev.type == 'cuda' else None
CTX, BATCH = 512, 64
if args.smoke:
    CTX, BATCH = 64, 4

train = torch.from_numpy(np.fromfile(os.path.join(args.data, 'train.bin'), dtype=np.uint16).astype(np.int64))
val = torch.from_numpy(np.fromfile(os.path.join(args.data, 'val.bin'), dtype=np.uint16).astype(np.int64))
train, val = train.to(dev), val.to(dev)
nval = (len(val) - 1) // CTX
vx = val[: nval * CTX].view(nval, CTX)
vy = val[1: nval * CTX + 1].view(nval, CTX)
if args.smoke:
    vx, vy = vx[:4], vy[:4]
steps_per_epoch = max(1, len(train) // (BATCH * CTX))
log = {'device': str(dev), 'torch': torch.__version__, 'ctx': CTX, 'batch': BATCH, 'train_tokens': len(train),
       'val_tokens': len(val), 'runs': []}
t_start = time.time()


def batch():
    ix = torch.randint(0, len(train) - CTX - 1, (BATCH,), device=dev)
    off = torch.arange(CTX + 1, device=dev)
    w = train[ix[:, None] + off[None]]
    return w[:, :-1], w[:, 1:]


def autocast():
    return torch.autocast(**amp) if amp else torch.autocast('cpu', enabled=False)


@torch.no_grad()
def val_loss(m):
    m.eval()
    tot = 0.0
    for i in range(0, len(vx), 16):
        with autocast():
            lg = m(vx[i:i + 16])
        tot += F.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), vy[i:i + 16].reshape(-1), reduction='sum').item()
    m.train()
    return tot / vy.numel()


@torch.no_grad()
def val_alpha(draft, target):
    """alpha = E[sum_x min(P, Q)] over validation positions at temperature 1, plus top-k 10."""
    draft.eval(); target.eval()
    a1 = ak = 0.0
    for i in range(0, len(vx), 16):
        with autocast():
            p = F.softmax(target(vx[i:i + 16]).float(), -1)
            q = F.softmax(draft(vx[i:i + 16]).float(), -1)
        a1 += torch.minimum(p, q).sum(-1).sum().item()
        def topk(d):
            v, ix = d.topk(10, -1)
            return torch.zeros_like(d).scatter(-1, ix, v / v.sum(-1, keepdim=True))
        ak += torch.minimum(topk(p), topk(q)).sum(-1).sum().item()
    draft.train()
    return a1 / vy.numel(), ak / vy.numel()


def lr_at(step, total, peak):
    warm = min(200, total // 10)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm))))


def fit(model, epochs, peak_lr, loss_fn, score_fn, name, higher_better, max_seconds):
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, betas=(0.9, 0.95), weight_decay=0.1)
    total = epochs * steps_per_epoch if not args.smoke else 6
    best, best_state, hist = None, None, []
    t0 = time.time()
    for step in range(total):
        for g in opt.param_groups:
            g['lr'] = lr_at(step, total, peak_lr)
        x, y = batch()
        with autocast():
            loss = loss_fn(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        out_of_time = time.time() - t0 > max_seconds
        if (step + 1) % steps_per_epoch == 0 or step + 1 == total or out_of_time:
            score = score_fn(model)
            s0 = score[0] if isinstance(score, tuple) else score
            hist.append({'step': step + 1, 'epoch': (step + 1) / steps_per_epoch, 'train_loss': loss.item(),
                         'score': score, 'seconds': round(time.time() - t0, 1)})
            if best is None or (s0 > best if higher_better else s0 < best):
                best, best_state = s0, {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
            print(f'[{name}] epoch {hist[-1]["epoch"]:.1f} step {step + 1}/{total} loss {loss.item():.3f} '
                  f'val {score} best {best:.4f} ({time.time() - t_start:.0f}s)', flush=True)
            if out_of_time:
                print(f'[{name}] stopped at its time budget ({max_seconds}s)', flush=True)
                break
    return best, best_state, hist


def save(name, cfg, state):
    # npz + json as well as .pt: the export runs on an older torch than training may.
    torch.save({'config': cfg.to_dict(), 'state': state}, os.path.join(args.out, f'{name}.pt'))
    np.savez(os.path.join(args.out, f'{name}.npz'), **{k: v.numpy().astype(np.float16 if args.f16 else np.float32) for k, v in state.items()})
    json.dump(cfg.to_dict(), open(os.path.join(args.out, f'{name}.json'), 'w'))


def ce_loss(m, x, y):
    lg = m(x)
    return F.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), y.reshape(-1))


# ---- 1. target sweep -------------------------------------------------------------------------------------
tcfg_base = dict(n_layer=6, n_embd=256, n_head=4, n_ctx=512)
best_t = None
for spec in args.sweep.split(','):
    dropout, lr = (float(v) for v in spec.split(':'))
    torch.manual_seed(1)
    cfg = Config(dropout=dropout, **tcfg_base)
    m = GPT(cfg).to(dev)
    name = f'target d{dropout} lr{lr}'
    best, state, hist = fit(m, args.target_epochs, lr, ce_loss, val_loss, name, higher_better=False,
                           max_seconds=args.target_seconds)
    log['runs'].append({'name': name, 'config': cfg.to_dict(), 'lr': lr, 'best_val_loss': best, 'history': hist,
                        'params': sum(p.numel() for p in m.parameters())})
    if best_t is None or best < best_t[0]:
        best_t = (best, state, cfg, name)
    if args.smoke:
        break
print(f'best target: {best_t[3]} val loss {best_t[0]:.4f} ppl {math.exp(best_t[0]):.2f}', flush=True)
save('target', best_t[2], best_t[1])
log['target'] = {'name': best_t[3], 'val_loss': best_t[0], 'val_ppl': math.exp(best_t[0])}

target = GPT(best_t[2]).to(dev)
target.load_state_dict(best_t[1])
target.eval()
for p in target.parameters():
    p.requires_grad_(False)

# ---- 2. drafts: distilled (KL to the target's soft outputs) and plain cross-entropy ------------------------
dcfg = dict(n_layer=2, n_embd=128, n_head=2, n_ctx=512)


def kd_loss(m, x, y):
    with torch.no_grad():
        p_log = F.log_softmax(target(x).float(), -1)
    q_log = F.log_softmax(m(x).float(), -1)
    return (p_log.exp() * (p_log - q_log)).sum(-1).mean()


for kind, fn in (('draft', kd_loss), ('draft_ce', ce_loss)):
    if kind not in args.drafts.split(','):
        continue
    torch.manual_seed(2)
    cfg = Config(dropout=0.0 if kind == 'draft' else 0.1, **dcfg)
    m = GPT(cfg).to(dev)
    best, state, hist = fit(m, args.draft_epochs, 3e-3, fn, lambda d: val_alpha(d, target), kind,
                            higher_better=True, max_seconds=args.draft_seconds)
    m.load_state_dict(state)
    vl = val_loss(m)
    log['runs'].append({'name': kind, 'config': cfg.to_dict(), 'best_alpha_t1': best, 'val_loss': vl,
                        'history': hist, 'params': sum(p.numel() for p in m.parameters())})
    log[kind] = {'alpha_t1': best, 'val_loss': vl, 'val_ppl': math.exp(vl)}
    save(kind, cfg, state)
    print(f'{kind}: alpha(T=1) {best:.4f} val loss {vl:.4f}', flush=True)
    if args.smoke:
        continue
log['seconds'] = round(time.time() - t_start, 1)
json.dump(log, open(os.path.join(args.out, 'train_log.json'), 'w'), indent=1)
print('done in', log['seconds'], 's')
