"""Checks an `rlhf export` directory against rlhf itself, with Hugging Face transformers.

Usage: python scripts/hf_check.py HF_DIR RLHF_JSON
RLHF_JSON (written by `node scripts/hf-reference.mjs`) holds token rows and rlhf's
logits (LM) or normalised rewards (scorer), and rlhf's greedy generations. Prints one
JSON line: max |Δlogit| or |Δscore|, greedy generations equal or not, tokenizer ids equal.
Not part of CI (needs torch + transformers): a manual cross-check.
"""
import json
import sys

import torch
from transformers import AutoTokenizer, GPT2ForSequenceClassification, GPT2LMHeadModel

hf_dir, ref_file = sys.argv[1], sys.argv[2]
ref = json.load(open(ref_file))
tok = AutoTokenizer.from_pretrained(hf_dir)
out = {"dir": hf_dir, "tokenizer_class": type(tok).__name__}
out["tokenizer_ids_equal"] = all(tok.encode(t, add_special_tokens=False) == ids for t, ids in zip(ref["texts"], ref["text_ids"]))

torch.set_grad_enabled(False)
if ref["head"] == "lm":
    model = GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    worst = 0.0
    for row, logits in zip(ref["rows"], ref["logits"]):
        got = model(torch.tensor([row])).logits[0]
        worst = max(worst, (got - torch.tensor(logits)).abs().max().item())
    out["max_abs_dlogit"] = worst
    same = True
    for prompt, want in zip(ref["prompts"], ref["greedy"]):
        g = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                           max_new_tokens=len(want), do_sample=False, eos_token_id=None, pad_token_id=model.config.pad_token_id,
                           suppress_tokens=ref["banned"])
        same &= g[0, len(prompt):].tolist() == want
    out["greedy_equal"] = same
    out["greedy_rows"] = len(ref["prompts"])
else:
    model = GPT2ForSequenceClassification.from_pretrained(hf_dir).eval()
    pad = model.config.pad_token_id
    if pad is None:  # GPT-2 vocabulary (pads with EOS): the export leaves pad unset, so one row at a time
        got = torch.tensor([model(torch.tensor([r])).logits[0, 0].item() for r in ref["rows"]])
    else:
        width = max(len(r) for r in ref["rows"])
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in ref["rows"]])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ref["rows"]])
        got = model(ids, attention_mask=mask).logits[:, 0]
    out["max_abs_dscore"] = (got - torch.tensor(ref["scores"])).abs().max().item()
    out["score_range"] = [min(ref["scores"]), max(ref["scores"])]
out["rows"] = len(ref["rows"])
print(json.dumps(out))
