import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // tfjs-node's native runtime is process-global: run test files in forked
    // processes, two at a time to match the 2-core machine.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    // stage log lines still go to each run's log.jsonl; keep the test output readable.
    // Test configs are small, so "threads: auto" means one TensorFlow thread
    // (src/backend/threads.ts); stages refuse to run on another count.
    env: { RLHF_LOG_STDERR: '0', TF_NUM_INTRAOP_THREADS: '1', TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD: '1' },
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
