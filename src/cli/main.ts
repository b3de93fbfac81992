import { Command, InvalidArgumentError, Option } from 'commander';

/**
 * The `rlhf` command line: a thin layer that parses flags and calls library
 * functions. Heavy modules (TensorFlow) load only when a command runs, after
 * `--backend` is known, so `--help` is instant and the backend is chosen once.
 */

/** Errors caused by the user's input: one line on stderr, exit code 2, no stack. */
const USER_ERRORS = new Set(['ConfigError', 'DataError', 'CheckpointError', 'StageStateError', 'BackendError', 'InterruptedError', 'UsageError', 'StageLockError', 'WorkflowError', 'VerifyError', 'HfError']);

class UsageError extends Error {
  override name = 'UsageError';
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function intArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
    return n;
  };
}

function numArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
    return n;
  };
}

function configOptions(cmd: Command, required: boolean): Command {
  const c = new Option('-c, --config <file>', 'experiment YAML file');
  if (required) c.makeOptionMandatory();
  return cmd.addOption(c).option('--set <key.path=value>', 'override a config value (repeatable)', collect, [] as string[]);
}

function stageOptions(cmd: Command): Command {
  return cmd.option('--force', 'overwrite a completed or unfinished stage directory').option('--resume', 'continue an unfinished run from its newest checkpoint');
}

/** Loads the config and sets TensorFlow's threads from it, before any command imports TensorFlow. */
async function loadConfigFrom(opts: { config: string; set: string[] }) {
  const { loadConfig } = await import('../config/load.js');
  const { configThreads, configureThreads } = await import('../backend/threads.js');
  const loaded = loadConfig(opts.config, opts.set);
  configureThreads(configThreads(loaded.config));
  return loaded;
}

export function buildProgram(): Command {
  const program = new Command('rlhf')
    .description('Small-scale RLHF lab: pretrain → SFT → reward model → PPO on tiny GPTs (tfjs-node)')
    .addOption(new Option('--backend <name>', 'tensor backend; "cpu" is the slow pure-JS one, only on request').choices(['tensorflow', 'cpu']).default('tensorflow'))
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', '\nExit codes: 0 done, 1 internal error (a bug), 2 bad input or stage state, 3 the file system refused (no space, read-only, permissions), 130 interrupted.')
    .hook('preAction', (cmd) => {
      process.env.RLHF_BACKEND = cmd.opts().backend as string;
    });

  const stage = (name: string, description: string, examples: string[], run: StageRunner): void => {
    stageOptions(configOptions(program.command(name), true))
      .option('--allow-config-change', 'with --resume: continue with settings that differ from the run\'s config.yaml (recorded in manifest.json)')
      .description(description)
      .addHelpText('after', `\nExamples:\n${examples.map((e) => `  ${e}`).join('\n')}`)
      .action(async (opts: StageFlags) => {
        const loaded = await loadConfigFrom(opts);
        const result = await run(loaded, { force: opts.force, resume: opts.resume, allowConfigChange: opts.allowConfigChange });
        const shown = Object.entries(result.metrics)
          .filter(([k]) => !['tokens_per_s', 'elapsed_s', 'lr'].includes(k))
          .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
          .join(', ');
        console.log(`${name} done: ${shown} → ${result.finalPath}`);
      });
  };

  stage(
    'pretrain',
    'train a GPT language model on a text corpus',
    [
      'rlhf pretrain -c configs/quickstart.yaml',
      'rlhf pretrain -c configs/brown.yaml --set pretrain.max_steps=2000 --set model.dropout=0.1',
      'rlhf pretrain -c configs/quickstart.yaml --resume      # continue after Ctrl-C',
    ],
    async (loaded, o) => (await import('../stages/pretrain.js')).runPretrain(loaded, o),
  );
  stage(
    'sft',
    'supervised fine-tuning on prompt/response (or chat) demonstrations',
    ['rlhf sft -c configs/sentiment.yaml', 'rlhf sft -c configs/sentiment.yaml --set sft.data.path=my-demos.jsonl --set sft.lr=1e-4'],
    async (loaded, o) => (await import('../stages/sft.js')).runSft(loaded, o),
  );
  stage(
    'train-reward',
    'train a reward model on ranked comparisons (Bradley–Terry over all C(K,2) pairs)',
    ['rlhf train-reward -c configs/sentiment.yaml', 'rlhf train-reward -c configs/sentiment.yaml --set train_reward.data.path=prefs.jsonl'],
    async (loaded, o) => (await import('../stages/train-reward.js')).runTrainReward(loaded, o),
  );
  stage(
    'ppo',
    'optimise the policy against the reward model with PPO and a KL penalty to the SFT reference',
    [
      'rlhf ppo -c configs/sentiment.yaml',
      'rlhf ppo -c configs/sentiment.yaml --set ppo.kl_coef=0.2 --set ppo.iterations=100',
      'rlhf ppo -c configs/sentiment.yaml --resume        # continue after a crash or Ctrl-C',
      'rlhf ppo -c configs/sentiment.yaml --set ppo.rounds=3   # iterated RLHF: label → train-reward → ppo again',
    ],
    async (loaded, o) => {
      if ((loaded.config.ppo?.rounds ?? 1) === 1) return (await import('../stages/ppo.js')).runPpo(loaded, o);
      const rounds = await (await import('../stages/rounds.js')).runRounds(loaded, o);
      for (const r of rounds) console.log(`round ${r.round}: ${r.ppo === 'skipped' ? 'already completed' : 'done'} → ${r.dir}`);
      const last = rounds[rounds.length - 1];
      return { finalPath: `${last.dir}/final`, metrics: last.ppo === 'skipped' ? {} : last.ppo.metrics };
    },
  );

  for (const method of ['rloo', 'grpo'] as const) {
    stage(
      method,
      method === 'rloo'
        ? 'optimise the policy with RLOO: k samples per prompt, leave-one-out baseline, KL penalty on the reward, no value model'
        : 'optimise the policy with GRPO: k samples per prompt, group-normalised advantages, KL (k3) in the loss, no value model',
      [`rlhf ${method} -c configs/randomwalks.yaml`, `rlhf ${method} -c configs/randomwalks.yaml --set ${method}.k=8`, `rlhf ${method} -c configs/randomwalks.yaml --resume`],
      async (loaded, o) => (await import('../stages/group-rl.js')).runGroupRl(loaded, method, o),
    );
  }
  stage(
    'dpo',
    "direct preference optimisation on the label stage's comparisons, the SFT policy as reference (no reward model, no sampling)",
    ['rlhf dpo -c configs/randomwalks.yaml', 'rlhf dpo -c configs/randomwalks.yaml --set dpo.beta=0.3 --set dpo.loss=ipo', 'rlhf dpo -c configs/randomwalks.yaml --resume'],
    async (loaded, o) => (await import('../stages/dpo.js')).runDpo(loaded, o),
  );

  stageOptions(configOptions(program.command('label'), true))
    .description('sample K responses per prompt from a policy and record rankings by a gold scorer or by you (comparisons.jsonl)')
    .addHelpText(
      'after',
      `
Answers are appended to runs/<name>/label/comparisons.jsonl as they are given; running the
same command again continues an unfinished label run where it stopped (--force starts over).
Human labeling: type an order such as "3 1 2" (best first), s skip, u undo, q quit, ? help.

Examples:
  rlhf label -c configs/sentiment.yaml
  rlhf label -c configs/sentiment.yaml --set 'label.noise={type: flip, rate: 0.2}' --force
  rlhf label -c configs/sentiment.yaml --set label.labeler=human --set label.k=3 --set label.num_prompts=50
  printf '2 1 3\\ns\\nq\\n' | rlhf label -c exp.yaml --set label.labeler=human   # scripted answers`,
    )
    .action(async (opts: StageFlags) => {
      const loaded = await loadConfigFrom(opts);
      const r = await (await import('../stages/label.js')).runLabel(loaded, { force: opts.force, resume: opts.resume });
      const shown = Object.entries(r.metrics)
        .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`)
        .join(', ');
      if (r.status === 'completed') console.log(`label done: ${shown} → ${r.comparisonsPath}`);
      else console.log(`label stopped after ${r.decided} of ${r.total} prompts (${shown}); run the same command again to continue → ${r.comparisonsPath}`);
    });

  configOptions(program.command('eval'), true)
    .description('score policies on a prompt set: proxy reward, gold score, KL to the reference, length, distinct-n, and the wall time of the stage that produced each')
    .option('--policy <dir>', 'policy checkpoint to evaluate (repeatable; default: SFT and every completed RLOO, GRPO, DPO and PPO stage)', collect, [] as string[])
    .option('--samples <n>', 'sample rows to print per policy', intArg('--samples'), 3)
    .option('--json', 'print the results as JSON')
    .option('--force', 'overwrite a completed eval of this experiment')
    .addHelpText(
      'after',
      `
Examples:
  rlhf eval -c configs/sentiment.yaml
  rlhf eval -c configs/sentiment.yaml --policy runs/sentiment/sft/final --policy runs/sentiment/ppo/final --json`,
    )
    .action(async (opts: { config: string; set: string[]; policy: string[]; samples: number; json?: boolean; force?: boolean }) => {
      const loaded = await loadConfigFrom(opts);
      const { runEval, evaluationTable } = await import('../stages/eval.js');
      const { dir, results } = await runEval(loaded, opts.policy, { force: opts.force });
      if (opts.json) {
        console.log(JSON.stringify(results.map((r) => ({ ...r, samples: r.samples.slice(0, opts.samples) }))));
        return;
      }
      console.log(evaluationTable(results));
      for (const r of results) {
        console.log(`\n${r.policy}`);
        for (const x of r.samples.slice(0, opts.samples)) {
          console.log(`  ${JSON.stringify(x.prompt + x.response)}  proxy ${x.proxy_reward.toFixed(2)}${x.gold_score !== undefined ? ` gold ${x.gold_score.toFixed(2)}` : ''}`);
        }
      }
      console.log(`\nresults → ${dir}/results.json`);
    });

  configOptions(program.command('sample'), false)
    .description('generate text from a checkpoint (a directory, or a stage of a config)')
    .option('--checkpoint <dir>', 'checkpoint directory (default: newest completed LM stage of --config)')
    .option('--stage <name>', 'stage of --config to sample from (pretrain, sft, ppo)')
    .option('-p, --prompt <text>', 'prompt (repeatable)', collect, [] as string[])
    .option('--prompts-file <file>', 'file with one prompt per line')
    .option('-n, --num <n>', 'samples per prompt', intArg('--num'))
    .option('--max-new-tokens <n>', 'tokens to generate at most', intArg('--max-new-tokens'))
    .option('--temperature <t>', 'softmax temperature (0 = greedy: always the most likely token)', numArg('--temperature'))
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', intArg('--top-k'))
    .option('--top-p <p>', 'nucleus sampling mass (1 = off)', numArg('--top-p'))
    .option('--seed <n>', 'sampling seed', intArg('--seed'))
    .option('--no-cache', 'decode without the KV cache (slower; for checking)')
    .option('--best-of <n>', 'sample n candidates per row and keep the one the reward model scores highest', intArg('--best-of'))
    .option('--reward-model <dir>', 'reward model for --best-of (default: the final train-reward stage of --config)')
    .option('--json', 'print one JSON object per sample')
    .addHelpText(
      'after',
      `
Examples:
  rlhf sample -c configs/quickstart.yaml -p "The little fox" -n 3
  rlhf sample --checkpoint runs/quickstart/pretrain/final --temperature 0.8 --top-k 20 --json
  rlhf sample -c configs/sentiment.yaml --stage sft --best-of 16 -p "Review: The soup was" --json`,
    )
    .action(async (opts: SampleFlags) => {
      const req = await sampleRequest(opts);
      const { sampleCheckpoint } = await import('../stages/sample.js');
      for (const row of sampleCheckpoint(req)) {
        if (opts.json) console.log(JSON.stringify(row));
        else {
          const best = row.best_of ? `, best of ${row.best_of} (reward ${row.reward!.toFixed(3)})` : '';
          console.log(`--- prompt ${row.prompt_index + 1}, sample ${row.sample_index + 1}${best}${row.finished ? '' : ' (max length)'}\n${row.prompt}${row.completion}`);
        }
      }
    });

  program
    .command('report')
    .description('write one self-contained HTML page (charts, configs, manifests, samples) for a run directory and print a summary')
    .argument('<run_dir>', 'run directory (runs/<name>), or one stage directory')
    .option('--out <file>', 'HTML file to write (default: RUN_DIR/report.html)')
    .option('--samples <n>', 'eval samples shown per policy', intArg('--samples'), 4)
    .option('--json', 'print the summary as JSON')
    .addHelpText(
      'after',
      `
The page needs no network: charts are Vega-Lite rendered to inline SVG when the report is
built. The summary lists each stage's status, wall time and key final metrics, then the eval's
policies with the wall time of the stage that produced each (NO_COLOR turns colour off).

Examples:
  rlhf report runs/sentiment
  rlhf report runs/sentiment --out /tmp/sentiment.html --samples 8
  rlhf report runs/sentiment --json | jq '.stages[] | {stage, status}'`,
    )
    .action(async (runDir: string, opts: { out?: string; samples: number; json?: boolean }) => {
      if (opts.samples < 0) throw new UsageError('--samples must be >= 0');
      const { buildReport } = await import('../report/report.js');
      const { summaryText, useColor } = await import('../report/summary.js');
      const { summary } = await buildReport(runDir, { out: opts.out, samplesPerPolicy: opts.samples });
      if (opts.json) console.log(JSON.stringify(summary));
      else console.log(`${summaryText(summary, useColor(process.stdout))}\n\nreport → ${summary.report}`);
    });

  configOptions(program.command('pipeline'), true)
    .description('run the stages in order (pretrain → sft → label → train-reward → ppo → rounds → rloo → grpo → dpo → eval), skipping those whose inputs are unchanged')
    .option('--from <stage>', 'start at this stage (earlier stages are used as they are)')
    .option('--until <stage>', 'stop after this stage')
    .option('--dry-run', 'print the plan (run or skip, and why) and run nothing')
    .option('--force', 're-run every selected stage')
    .option('--reuse <run_dir>', 'link stages whose inputs equal a completed stage of that run instead of re-running them (rlhf sweep uses this)')
    .option('--json', 'print the plan and outcome as one JSON object (progress goes to stderr)')
    .addHelpText(
      'after',
      `
A stage is skipped when it completed before with the same input hash: its config section,
seed/tokenizer/model, and the content of the checkpoints and data it reads (recorded in its
manifest.json), in the same numerics environment (oneDNN mode, TensorFlow, CPU extensions, threads).
A changed stage re-runs, and so does every stage that reads its outputs.

Examples:
  rlhf pipeline -c configs/ci.yaml
  rlhf pipeline -c configs/ci.yaml --set ppo.kl_coef=0.2 --dry-run   # ppo and eval would re-run
  rlhf pipeline -c configs/sentiment.yaml --until train-reward
  rlhf pipeline -c configs/sentiment.yaml --from ppo --force --json`,
    )
    .action(async (opts: { config: string; set: string[]; from?: string; until?: string; dryRun?: boolean; force?: boolean; reuse?: string; json?: boolean }) => {
      const loaded = await loadConfigFrom(opts);
      const { runPipeline, formatPlan } = await import('../workflow/pipeline.js');
      const say = opts.json ? (line: string) => process.stderr.write(`${line}\n`) : (line: string) => console.log(line);
      const { result, error } = await runPipeline(loaded, {
        from: opts.from,
        until: opts.until,
        force: opts.force,
        dryRun: opts.dryRun,
        reuse: opts.reuse,
        log: say,
        onPlan: (plan) => say(`pipeline ${loaded.config.run_dir}/${loaded.config.name}${opts.dryRun ? ' (dry run: nothing is run)' : ''}:\n${formatPlan(plan)}`),
      });
      if (opts.json) console.log(JSON.stringify(result));
      else if (!opts.dryRun) {
        const count = (s: string) => result.stages.filter((x) => x.status === s).length;
        const parts = [`${count('completed')} run`, `${count('skipped')} skipped`, ...(count('linked') ? [`${count('linked')} linked`] : []), ...(count('failed') ? [`${count('failed')} failed`] : [])];
        say(`pipeline ${result.ok ? 'done' : 'stopped'} in ${result.wall_time_s.toFixed(1)} s: ${parts.join(', ')}`);
      }
      if (error !== undefined) throw error;
    });

  configOptions(program.command('sweep'), true)
    .description('grid or random search over config keys; trials share the unchanged upstream stages and run as child processes')
    .option('--grid <key=v1,v2>', 'values of a key (repeatable; all combinations); integer ranges a..b or a..b:step (inclusive); a YAML list for values with commas: key=[a, b]', collect, [] as string[])
    .option('--random <n>', 'draw n random trials instead of the full grid', intArg('--random'))
    .option('--range <key=lo:hi>', 'uniform range for --random (integers if lo and hi are; lo:hi:log for log-uniform; repeatable)', collect, [] as string[])
    .option('--seed <n>', 'seed of the random draws', intArg('--seed'), 0)
    .option('--jobs <n>', "trials run at once, each a child process (default: the cores divided by the config's TensorFlow threads)", intArg('--jobs'))
    .option('--stage <stage>', 'first stage that differs between trials (default: the earliest a swept key belongs to); earlier ones run once and are shared')
    .option('--metric <name>', 'sort the summary by this metric, e.g. eval/gold_score, ppo/objective/kl (default: eval/gold_score, else eval/proxy_reward)')
    .option('--minimize', 'lower --metric is better')
    .option('--out <dir>', 'sweep directory (default: <run_dir>/<name>-sweep)')
    .option('--print-commands', 'print one shell command per trial and run nothing (Slurm arrays, GNU parallel)')
    .option('--json', 'print the result as one JSON object')
    .addHelpText(
      'after',
      `
Each trial is a full run directory <out>/trial-NNN/ whose shared stages are links to the base run
(runs/<name>/); summary.csv and summary.md (sorted by --metric) are rewritten as trials finish;
a failed trial is recorded with its exit code and last error line, and the others go on.
Every trial's config is validated first: a bad value stops the sweep before anything runs or is written.

Examples:
  rlhf sweep -c configs/ci.yaml --grid ppo.kl_coef=0.02,0.05,0.1,0.2 --jobs 2
  rlhf sweep -c configs/ci.yaml --grid seed=1..10 --jobs 1          # one method over 10 seeds
  rlhf sweep -c configs/ci.yaml --random 8 --range ppo.lr=1e-5:1e-3:log --range ppo.ppo_epochs=1:4 --seed 1
  rlhf sweep -c configs/sentiment.yaml --grid 'label.noise=[{type: none}, {type: flip, rate: 0.2}]' --metric eval/gold_score
  rlhf sweep -c configs/ci.yaml --grid ppo.kl_coef=0.05,0.1 --print-commands > trials.txt   # then: parallel < trials.txt`,
    )
    .action(
      async (opts: Omit<import('../workflow/sweep.js').SweepOptions, 'jobs'> & { jobs?: number; config: string; json?: boolean }) => {
        const loaded = await loadConfigFrom(opts);
        const { configThreads, jobsThatFit } = await import('../backend/threads.js');
        const jobs = opts.jobs ?? jobsThatFit(configThreads(loaded.config));
        const fs = await import('node:fs');
        const { runSweep, trialCommands } = await import('../workflow/sweep.js');
        const { WorkflowError } = await import('../workflow/errors.js');
        const result = await runSweep(loaded, opts.config, { ...opts, jobs, log: (line) => process.stderr.write(`${line}\n`) });
        if (opts.printCommands) {
          const commands = trialCommands(result);
          if (opts.json) console.log(JSON.stringify({ sweep_dir: result.sweep_dir, base_run: result.base_run, commands }));
          else for (const c of commands) console.log(c);
          return;
        }
        if (opts.json) console.log(JSON.stringify(result));
        else console.log(`${fs.readFileSync(result.summary_md, 'utf8')}\nsummary → ${result.summary_md} (and summary.csv)`);
        if (result.failed > 0) throw new WorkflowError(`${result.failed} of ${result.trials.length} trials failed (see ${result.summary_md})`);
      },
    );

  program
    .command('export')
    .description('write a checkpoint as a Hugging Face model directory (GPT-2: safetensors, config, tokenizer)')
    .argument('<checkpoint>', 'checkpoint directory (e.g. runs/NAME/ppo/final)')
    .requiredOption('--out <dir>', 'directory to write (transformers loads it with from_pretrained)')
    .option('--force', 'replace --out if it exists')
    .addHelpText(
      'after',
      `
A language model becomes GPT2LMHeadModel (a PPO policy's value head is left out); a reward
model becomes GPT2ForSequenceClassification whose score is rlhf's normalised reward (the
score bias and normalisation are folded into score.weight and ln_f.bias). Feed it what rlhf
scores: prompt + response + <|endoftext|>.

Examples:
  rlhf export runs/quickstart/pretrain/final --out hf/quickstart
  rlhf export runs/sentiment/train-reward/final --out hf/sentiment-rm --force`,
    )
    .action(async (checkpoint: string, opts: { out: string; force?: boolean }) => {
      const { exportToHf } = await import('../hf/export.js');
      const r = await exportToHf(checkpoint, opts.out, { force: opts.force });
      const left = r.leftOut.length ? ` (left out: ${r.leftOut.join(', ')})` : '';
      const folded = r.folded ? ` (score = ${r.folded.gain.toPrecision(6)}·(w·h + ${r.folded.scoreBias.toPrecision(6)}) + ${r.folded.bias.toPrecision(6)}, folded)` : '';
      console.log(`export done: ${r.architecture}${left}${folded} → ${r.out}`);
    });

  program
    .command('import')
    .description('read a GPT-2-family Hugging Face model directory into a checkpoint')
    .argument('<hf_dir>', 'directory with config.json, model.safetensors and tokenizer.json or vocab.json + merges.txt')
    .requiredOption('--out <checkpoint>', 'checkpoint directory to write (use it as sft.init_from, --checkpoint, ...)')
    .option('--force', 'replace --out if it exists')
    .addHelpText(
      'after',
      `
Refused with a one-line reason: other architectures, pytorch_model.bin without
model.safetensors, untied LM heads, activations other than gelu_new, non-float32 weights.

Examples:
  rlhf import ~/models/distilgpt2 --out checkpoints/distilgpt2
  rlhf import hf/quickstart --out runs/quickstart-back --force`,
    )
    .action(async (dir: string, opts: { out: string; force?: boolean }) => {
      const { importFromHf } = await import('../hf/import.js');
      const r = await importFromHf(dir, opts.out, { force: opts.force });
      const m = r.model;
      console.log(`import done: ${r.head === 'lm' ? 'language model' : 'scorer'}, ${m.n_layer} layers × ${m.d_model}, vocab ${m.vocab_size} (${r.tokenizer} tokenizer)${r.restored ? ', rlhf export restored exactly' : ''} → ${r.out}`);
    });

  program
    .command('verify')
    .description('check a run: recorded hashes against the files on disk, then re-run every completed stage and compare metrics and checkpoints')
    .argument('<run_dir>', 'run directory (runs/<name>)')
    .option('--stage <stage>', 'only this stage directory (e.g. ppo, round-2/ppo)')
    .option('--quick', 'integrity check only: recorded sha256s against the files (no re-run)')
    .option('--keep', 'keep the temporary re-run directories')
    .option('--json', 'print the result as one JSON object')
    .addHelpText(
      'after',
      `
Each stage is re-run from its own config.yaml in a temporary directory, reading the same
parent checkpoints; metrics.jsonl must match line by line (wall-clock fields such as
tokens_per_s, elapsed_s, time/*, debug/* aside) and every output file byte for byte.
The first difference is named (file, line and field). Exit code 2 on any difference.

Examples:
  rlhf verify runs/ci
  rlhf verify runs/ci --quick
  rlhf verify runs/sentiment --stage ppo --json`,
    )
    .action(async (runDir: string, opts: { stage?: string; quick?: boolean; keep?: boolean; json?: boolean }) => {
      // Re-runs reproduce bits only with the thread count and oneDNN mode the run had; TensorFlow reads both on load.
      // An explicit TF_ENABLE_ONEDNN_OPTS wins, and verify then names the mismatch as the reason.
      const recorded = (await import('../workflow/run-numerics.js')).recordedNumerics(runDir);
      if (recorded.threads !== undefined) (await import('../backend/threads.js')).configureThreads(recorded.threads);
      if (recorded.onednn !== undefined) process.env.TF_ENABLE_ONEDNN_OPTS ??= recorded.onednn ? '1' : '0';
      const { verifyRun } = await import('../workflow/verify.js');
      const { VerifyError } = await import('../workflow/errors.js');
      const result = await verifyRun(runDir, { ...opts, log: (line) => process.stderr.write(`verify: ${line}\n`) });
      if (opts.json) console.log(JSON.stringify(result));
      else {
        const width = Math.max(...result.stages.map((s) => s.stage.length));
        for (const s of result.stages) {
          const rerun = s.rerun === 'not run' ? '' : `  re-run ${s.rerun}${s.wall_time_s !== undefined ? ` (${s.wall_time_s.toFixed(1)} s)` : ''}`;
          console.log(`  ${s.stage.padEnd(width)}  integrity ${s.integrity}${rerun}${s.note ? `  [${s.note}]` : ''}`);
        }
        if (result.ok) console.log(`verify: ${runDir} ${opts.quick ? 'matches its recorded hashes' : 'reproduces exactly'} (${result.wall_time_s.toFixed(1)} s)`);
      }
      if (!result.ok) throw new VerifyError(`verify failed: ${result.first_difference}`);
    });

  return program;
}

interface StageFlags {
  config: string;
  set: string[];
  force?: boolean;
  resume?: boolean;
  allowConfigChange?: boolean;
}

type StageRunner = (
  loaded: import('../config/load.js').LoadedConfig,
  opts: import('../stages/supervised.js').StageOptions,
) => Promise<{ finalPath: string; metrics: Record<string, number> }>;

interface SampleFlags {
  config?: string;
  set: string[];
  checkpoint?: string;
  stage?: string;
  prompt: string[];
  promptsFile?: string;
  num?: number;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  cache: boolean;
  bestOf?: number;
  rewardModel?: string;
  json?: boolean;
}

function usage(message: string): never {
  throw new UsageError(message);
}

async function sampleRequest(opts: SampleFlags) {
  if (!opts.config && !opts.checkpoint) throw new UsageError('sample: give --checkpoint DIR or -c CONFIG');
  // Threads first (from the config, or "auto" for the checkpoint's width): TensorFlow fixes them on load.
  const loaded = opts.config ? await loadConfigFrom({ config: opts.config, set: opts.set }) : undefined;
  if (!loaded) {
    const width = (await import('../checkpoint/peek.js')).checkpointWidth(opts.checkpoint!);
    const { configureThreads, resolveThreads } = await import('../backend/threads.js');
    if (width !== undefined) configureThreads(resolveThreads('auto', width));
  }
  const { checkpointForConfig, readPromptsFile } = await import('../stages/sample.js');
  const defaults = loaded?.config.sample;
  const prompts = [...opts.prompt, ...(opts.promptsFile ? readPromptsFile(opts.promptsFile) : [])];
  const req = {
    checkpoint: opts.checkpoint ?? checkpointForConfig(loaded!, opts.stage),
    prompts: prompts.length ? prompts : (defaults?.prompts ?? ['']),
    num: opts.num ?? defaults?.num ?? 1,
    maxNewTokens: opts.maxNewTokens ?? defaults?.max_new_tokens ?? 200,
    temperature: opts.temperature ?? defaults?.temperature ?? 1,
    topK: opts.topK ?? defaults?.top_k ?? 0,
    topP: opts.topP ?? defaults?.top_p ?? 1,
    seed: opts.seed ?? defaults?.seed ?? 0,
    useCache: opts.cache,
    bestOf: opts.bestOf === undefined ? undefined : { n: opts.bestOf, rewardModel: opts.rewardModel ?? checkpointForConfig(loaded ?? usage('--best-of: give --reward-model DIR, or -c CONFIG whose train-reward stage completed'), 'train-reward') },
  };
  if (opts.rewardModel !== undefined && opts.bestOf === undefined) throw new UsageError('--reward-model goes with --best-of N');
  if (req.bestOf && req.bestOf.n < 1) throw new UsageError('--best-of must be at least 1');
  if (req.bestOf && req.temperature === 0) throw new UsageError('--best-of needs sampling: with --temperature 0 every candidate is the same');
  if (req.num < 1) throw new UsageError('--num must be at least 1');
  if (req.maxNewTokens < 1) throw new UsageError('--max-new-tokens must be at least 1');
  if (!(req.temperature >= 0)) throw new UsageError('--temperature must be >= 0 (0 = greedy)');
  if (req.topK < 0) throw new UsageError('--top-k must be >= 0');
  if (!(req.topP > 0 && req.topP <= 1)) throw new UsageError('--top-p must be in (0, 1]');
  return req;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    const e = err as Error & { code?: string; exitCode?: number };
    if (e.code?.startsWith('commander.')) return e.exitCode ?? 2; // commander already printed it
    const kind = e.constructor?.name ?? e.name;
    if (USER_ERRORS.has(kind) || USER_ERRORS.has(e.name)) {
      process.stderr.write(`rlhf: ${e.message.split('\n')[0]}\n`);
      return kind === 'InterruptedError' ? 130 : 2;
    }
    // The file system refused (full disk, read-only mount, permissions): the user's to fix, not a bug.
    const refused = (await import('../util/fs.js')).describeFsError(e);
    if (refused) {
      process.stderr.write(`rlhf: ${refused}\n`);
      return 3;
    }
    process.stderr.write(`rlhf: internal error: ${e.message}\n${process.env.RLHF_DEBUG ? `${e.stack}\n` : '(set RLHF_DEBUG=1 for a stack trace)\n'}`);
    return 1;
  }
}
