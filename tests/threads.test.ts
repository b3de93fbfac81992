import { describe, it, expect, afterEach } from 'vitest';
import { AUTO_ONE_THREAD_MAX_D_MODEL, configureThreads, jobsThatFit, resolveThreads, threadsInEffect } from '../src/backend/threads.js';

const saved = { intra: process.env.TF_NUM_INTRAOP_THREADS, caller: process.env.TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD };

afterEach(() => {
  for (const [key, value] of [['TF_NUM_INTRAOP_THREADS', saved.intra], ['TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD', saved.caller]] as const) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
});

describe('TensorFlow thread count', () => {
  it('auto is one thread up to the cut-off width, every core above it; a number is taken as is', () => {
    expect(resolveThreads('auto', 128, 8)).toBe(1);
    expect(resolveThreads('auto', AUTO_ONE_THREAD_MAX_D_MODEL, 8)).toBe(1);
    expect(resolveThreads('auto', AUTO_ONE_THREAD_MAX_D_MODEL + 1, 8)).toBe(8);
    expect(resolveThreads('auto', 384, 2)).toBe(2);
    expect(resolveThreads(3, 64, 2)).toBe(3);
  });

  it('fits as many single-thread jobs as cores, and at least one job however many threads each wants', () => {
    expect(jobsThatFit(1, 2)).toBe(2);
    expect(jobsThatFit(2, 2)).toBe(1);
    expect(jobsThatFit(2, 8)).toBe(4);
    expect(jobsThatFit(3, 2)).toBe(1);
  });

  it('sets the environment TensorFlow reads on load, oneDNN on the caller thread only for one thread', () => {
    configureThreads(1);
    expect(process.env.TF_NUM_INTRAOP_THREADS).toBe('1');
    expect(process.env.TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD).toBe('1');
    expect(threadsInEffect()).toBe(1);
    configureThreads(2);
    expect(process.env.TF_NUM_INTRAOP_THREADS).toBe('2');
    expect(process.env.TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD).toBeUndefined();
    expect(threadsInEffect()).toBe(2);
  });
});
