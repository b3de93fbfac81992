/** Runs `fn` with environment variable `name` set to `value` (unset for undefined), then restores what was there. */
export function withEnv<T>(name: string, value: string | undefined, fn: () => T): T {
  const was = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return fn();
  } finally {
    if (was === undefined) delete process.env[name];
    else process.env[name] = was;
  }
}
