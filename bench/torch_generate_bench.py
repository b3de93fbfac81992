"""Reference for rlhf-lab's generation benchmark: Hugging Face transformers
`GPT2LMHeadModel` (random init, no dropout) sampling on CPU with PyTorch, for
comparison side by side with `npm run bench -- --reference` in the same sitting.

It measures batched sampling throughput, counted like rlhf-lab's bench:
batch x new tokens / wall seconds of one `generate()` call, with
`do_sample=True, max_new_tokens=N, min_new_tokens=N` (so no row stops early),
temperature 1, top-k and top-p off (rlhf-lab samples from the full softmax), from a
random prompt of `--prompt` tokens per row, with the KV cache (`use_cache=True`)
and, unless `--skip_nocache`, without it.

Setup (CPU wheels come from the pip index configured on this machine; no internet needed):
    python3 -m venv /tmp/ref
    /tmp/ref/bin/pip install --retries 0 --timeout 3 torch==2.13.0 transformers
    (measured with torch 2.13.0+cpu and transformers 5.18.0)
The bench finds this interpreter through env RLHF_REF_PYTHON (default /tmp/ref/bin/python),
and runs it with OMP_WAIT_POLICY=PASSIVE unless that is set (see bench/README.md).

Run:
    /tmp/ref/bin/python bench/torch_generate_bench.py --n_layer 4 --n_head 4 --d 128 --ctx 64
Prints one JSON object on its last line of stdout.
"""
import argparse
import json
import time
import warnings

import torch

p = argparse.ArgumentParser()
p.add_argument('--n_layer', type=int, default=4)
p.add_argument('--n_head', type=int, default=4)
p.add_argument('--d', type=int, default=128)
p.add_argument('--ctx', type=int, default=64)
p.add_argument('--vocab', type=int, default=65)
p.add_argument('--batch', type=int, default=64)
p.add_argument('--prompt', type=int, default=8)
p.add_argument('--new', type=int, default=32)
p.add_argument('--reps', type=int, default=1, help='timed generate() calls per mode, after one full-length warm-up call (best is reported)')
p.add_argument('--threads', type=int, default=2)
p.add_argument('--skip_nocache', action='store_true', help='do not time use_cache=False')
a = p.parse_args()

warnings.filterwarnings('ignore')
import transformers  # noqa: E402  (after the warnings filter: it warns on import in some versions)
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

transformers.logging.set_verbosity_error()
torch.manual_seed(0)
torch.set_num_threads(a.threads)

cfg = GPT2Config(
    vocab_size=a.vocab, n_positions=a.ctx, n_embd=a.d, n_layer=a.n_layer, n_head=a.n_head,
    activation_function='gelu_new', resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    bos_token_id=0, eos_token_id=None, pad_token_id=0,  # ids inside the 65-token vocabulary
)
model = GPT2LMHeadModel(cfg).eval()
nparams = sum(t.numel() for t in model.parameters())

ids = torch.randint(0, a.vocab, (a.batch, a.prompt))
mask = torch.ones_like(ids)


def run(use_cache: bool, new_tokens: int) -> float:
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=mask, do_sample=True, max_new_tokens=new_tokens,
            min_new_tokens=new_tokens, use_cache=use_cache, temperature=1.0, top_k=0, top_p=1.0,
            pad_token_id=0, eos_token_id=None,
        )
    dt = time.perf_counter() - t
    assert out.shape == (a.batch, a.prompt + new_tokens), out.shape
    return dt


def tokens_per_s(use_cache: bool, reps: int) -> float:
    run(use_cache, a.new)  # warm-up at full length: every sequence length's kernels are set up once
    best = min(run(use_cache, a.new) for _ in range(reps))
    return a.batch * a.new / best


result = {
    'impl': f'transformers {transformers.__version__} / torch {torch.__version__}',
    'params': nparams,
    'attn_implementation': getattr(model.config, '_attn_implementation', None),
    'gen_tokens_per_s_cache': round(tokens_per_s(True, a.reps)),
}
if not a.skip_nocache:
    result['gen_tokens_per_s_nocache'] = round(tokens_per_s(False, a.reps))
result['cfg'] = vars(a)
print(json.dumps(result))
