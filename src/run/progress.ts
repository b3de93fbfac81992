import cliProgress from 'cli-progress';

/**
 * Training progress: a cli-progress bar on an interactive terminal, nothing
 * otherwise (the stage's log lines then go to stderr instead).
 */
export interface Progress {
  update(step: number, fields: Record<string, string>): void;
  stop(): void;
}

export function progressEnabled(): boolean {
  return Boolean(process.stderr.isTTY) && !process.env.CI;
}

export function createProgress(label: string, total: number, start: number, enabled = progressEnabled()): Progress {
  if (!enabled) return { update: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} {bar} {value}/{total} | {metrics} | ETA {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
      noTTYOutput: false,
    },
    process.env.NO_COLOR ? cliProgress.Presets.legacy : cliProgress.Presets.shades_classic,
  );
  bar.start(total, start, { metrics: '' });
  return {
    update(step, fields) {
      bar.update(step, { metrics: Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' | ') });
    },
    stop() {
      bar.stop();
    },
  };
}
