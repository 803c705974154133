import { spawnAgentProcess } from './agent-process.js';
import type { RawCall } from './classify.js';

/**
 * Runs one agent CLI call as a child process — the one place the non-Claude agents spawn, so that the way agent
 * processes are started and killed can change here alone. The CLI is started by spawnAgentProcess: its own process
 * group (Gemini CLI and Qwen Code re-launch themselves as a child that outlives a killed parent: the whole group is
 * signalled), guarded by this process's reaper (the group dies with Obra, SIGKILL included), the
 * prompt on stdin which is then closed (Codex and opencode wait forever on an open stdin), a wall-clock limit,
 * an idle watchdog fed by every output line, and the run's abort signal. Never throws for what the CLI did.
 */
export interface CliRun {
  file: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed; stdin is closed at once without it. */
  input?: string;
  timeoutMs: number;
  /** Milliseconds without a line on stdout before the call is killed as stalled (null: no watchdog). */
  idleTimeoutMs: number | null;
  killGraceMs?: number;
  maxOutputBytes?: number;
  signal?: AbortSignal;
  /** Every complete stdout line, as it arrives; returns false for a line that is not progress (a keep-alive). */
  onLine?: (line: string) => boolean | void;
  onSpawn?: (pid: number) => void;
}

const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
/** A line longer than this is not progress worth parsing (and must not grow a buffer forever). */
const MAX_LINE = 1024 * 1024;

export async function runCli(run: CliRun): Promise<RawCall> {
  const maxOutputBytes = run.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const subprocess = spawnAgentProcess(run.file, run.args, {
    cwd: run.cwd,
    ...(run.input === undefined ? { stdin: 'ignore' as const } : { input: run.input }),
    env: run.env,
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
    maxBuffer: { stdout: maxOutputBytes, stderr: Math.min(maxOutputBytes, 4 * 1024 * 1024) },
  });
  if (subprocess.pid) run.onSpawn?.(subprocess.pid);

  let stoppedBy: RawCall['stoppedBy'] = null;
  let silentMs = 0;
  let last = Date.now();
  const stop = (why: NonNullable<RawCall['stoppedBy']>) => {
    stoppedBy ??= why;
    killGroup(subprocess.pid, 'SIGTERM');
    setTimeout(() => killGroup(subprocess.pid, 'SIGKILL'), run.killGraceMs ?? 2000).unref();
  };
  const timer = setTimeout(() => stop('timeout'), run.timeoutMs);
  const onAbort = () => stop('abort');
  run.signal?.addEventListener('abort', onAbort, { once: true });
  if (run.signal?.aborted) onAbort();
  let watchdog: NodeJS.Timeout | null = null;
  const arm = (ms: number) => {
    watchdog = setTimeout(() => {
      const silent = Date.now() - last;
      if (silent < run.idleTimeoutMs!) return arm(run.idleTimeoutMs! - silent);
      silentMs = silent;
      stop('idle');
    }, ms);
    watchdog.unref();
  };
  if (run.idleTimeoutMs) arm(run.idleTimeoutMs);

  let pending = '';
  subprocess.stdout?.on('data', (chunk: Buffer | string) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop() ?? '';
    if (pending.length > MAX_LINE) pending = '';
    if (!lines.length) last = Date.now();
    for (const line of lines) if (run.onLine?.(line.trim()) !== false) last = Date.now();
  });

  const result = await subprocess;
  clearTimeout(timer);
  if (watchdog) clearTimeout(watchdog);
  run.signal?.removeEventListener('abort', onAbort);
  // Anything the CLI left running in its group goes too.
  killGroup(subprocess.pid, 'SIGKILL');
  const r = result as { failed?: boolean; code?: string; exitCode?: number; signal?: string; originalMessage?: string; isMaxBuffer?: boolean };
  const spawnError = r.failed && typeof r.exitCode !== 'number' && !r.signal && r.code ? `${r.code}: ${r.originalMessage ?? ''}`.trim() : null;
  return {
    stdout: String(result.stdout ?? ''),
    stderr: String(result.stderr ?? ''),
    exitCode: typeof result.exitCode === 'number' ? result.exitCode : null,
    signal: result.signal ?? null,
    stoppedBy,
    timeoutMs: run.timeoutMs,
    idleMs: silentMs,
    spawnError,
    spawnCode: r.code ?? null,
    overflow: Boolean(r.isMaxBuffer),
    maxOutputBytes,
  };
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}
