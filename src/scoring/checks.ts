import { execa } from 'execa';
import type { CheckResult } from '../core/types.js';

/**
 * Runs the user's acceptance checks (`npm test`, `tsc`, a linter...) in the task's directory. These are the
 * only commands Obra runs through a shell, because the user wrote them as shell commands. Each gets a timeout
 * (its whole process group is killed), and only the tail of its output is kept.
 */
export async function runChecks(
  commands: string[],
  options: { cwd: string; timeoutMs: number; tailChars?: number; signal?: AbortSignal },
): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const command of commands) results.push(await runCheck(command, options));
  return results;
}

async function runCheck(command: string, options: { cwd: string; timeoutMs: number; tailChars?: number; signal?: AbortSignal }): Promise<CheckResult> {
  const started = Date.now();
  const subprocess = execa(command, {
    shell: true,
    cwd: options.cwd,
    reject: false,
    all: true,
    detached: true,
    stdin: 'ignore',
    // A flooding check must not eat the memory: keep at most 8 MB, the tail is what matters.
    maxBuffer: 8 * 1024 * 1024,
  });
  let timedOut = false;
  const kill = (signal: NodeJS.Signals) => {
    try {
      if (subprocess.pid) process.kill(-subprocess.pid, signal);
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill('SIGTERM');
    setTimeout(() => kill('SIGKILL'), 2000).unref();
  }, options.timeoutMs);
  const onAbort = () => kill('SIGKILL');
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const result = await subprocess;
  clearTimeout(timer);
  options.signal?.removeEventListener('abort', onAbort);
  const output = String(result.all ?? '');
  const tailChars = options.tailChars ?? 1500;
  let tail = output.length > tailChars ? `…${output.slice(-tailChars)}` : output;
  if (timedOut) tail += `\n(check timed out after ${(options.timeoutMs / 1000).toFixed(0)}s and was killed)`;
  if ((result as { isMaxBuffer?: boolean }).isMaxBuffer) tail += '\n(check printed too much output and was stopped)';
  return {
    command,
    exitCode: timedOut ? null : typeof result.exitCode === 'number' ? result.exitCode : null,
    durationMs: Date.now() - started,
    timedOut,
    outputTail: tail.trim(),
  };
}
