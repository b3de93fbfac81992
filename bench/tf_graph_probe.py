"""Probe: the bench's GPT training step as one TensorFlow graph (tf.function, or XLA with
--xla), to measure what TensorFlow's best execution modes reach on this machine; tfjs-node
runs the same TensorFlow kernels eagerly. Not part of the product: see bench/README.md.

usage: python tf_graph_probe.py THREADS N_LAYER N_HEAD D CTX BATCH VOCAB STEPS [--xla]
"""
import sys, time
import numpy as np
import tensorflow as tf
xla = '--xla' in sys.argv
args = [a for a in sys.argv[1:] if a != '--xla']
threads = int(args[0]); L, H, D, T, B, V = [int(x) for x in args[1:7]]
n = int(args[7]) if len(args) > 7 else 30
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
rng = np.random.default_rng(0)
def w(*shape, std=0.02): return tf.Variable(rng.normal(0, std, shape).astype(np.float32))
def z(*shape): return tf.Variable(np.zeros(shape, np.float32))
def o(*shape): return tf.Variable(np.ones(shape, np.float32))
P = {'wte': w(V, D), 'wpe': w(T, D), 'lnf_g': o(D), 'lnf_b': z(D)}
for i in range(L):
    P.update({f'{i}ln1g': o(D), f'{i}ln1b': z(D), f'{i}qkvw': w(D, 3*D), f'{i}qkvb': z(3*D), f'{i}projw': w(D, D), f'{i}projb': z(D),
              f'{i}ln2g': o(D), f'{i}ln2b': z(D), f'{i}fcw': w(D, 4*D), f'{i}fcb': z(4*D), f'{i}outw': w(4*D, D), f'{i}outb': z(D)})
opt = tf.keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.1, global_clipnorm=1.0)
vars_ = list(P.values())
mask = tf.constant(np.triu(np.full((T, T), -1e9, np.float32), 1))
def ln(x, g, b):
    m, v = tf.nn.moments(x, [-1], keepdims=True)
    return (x - m) * tf.math.rsqrt(v + 1e-5) * g + b
def model(x):
    h = tf.gather(P['wte'], x) + P['wpe'][:T]
    h = tf.reshape(h, [B*T, D])
    for i in range(L):
        a = ln(h, P[f'{i}ln1g'], P[f'{i}ln1b'])
        qkv = tf.transpose(tf.reshape(a @ P[f'{i}qkvw'] + P[f'{i}qkvb'], [B, T, 3*H, D//H]), [0, 2, 1, 3])
        q, k, v = tf.split(qkv, 3, axis=1)
        s = tf.matmul(q, k, transpose_b=True) * (1/np.sqrt(D//H)) + mask
        y = tf.reshape(tf.transpose(tf.matmul(tf.nn.softmax(s), v), [0, 2, 1, 3]), [B*T, D])
        h = h + y @ P[f'{i}projw'] + P[f'{i}projb']
        m = ln(h, P[f'{i}ln2g'], P[f'{i}ln2b'])
        h = h + tf.nn.gelu(m @ P[f'{i}fcw'] + P[f'{i}fcb'], approximate=True) @ P[f'{i}outw'] + P[f'{i}outb']
    h = ln(h, P['lnf_g'], P['lnf_b'])
    return tf.matmul(h, P['wte'], transpose_b=True)
@tf.function(jit_compile=xla)
def step(x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.reshape(y, [-1]), model(x)))
    g = tape.gradient(loss, vars_)
    opt.apply_gradients(zip(g, vars_))
    return loss
xs = rng.integers(0, V, (B, T)).astype(np.int32); ys = rng.integers(0, V, (B, T)).astype(np.int32)
for _ in range(5): step(xs, ys).numpy()
t0 = time.perf_counter()
for _ in range(n): step(xs, ys).numpy()
ms = (time.perf_counter() - t0) / n * 1000
print(f'TF {tf.__version__} {"XLA" if xla else "graph"} threads={threads} L{L} d{D} T{T} B{B}: {ms:.1f} ms/step, {B*T/ms*1000:.0f} tokens/s')
