import type { execa } from 'execa';
import { spawnAgentProcess } from '../agents/agent-process.js';
import type { CheckResult } from '../core/types.js';

export interface CheckOptions {
  cwd: string;
  timeoutMs: number;
  /** How many trailing characters of the output are kept (evidence and feedback for the next prompt). */
  tailChars?: number;
  /** A check printing more than this is stopped: its output is not worth more memory or time. */
  maxOutputBytes?: number;
  /** After SIGTERM on timeout, how long the check gets before SIGKILL. */
  killGraceMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs the user's acceptance checks (`npm test`, `tsc`, a linter...) in the task's directory, one after the
 * other. These are the only commands Obra runs through a shell, because the user wrote them as shell commands.
 * Each gets a timeout (its whole process group is killed), only the tail of its output is kept, and a check
 * that cannot start, hangs or floods its output becomes a failed result with a note — never an exception.
 */
export async function runChecks(commands: string[], options: CheckOptions): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const command of commands) {
    if (options.signal?.aborted) break;
    results.push(await runCheck(command, options));
  }
  return results;
}

export async function runCheck(command: string, options: CheckOptions): Promise<CheckResult> {
  const started = Date.now();
  const tail = new OutputTail(options.tailChars ?? 1500);
  const maxBytes = options.maxOutputBytes ?? 16 * 1024 * 1024;
  const notes: string[] = [];
  let timedOut = false;
  let flooded = false;

  let subprocess: ReturnType<typeof execa>;
  try {
    // Its own process group, so a timeout kills what the shell started too (npm → node → workers); and, like an
    // agent call, it dies with Obra: a check left running would race the resumed run's own check in the worktree.
    subprocess = spawnAgentProcess(command, [], {
      shell: true,
      cwd: options.cwd,
      reject: false,
      buffer: false,
      stdin: 'ignore',
      env: { CI: process.env.CI ?? '1', FORCE_COLOR: '0' },
    });
  } catch (error) {
    return { command, exitCode: null, durationMs: Date.now() - started, timedOut: false, outputTail: `the check could not start: ${(error as Error).message}` };
  }

  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (subprocess.pid) process.kill(-subprocess.pid, signal);
    } catch {
      // already gone
    }
  };
  const terminate = () => {
    killGroup('SIGTERM');
    setTimeout(() => killGroup('SIGKILL'), options.killGraceMs ?? 2000).unref();
  };
  const onData = (chunk: Buffer) => {
    tail.push(chunk);
    if (!flooded && tail.bytes > maxBytes) {
      flooded = true;
      killGroup('SIGKILL');
    }
  };
  subprocess.stdout?.on('data', onData);
  subprocess.stderr?.on('data', onData);

  const timer = setTimeout(() => {
    timedOut = true;
    terminate();
  }, options.timeoutMs);
  const onAbort = () => killGroup('SIGKILL');
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const result = await subprocess;
  clearTimeout(timer);
  options.signal?.removeEventListener('abort', onAbort);

  let exitCode: number | null = typeof result.exitCode === 'number' ? result.exitCode : null;
  if (timedOut) {
    exitCode = null;
    notes.push(`(the check timed out after ${formatSeconds(options.timeoutMs)} and was killed)`);
  } else if (flooded) {
    exitCode = null;
    notes.push(`(the check printed more than ${maxBytes} bytes and was stopped; task.check_max_output_bytes sets the limit)`);
  } else if (options.signal?.aborted) {
    exitCode = null;
    notes.push('(the check was stopped because the run was stopped)');
  } else if (exitCode === 127) {
    notes.push('(exit 127: the shell did not find the command — check its spelling and PATH)');
  } else if (exitCode === 126) {
    notes.push('(exit 126: the command is not executable)');
  } else if (exitCode === null) {
    const failure = (result as { code?: string; message?: string; signal?: string }).signal
      ? `the check was killed by ${(result as { signal?: string }).signal}`
      : `the check could not run: ${(result as { code?: string }).code ?? ''} ${(result as { shortMessage?: string }).shortMessage ?? ''}`.trim();
    notes.push(`(${failure})`);
  }
  const outputTail = [tail.text(), ...notes].filter(Boolean).join('\n').trim();
  return { command, exitCode, durationMs: Date.now() - started, timedOut, outputTail };
}

/** Keeps the last `chars` characters of a stream of chunks, however much flows through it. */
export class OutputTail {
  bytes = 0;
  private kept = '';
  private cut = false;

  constructor(private readonly chars: number) {}

  push(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    this.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    this.kept += text;
    // Trim only now and then, so a stream of small chunks does not copy the buffer every time.
    if (this.kept.length > this.chars * 4) {
      this.kept = this.kept.slice(-this.chars);
      this.cut = true;
    }
  }

  text(): string {
    const clean = this.kept.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    return clean.length > this.chars || this.cut ? `…${clean.slice(-this.chars)}` : clean;
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}
