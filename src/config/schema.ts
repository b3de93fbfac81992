import { z } from 'zod';

/**
 * The one schema of an experiment file. Every object is strict, so a misspelt
 * key is an error (with a close match suggested) rather than a silently
 * ignored setting. Defaults live here and nowhere else.
 */
/** Every number in a config: finite (zod's z.number() takes Infinity, and YAML spells it `.inf`). */
const num = () => z.number().finite();
const positiveInt = num().int().positive();
const nonNegativeInt = num().int().nonnegative();
const probability = num().min(0).max(1);

const tokenizer = z.discriminatedUnion('type', [
  z.object({ type: z.literal('char') }).strict(),
  z.object({ type: z.literal('bpe'), vocab_size: num().int().min(259).max(65536) }).strict(),
]);

const model = z
  .object({
    n_layer: positiveInt,
    n_head: positiveInt,
    d_model: positiveInt,
    context_length: num().int().min(2),
    dropout: num().min(0).max(0.9).default(0),
  })
  .strict()
  .refine((m) => m.d_model % m.n_head === 0, { message: 'd_model must be divisible by n_head', path: ['d_model'] });

const taskName = z.enum(['sentiment', 'arithmetic', 'randomwalks']);

const corpus = z.union([
  z.object({ path: z.string().min(1) }).strict(),
  z.object({ source: z.literal('brown') }).strict(),
  z.object({ task: taskName }).strict(),
]);

/** A data file, or the matching data of a built-in task. */
const dataSource = z.union([z.object({ path: z.string().min(1) }).strict(), z.object({ task: taskName }).strict()]);

/** Optimiser, schedule and loop settings shared by every training stage. */
const trainingLoop = {
  batch_size: positiveInt,
  grad_accum_steps: positiveInt.default(1),
  max_steps: positiveInt,
  lr: num().positive(),
  min_lr: num().nonnegative().default(0),
  warmup_steps: nonNegativeInt.default(0),
  decay: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
  weight_decay: num().nonnegative().default(0.1),
  beta1: probability.default(0.9),
  beta2: probability.default(0.95),
  eps: num().positive().default(1e-8),
  grad_clip: num().nonnegative().default(1.0),
  log_interval: positiveInt.default(10),
  eval_interval: positiveInt.default(250),
  eval_batches: positiveInt.default(8),
  checkpoint_interval: positiveInt.default(500),
};

function warmupFits(s: { warmup_steps: number; max_steps: number }): boolean {
  return s.warmup_steps <= s.max_steps;
}
const warmupIssue = { message: 'warmup_steps must not exceed max_steps', path: ['warmup_steps'] };

/** A gradient-trained stage: its own keys plus the shared loop keys, warm-up no longer than the run. */
function trainingStage<T extends z.ZodRawShape>(own: T) {
  return z
    .object({ ...own, ...trainingLoop })
    .strict()
    .refine((stage) => warmupFits(stage as unknown as { warmup_steps: number; max_steps: number }), warmupIssue);
}

const pretrain = trainingStage({
  data: corpus,
  val_fraction: num().gt(0).lt(0.5).default(0.05),
});

const sft = trainingStage({
  init_from: z.string().optional(),
  data: dataSource,
  eval_fraction: num().gt(0).lt(0.5).default(0.1),
});

const sampling = {
  max_new_tokens: positiveInt.default(200),
  /** 0 = greedy decoding (argmax), as in Hugging Face and vLLM. */
  temperature: num().nonnegative().default(1.0),
  top_k: nonNegativeInt.default(0),
  top_p: num().gt(0).max(1).default(1.0),
};

const sample = z
  .object({
    init_from: z.string().optional(),
    prompts: z.array(z.string()).default(['']),
    num: positiveInt.default(1),
    seed: num().int().default(0),
    ...sampling,
  })
  .strict();

/** Simulated labeler noise: Bradley–Terry sampling at a temperature, or flipping pairs at a rate. */
const labelNoise = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z.object({ type: z.literal('bradley_terry'), temperature: num().positive() }).strict(),
  z.object({ type: z.literal('flip'), rate: num().min(0).max(0.5) }).strict(),
]);

const label = z
  .object({
    policy: z.string().optional(),
    prompts: dataSource,
    num_prompts: positiveInt.default(200),
    k: num().int().min(2).max(9).default(4),
    labeler: z.string().regex(/^(human|gold:[a-z]+)$/, 'use "human" or "gold:<task>"').default('human'),
    noise: labelNoise.default({ type: 'none' }),
    seed: num().int().default(0),
    batch_size: positiveInt.default(32),
    ...sampling,
  })
  .strict();

const trainReward = trainingStage({
  init_from: z.string().optional(),
  /** Comparisons JSONL; defaults to the label stage's comparisons.jsonl. */
  data: z.object({ path: z.string().min(1) }).strict().optional(),
  eval_fraction: num().gt(0).lt(0.5).default(0.1),
  center_coef: num().nonnegative().default(0),
  /** SFT-policy samples scored to normalise the reward to mean 0, std 1. */
  norm_samples: positiveInt.default(64),
});

const ppoObject = z
  .object({
    policy: z.string().optional(),
    reward_model: z.string().optional(),
    prompts: dataSource,
    /** PPO iterations (rollout + update) per round. */
    iterations: positiveInt.default(50),
    /** Prompts (episodes) per iteration. */
    rollout_batch_size: positiveInt.default(32),
    mini_batch_size: positiveInt.default(8),
    grad_accum_steps: positiveInt.default(1),
    ppo_epochs: positiveInt.default(4),
    response_length: positiveInt.default(32),
    temperature: num().positive({ message: 'must be > 0: PPO learns from sampled responses (temperature 0, greedy, is for sample, label and eval)' }).default(1.0),
    top_k: nonNegativeInt.default(0),
    top_p: num().gt(0).max(1).default(1.0),
    /** Extra stop text besides EOS (e.g. "\n"); default: the task's stop sequences. */
    stop_sequences: z.array(z.string().min(1)).optional(),
    /** Score given to responses that end without a stop token (unset: no penalty). */
    missing_eos_penalty: num().optional(),
    /**
     * Diagnostic: score rollouts with the prompts' task's gold scorer times this
     * factor instead of the reward model — what a perfect reward model would
     * let this method reach (Gao et al. 2022's gold-reward runs).
     */
    gold_reward: num().positive().optional(),
    /** Clip the normalised reward-model score to [-reward_clip, reward_clip]. */
    reward_clip: num().positive().optional(),
    kl_coef: num().nonnegative().default(0.05),
    kl_estimator: z.enum(['k1', 'k3']).default('k1'),
    adaptive_kl: z.object({ target: num().positive(), horizon: num().positive() }).strict().optional(),
    /** Nats: stop once a rollout's mean KL to the reference exceeds this, keeping the last policy measured inside it. */
    kl_budget: num().positive().optional(),
    gamma: probability.default(1.0),
    lam: probability.default(0.95),
    cliprange: num().positive().default(0.2),
    cliprange_value: num().positive().default(0.2),
    vf_coef: num().nonnegative().default(0.1),
    ent_coef: num().nonnegative().default(0),
    whiten_rewards: z.boolean().default(false),
    lr: num().positive().default(1e-5),
    value_lr: num().positive().optional(),
    weight_decay: num().nonnegative().default(0),
    beta1: probability.default(0.9),
    beta2: probability.default(0.95),
    eps: num().positive().default(1e-8),
    grad_clip: num().nonnegative().default(1.0),
    /** Value model: a copy of the reward model (default) or a head on the policy trunk. */
    value_model: z.enum(['reward', 'policy_head']).default('reward'),
    /** PPO-ptx: coefficient of the pretraining loss mixed into the policy loss. */
    ptx_coef: num().nonnegative().default(0),
    ptx_batch_size: positiveInt.default(8),
    /** EMA of policy weights (decay), saved as final-ema/. */
    ema_decay: num().gt(0).lt(1).optional(),
    /** Stop an update's remaining epochs once approx-KL exceeds this. */
    early_stop_kl: num().positive().optional(),
    checkpoint_interval: positiveInt.default(10),
    /** Iterated RLHF: label → train-reward → ppo repeated this many times. */
    rounds: positiveInt.default(1),
  })
  .strict();

/** Minibatches split the rollout, micro-batches the minibatch. */
function batchesDivide<T extends z.ZodTypeAny>(schema: T) {
  return schema
    .refine((p: { rollout_batch_size: number; mini_batch_size: number }) => p.rollout_batch_size % p.mini_batch_size === 0, { message: 'rollout_batch_size must be a multiple of mini_batch_size', path: ['mini_batch_size'] })
    .refine((p: { mini_batch_size: number; grad_accum_steps: number }) => p.mini_batch_size % p.grad_accum_steps === 0, { message: 'mini_batch_size must be a multiple of grad_accum_steps', path: ['grad_accum_steps'] });
}

const ppo = batchesDivide(ppoObject);

/**
 * RLOO and GRPO: PPO's rollout and clipped update without a value model (so
 * without GAE, value or ptx keys). `rollout_batch_size` counts responses, as in
 * TRL: rollout_batch_size / k prompts, each sampled k times.
 */
const groupRlObject = ppoObject
  .omit({ value_model: true, vf_coef: true, cliprange_value: true, value_lr: true, gamma: true, lam: true, whiten_rewards: true, ptx_coef: true, ptx_batch_size: true, ema_decay: true, ent_coef: true, rounds: true })
  .extend({ k: num().int().min(2, { message: 'k must be ≥ 2: the baseline of one sample is the other samples of its prompt' }).default(4) });

function groupsDivide<T extends z.ZodTypeAny>(schema: T) {
  return batchesDivide(schema).refine((p: { rollout_batch_size: number; k: number }) => p.rollout_batch_size % p.k === 0, { message: 'rollout_batch_size must be a multiple of k (k responses per prompt)', path: ['k'] });
}

/** RLOO (Ahmadian et al. 2024): KL as a per-response reward penalty (kl_coef), leave-one-out baseline. */
const rloo = groupsDivide(groupRlObject);

/** GRPO (Shao et al. 2024): group-normalised advantages; KL (k3) in the loss with coefficient beta, not in the reward. */
const grpo = groupsDivide(groupRlObject.omit({ kl_coef: true, kl_estimator: true, adaptive_kl: true }).extend({ beta: num().nonnegative().default(0.04) }));

/**
 * DPO (Rafailov et al. 2023) on the label stage's comparisons; the policy
 * starts from, and is held near, the SFT policy (the reference).
 */
const dpo = trainingStage({
  init_from: z.string().optional(),
  /** Comparisons JSONL; defaults to the label stage's comparisons.jsonl. */
  data: z.object({ path: z.string().min(1) }).strict().optional(),
  beta: num().positive().default(0.1),
  /** sigmoid: −log σ(β·h) (DPO); ipo: (h − 1/(2β))² (Azar et al. 2023); h = the policy's log-ratio margin minus the reference's. */
  loss: z.enum(['sigmoid', 'ipo']).default('sigmoid'),
  /** all: every pair a ranking orders (ties excluded); best_vs_rest: the top response against each other one. */
  pairs: z.enum(['all', 'best_vs_rest']).default('all'),
  eval_fraction: num().gt(0).lt(0.5).default(0.1),
});

const evaluation = z
  .object({
    policies: z.array(z.string()).optional(),
    prompts: dataSource.optional(),
    num_prompts: positiveInt.default(64),
    samples_per_prompt: positiveInt.default(1),
    seed: num().int().default(123),
    /** Best-of-n on the SFT policy for these n (Gao et al.'s over-optimisation curve beside PPO's); none when absent. */
    best_of_n: z.array(positiveInt.max(4096)).min(1).optional(),
    ...sampling,
  })
  .strict();

export const experimentSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'use letters, digits, ".", "_" or "-"'),
    seed: num().int().default(1337),
    run_dir: z.string().default('runs'),
    tokenizer,
    model,
    pretrain: pretrain.optional(),
    sft: sft.optional(),
    label: label.optional(),
    train_reward: trainReward.optional(),
    ppo: ppo.optional(),
    rloo: rloo.optional(),
    grpo: grpo.optional(),
    dpo: dpo.optional(),
    eval: evaluation.optional(),
    sample: sample.default({}),
    /** Also write every stage's metrics as TensorBoard event files in <stage dir>/tensorboard/. */
    tensorboard: z.boolean().default(false),
    /** TensorFlow intra-op threads: "auto" is 1 up to d_model 256, else every core (src/backend/threads.ts). */
    threads: z.union([z.literal('auto'), num().int().min(1).max(256)]).default('auto'),
  })
  .strict();

export type ExperimentConfig = z.infer<typeof experimentSchema>;
export type PretrainConfig = z.infer<typeof pretrain>;
export type SampleConfig = z.infer<typeof sample>;
export type SftConfig = z.infer<typeof sft>;
export type DataSource = z.infer<typeof dataSource>;
export type LabelConfig = z.infer<typeof label>;
export type LabelNoise = z.infer<typeof labelNoise>;
export type TrainRewardConfig = z.infer<typeof trainReward>;
export type PpoConfig = z.infer<typeof ppo>;
export type RlooConfig = z.infer<typeof rloo>;
export type GrpoConfig = z.infer<typeof grpo>;
export type DpoConfig = z.infer<typeof dpo>;
/** PPO's settings with defaults, for the keys RLOO and GRPO share with it. */
export const ppoDefaults = (prompts: DataSource): PpoConfig => ppoObject.parse({ prompts });
export type EvalConfig = z.infer<typeof evaluation>;
export type TokenizerConfig = z.infer<typeof tokenizer>;
export type ModelConfig = z.infer<typeof model>;
export type CorpusConfig = z.infer<typeof corpus>;
export type TrainingLoopConfig = Pick<PretrainConfig, keyof typeof trainingLoop>;

/** Config keys holding file paths, resolved against the config file's folder. */
export const pathKeys: readonly (readonly string[])[] = [
  ['run_dir'],
  ['pretrain', 'data', 'path'],
  ['sft', 'init_from'],
  ['sft', 'data', 'path'],
  ['label', 'policy'],
  ['label', 'prompts', 'path'],
  ['train_reward', 'init_from'],
  ['train_reward', 'data', 'path'],
  ['ppo', 'policy'],
  ['ppo', 'reward_model'],
  ['ppo', 'prompts', 'path'],
  ['rloo', 'policy'],
  ['rloo', 'reward_model'],
  ['rloo', 'prompts', 'path'],
  ['grpo', 'policy'],
  ['grpo', 'reward_model'],
  ['grpo', 'prompts', 'path'],
  ['dpo', 'init_from'],
  ['dpo', 'data', 'path'],
  ['eval', 'prompts', 'path'],
  ['sample', 'init_from'],
];
