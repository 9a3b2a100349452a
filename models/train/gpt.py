"""GPT-2-style decoder (pre-LN, learned positions, tied embeddings) shared by training and export.

Attention is written out by hand (no fused SDPA) so the same code exports to ONNX with torch 1.13 and trains on
newer versions; the forward takes an optional KV cache so the exported graph has the Hugging Face
decoder-with-past layout.
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


class Config:
    def __init__(self, vocab_size=4096, n_layer=6, n_embd=256, n_head=4, n_ctx=512, dropout=0.1):
        self.vocab_size, self.n_layer, self.n_embd, self.n_head, self.n_ctx, self.dropout = (
            vocab_size, n_layer, n_embd, n_head, n_ctx, dropout)

    def to_dict(self):
        return dict(vocab_size=self.vocab_size, n_layer=self.n_layer, n_embd=self.n_embd, n_head=self.n_head,
                    n_ctx=self.n_ctx, dropout=self.dropout)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head, self.hd = c.n_head, c.n_embd // c.n_head
        self.ln_1 = nn.LayerNorm(c.n_embd)
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd)
        self.ln_2 = nn.LayerNorm(c.n_embd)
        self.c_fc = nn.Linear(c.n_embd, 4 * c.n_embd)
        self.c_proj2 = nn.Linear(4 * c.n_embd, c.n_embd)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x, bias, past_k=None, past_v=None):
        b, s, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q = q.view(b, s, self.n_head, self.hd).transpose(1, 2)
        k = k.view(b, s, self.n_head, self.hd).transpose(1, 2)
        v = v.view(b, s, self.n_head, self.hd).transpose(1, 2)
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd)) + bias
        att = self.drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).reshape(b, s, d)
        x = x + self.drop(self.c_proj(y))
        x = x + self.drop(self.c_proj2(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh')))
        return x, k, v


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.n_ctx, c.n_embd)
        self.h = nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.apply(self._init)
        for n, p in self.named_parameters():
            if n.endswith('c_proj.weight') or n.endswith('c_proj2.weight'):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx):
        """Training forward: full causal attention over idx [b, s]; returns logits [b, s, V]."""
        b, s = idx.shape
        pos = torch.arange(s, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos)[None])
        bias = torch.full((s, s), float('-inf'), device=idx.device).triu(1)[None, None]
        for blk in self.h:
            x, _, _ = blk(x, bias)
        return self.ln_f(x) @ self.wte.weight.t()

    def forward_with_past(self, input_ids, attention_mask, position_ids, past):
        """Export forward: HF decoder-with-past semantics. past: list of (k, v) [b, h, past, hd]."""
        s = input_ids.shape[1]
        past_len = past[0][0].shape[2]
        x = self.wte(input_ids) + self.wpe(position_ids)
        total = past_len + s
        q_pos = torch.arange(s, device=input_ids.device)[:, None] + past_len
        k_pos = torch.arange(total, device=input_ids.device)[None, :]
        allowed = (k_pos <= q_pos)[None, None] & (attention_mask[:, None, None, :] > 0)
        bias = torch.zeros(allowed.shape, dtype=x.dtype).masked_fill(~allowed, -1e9)
        presents = []
        for blk, (pk, pv) in zip(self.h, past):
            x, k, v = blk(x, bias, pk, pv)
            presents.append((k, v))
        return self.ln_f(x) @ self.wte.weight.t(), presents
