"""A random-weight GPT-2-small-shaped model directory, as transformers writes it.

Usage: python scripts/hf_random_gpt2.py VOCAB_DIR OUT_DIR [n_layer n_embd n_head n_positions]
VOCAB_DIR holds vocab.json + merges.txt (node scripts/gpt2-vocab.mjs VOCAB_DIR). Default shape:
GPT-2 small (12 layers, 768 wide, 12 heads, context 1024, vocab 50257; 124M parameters).
For the `rlhf import` size check and `npm run bench -- --reference`; not used by CI.
"""
import os
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

vocab_dir, out = sys.argv[1], sys.argv[2]
n_layer, n_embd, n_head, n_positions = (int(x) for x in (sys.argv[3:7] or (12, 768, 12, 1024)))
torch.manual_seed(0)
cfg = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=n_positions, vocab_size=50257)
GPT2LMHeadModel(cfg).save_pretrained(out)
tok = GPT2TokenizerFast(os.path.join(vocab_dir, "vocab.json"), os.path.join(vocab_dir, "merges.txt"))
tok.save_pretrained(out)
print(out, sorted(os.listdir(out)))
