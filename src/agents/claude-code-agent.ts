import { randomUUID } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { UserError } from '../core/errors.js';
import type { AgentCallRecord, AgentOutcome, SessionMode } from '../core/types.js';
import type { Agent, AgentCallRequest, AgentProgress, CutCall } from './agent.js';
import { killProcessGroup, spawnAgentProcess } from './agent-process.js';
import { turnOf } from './claude-transcript.js';
import { classify, isUuid, ROOT_ADVICE } from './classify.js';
import { denialsOf } from './permissions.js';
import { processSessionLocks, type SessionLocks } from './session-lock.js';
import { countApiRetries, lastUsageInfo, streamEventsOf } from './stream-events.js';
import { claudeTokens } from './usage.js';
import { sessionBusy } from './locked-call.js';

export { classify } from './classify.js';

export interface ClaudeCodeAgentOptions {
  /** Path or name of the `claude` binary. */
  command: string;
  /** Milliseconds one call may run before its whole process tree is killed. */
  timeoutMs: number;
  /** Milliseconds a call may print nothing before it is killed as stalled (the iteration re-issues it). */
  idleTimeoutMs?: number;
  /** Passed to the CLI as API_TIMEOUT_MS: how long it waits for the API's response headers before retrying. */
  apiTimeoutMs?: number;
  extraArgs?: string[];
  model?: string;
  maxTurns?: number;
  permissionMode?: string;
  /** Permission rules allowed on every call (one `--allowedTools` each). */
  allowedTools?: string[];
  /** `--dangerously-skip-permissions`: every tool use is allowed. */
  skipPermissions?: boolean;
  appendSystemPrompt?: string;
  /** Variables added to this process's environment for the CLI (CLAUDE_CONFIG_DIR, ANTHROPIC_BASE_URL...). */
  env?: Record<string, string>;
  locks?: SessionLocks;
  /** Output beyond this many bytes stops the call (malformed), instead of growing memory without end. */
  maxOutputBytes?: number;
  /** Time between SIGTERM and SIGKILL when a call is stopped. */
  killGraceMs?: number;
}

/** What a call record keeps of the CLI's output: enough to debug and replay, bounded so journals stay small. */
export const KEPT_STDOUT_CHARS = 256 * 1024;
export const KEPT_STDERR_CHARS = 16 * 1024;
const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024 * 1024;
/** A stream-json line longer than this is not progress worth parsing (and must not grow a buffer forever). */
const MAX_PROGRESS_LINE = 1024 * 1024;

type CallBase = { argv: string[]; sessionId: string; mode: SessionMode; startedAt: number };

/**
 * Runs the Claude Code CLI headless: `claude -p --output-format stream-json --verbose` with the prompt on
 * stdin (no argv length limit, no shell), one session flag set, from the task's working directory (sessions
 * belong to a directory). Every way the call can end is classified into an `AgentOutcome`.
 *
 * The CLI has no session lock (two concurrent `--resume U` both run and branch the conversation), so each call
 * first takes Obra's own lock on its session; a busy lock is answered at once with `sessionBusy` (+ holder)
 * and the iteration machine waits in `retryingSessionLock` until the release event or its backoff.
 */
export class ClaudeCodeAgent implements Agent {
  readonly name = 'claude-code';
  private readonly locks: SessionLocks;

  private readonly env: NodeJS.ProcessEnv;

  constructor(readonly options: ClaudeCodeAgentOptions) {
    this.locks = options.locks ?? processSessionLocks;
    this.env = { ...process.env, ...(options.apiTimeoutMs ? { API_TIMEOUT_MS: String(Math.round(options.apiTimeoutMs)) } : {}), ...options.env };
  }

  sessionFile(sessionId: string, workdir: string): string {
    return transcriptPath(sessionId, workdir, this.env);
  }

  preflight(): void {
    const skipsAll = this.options.skipPermissions || this.options.permissionMode === 'bypassPermissions';
    if (skipsAll && process.getuid?.() === 0 && this.env.IS_SANDBOX !== '1') {
      const how = this.options.skipPermissions ? 'agent.local.dangerously_skip_permissions' : 'agent.local.permission_mode: bypassPermissions';
      throw new UserError(`${how} is refused by Claude Code when it runs as root (uid 0) — ${ROOT_ADVICE}`);
    }
    const found = findExecutable(this.options.command, this.env);
    if (found === 'missing') {
      throw new UserError(`the agent binary "${this.options.command}" was not found — install Claude Code (npm i -g @anthropic-ai/claude-code) or pass --agent-bin <path> / set OBRA_CLAUDE_BIN`);
    }
    if (found === 'not-executable') throw new UserError(`the agent binary "${this.options.command}" is not executable — chmod +x it or pass another --agent-bin`);
    if (found === 'directory') throw new UserError(`the agent binary "${this.options.command}" is a directory — point --agent-bin at the claude executable inside it`);
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.locks.onRelease(sessionId, listener);
  }

  /**
   * A call cut by a crash, as the session's transcript tells it (see Agent.recover): an answer the CLI finished
   * is adopted as the call's record — no process runs, its cost is not known — and a prompt left without one is
   * reported so that the call continues it.
   */
  recover(request: AgentCallRequest): CutCall {
    const sessionId = request.sessionId;
    if (!sessionId || !isUuid(sessionId)) return { kind: 'absent' };
    const path = transcriptPath(sessionId, request.workdir, this.env);
    if (!existsSync(path)) return { kind: 'absent' };
    // Read under the session's lock: an older call still writing (its Obra and reaper both died) is stopped first.
    const lock = this.locks.tryAcquire(sessionId);
    if (!lock.ok) return { kind: 'absent' };
    let turn: ReturnType<typeof turnOf>;
    try {
      turn = turnOf(readFileSync(path, 'utf8'), request.prompt);
    } finally {
      lock.release();
    }
    const stopped = lock.stopped ? { stoppedEarlierCall: lock.stopped } : {};
    if (lock.stopped) request.onProgress?.({ kind: 'earlierCallStopped', sessionId, pgid: lock.stopped.pgid, ownerPid: lock.stopped.ownerPid, message: earlierCallMessage(sessionId, lock.stopped) });
    if (turn.kind === 'absent') return { ...turn, ...stopped };
    if (turn.kind === 'unanswered') {
      return { ...stopped, kind: 'unanswered', note: `the call cut by a crash left its prompt in session ${sessionId} without a complete answer: the agent was asked to continue it, not given the prompt again` };
    }
    const base = { argv: [], sessionId, mode: request.mode, startedAt: Date.now() };
    const result = { type: 'result' as const, subtype: 'success', is_error: false, result: turn.text, session_id: sessionId, duration_ms: 0, num_turns: turn.assistantEntries, total_cost_usd: 0, stop_reason: 'end_turn' };
    const record = finish(base, { kind: 'answer', result }, null, null, '', '');
    return {
      kind: 'answered',
      record: {
        ...record,
        ...stopped,
        recovered: { how: 'adopted', note: `the call cut by a crash had finished: its answer was found in session ${sessionId}'s transcript and adopted instead of asking again (its cost is not known)` },
      },
    };
  }


  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const startedAt = Date.now();
    const sessionId = request.sessionId ?? randomUUID();
    if (!isUuid(sessionId)) {
      // The CLI would refuse it too ("Invalid session ID. Must be a valid UUID."): say so without starting it.
      const base = { argv: [this.options.command], sessionId, mode: request.mode, startedAt };
      return finish(base, { kind: 'fatal', message: `the session id "${sessionId}" is not a UUID — Claude Code session ids look like 123e4567-e89b-12d3-a456-426614174000` }, null, null, '', '');
    }

    // The lock is on the session the call reads: for a fork that is the parent.
    const lock = this.locks.tryAcquire(sessionId);
    if (!lock.ok) {
      const base = { argv: [this.options.command, ...this.buildArgs(sessionId, request.mode, request.allowedTools)], sessionId, mode: request.mode, startedAt };
      return finish(base, sessionBusy(sessionId, lock.holder), null, null, '', '');
    }
    try {
      // Decided under the lock: nobody else can create the transcript between the check and the call.
      const mode = this.effectiveMode(request.mode, sessionId, request.workdir);
      const base = { argv: [this.options.command, ...this.buildArgs(sessionId, mode, request.allowedTools)], sessionId, mode, startedAt };
      if (lock.stopped) request.onProgress?.({ kind: 'earlierCallStopped', sessionId, pgid: lock.stopped.pgid, ownerPid: lock.stopped.ownerPid, message: earlierCallMessage(sessionId, lock.stopped) });
      const record = await this.run(request, base, (pgid) => lock.recordChild(pgid));
      return lock.stopped ? { ...record, stoppedEarlierCall: lock.stopped } : record;
    } finally {
      lock.release();
    }
  }

  /**
   * `--session-id U` creates U and fails forever once U exists, so a "create" whose transcript is already on
   * disk (an earlier call that failed or was killed after the CLI wrote it) must resume instead.
   */
  private effectiveMode(mode: SessionMode, sessionId: string, workdir: string): SessionMode {
    if (mode !== 'create') return mode;
    return existsSync(transcriptPath(sessionId, workdir, this.env)) ? 'resume' : 'create';
  }

  private buildArgs(sessionId: string, mode: SessionMode, callRules: string[] = []): string[] {
    const o = this.options;
    // One flag per rule: a rule may hold commas and spaces (`Bash(node -e "a, b")`), which a joined list would split.
    const rules = [...new Set([...(o.allowedTools ?? []), ...callRules])];
    const session =
      mode === 'create' ? ['--session-id', sessionId]
      : mode === 'resume' ? ['--resume', sessionId]
      : ['--resume', sessionId, '--fork-session'];
    return [
      '-p',
      '--output-format', 'stream-json',
      '--verbose',
      ...session,
      ...(o.model ? ['--model', o.model] : []),
      ...(o.maxTurns ? ['--max-turns', String(o.maxTurns)] : []),
      ...(o.skipPermissions ? ['--dangerously-skip-permissions'] : o.permissionMode ? ['--permission-mode', o.permissionMode] : []),
      ...rules.flatMap((rule) => ['--allowedTools', rule]),
      ...(o.appendSystemPrompt ? ['--append-system-prompt', o.appendSystemPrompt] : []),
      ...(o.extraArgs ?? []),
    ];
  }

  private async run(request: AgentCallRequest, base: CallBase, onSpawn?: (pgid: number) => void): Promise<AgentCallRecord> {
    const [file, ...args] = base.argv;
    const maxOutputBytes = this.options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
    // Its own process group (a timeout or abort kills the CLI *and* everything it started), and dies with Obra.
    const subprocess = spawnAgentProcess(file!, args, {
      cwd: request.workdir,
      input: request.prompt,
      env: this.env,
      extendEnv: false,
      reject: false,
      stripFinalNewline: false,
      // Past the limit execa stops the CLI: a flood costs at most this much memory, not gigabytes.
      maxBuffer: { stdout: maxOutputBytes, stderr: Math.min(maxOutputBytes, 4 * 1024 * 1024) },
    });
    if (subprocess.pid) onSpawn?.(subprocess.pid);
    request.onProgress?.({ kind: 'started', sessionId: base.sessionId, argv: base.argv });

    let stoppedBy: 'timeout' | 'abort' | 'idle' | null = null;
    const stop = (why: 'timeout' | 'abort' | 'idle') => {
      stoppedBy ??= why;
      killProcessGroup(subprocess.pid, 'SIGTERM');
      const hard = setTimeout(() => killProcessGroup(subprocess.pid, 'SIGKILL'), this.options.killGraceMs ?? 2000);
      hard.unref();
    };
    const timer = setTimeout(() => stop('timeout'), this.options.timeoutMs);
    const onAbort = () => stop('abort');
    request.signal?.addEventListener('abort', onAbort, { once: true });
    if (request.signal?.aborted) onAbort();
    // The watchdog: a working agent prints a stream-json line for every step; silence means a hung call.
    const watchdog = new Watchdog(this.options.idleTimeoutMs ?? null, () => stop('idle'));
    watchStream(subprocess.stdout, (line) => {
      const events = streamEventsOf(line);
      if (!events.every((e) => e.kind === 'keepAlive') || !events.length) watchdog.activity();
      if (!request.onProgress) return;
      for (const event of events) {
        if (event.kind === 'text' || event.kind === 'tool' || event.kind === 'apiRetry') request.onProgress(event);
        else if (event.kind === 'usage') request.onProgress({ kind: 'usage', status: event.info.status, limitType: event.info.limitType, resetsAt: event.info.resetsAt, utilization: event.info.utilization });
      }
    }, () => watchdog.activity());

    const result = await subprocess;
    clearTimeout(timer);
    watchdog.stop();
    request.signal?.removeEventListener('abort', onAbort);

    const stdout = String(result.stdout ?? '');
    const stderr = String(result.stderr ?? '');
    const exitCode = typeof result.exitCode === 'number' ? result.exitCode : null;
    const signal = result.signal ?? null;
    const outcome = classify({
      stdout,
      stderr,
      exitCode,
      signal,
      stoppedBy,
      timeoutMs: this.options.timeoutMs,
      idleMs: watchdog.silentMs,
      spawnError: spawnErrorOf(result),
      overflow: Boolean((result as { isMaxBuffer?: boolean }).isMaxBuffer),
      maxOutputBytes,
    });
    const record = finish(base, outcome, exitCode, signal, clipMiddle(stdout, KEPT_STDOUT_CHARS), clipMiddle(stderr, KEPT_STDERR_CHARS));
    const usage = lastUsageInfo(stdout);
    const apiRetries = countApiRetries(stdout);
    return {
      ...record,
      ...(apiRetries ? { apiRetries } : {}),
      ...(usage ? { usage: { status: usage.status, limitType: usage.limitType, resetsAt: usage.resetsAt, utilization: usage.utilization } } : {}),
    };
  }
}

/** Fires `onSilence` once no activity was seen for `idleMs` (null: never). One timer, re-armed only when it fires. */
class Watchdog {
  private last = Date.now();
  private timer: NodeJS.Timeout | null = null;
  silentMs = 0;

  constructor(
    private readonly idleMs: number | null,
    private readonly onSilence: () => void,
  ) {
    if (idleMs) this.arm(idleMs);
  }

  activity(): void {
    this.last = Date.now();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      const silent = Date.now() - this.last;
      if (silent < this.idleMs!) return this.arm(this.idleMs! - silent);
      this.silentMs = silent;
      this.timer = null;
      this.onSilence();
    }, ms);
    this.timer.unref();
  }
}

function finish(base: CallBase, outcome: AgentOutcome, exitCode: number | null, signal: string | null, stdout: string, stderr: string): AgentCallRecord {
  const finishedAt = Date.now();
  // A forked or brand-new session reports its real id in the result.
  const sessionId = outcome.kind === 'answer' && outcome.result.session_id ? outcome.result.session_id : base.sessionId;
  const permissionDenials = outcome.kind === 'answer' ? denialsOf(outcome.result) : [];
  const tokens = outcome.kind === 'answer' ? claudeTokens(outcome.result) : null;
  return {
    ...base,
    sessionId,
    outcome,
    exitCode,
    signal,
    stdout,
    stderr,
    durationMs: finishedAt - base.startedAt,
    finishedAt,
    ...(permissionDenials.length ? { permissionDenials } : {}),
    ...(tokens ? { tokens } : {}),
  };
}

export function earlierCallMessage(sessionId: string, earlier: { pgid: number; ownerPid: number }): string {
  return `session ${sessionId} still had a call running (process group ${earlier.pgid}) from Obra process ${earlier.ownerPid}, which is gone: killed it before this call`;
}

/** Keeps the start and the end (where stream-json's result line is) of a long text. */
export function clipMiddle(text: string, max: number): string {
  if (text.length <= max) return text;
  const head = Math.floor(max / 4);
  const tail = max - head;
  return `${text.slice(0, head)}\n…[${text.length - max} characters left out]…\n${text.slice(text.length - tail)}`;
}

function spawnErrorOf(result: unknown): string | null {
  const r = result as { failed?: boolean; code?: string; exitCode?: number; signal?: string; command?: string; originalMessage?: string };
  if (!r.failed || typeof r.exitCode === 'number' || r.signal) return null;
  if (r.code === 'ENOENT') return `the agent binary was not found: ${r.command?.split(' ')[0]} — install Claude Code (npm i -g @anthropic-ai/claude-code) or point --agent-bin / OBRA_CLAUDE_BIN at it`;
  if (r.code === 'EACCES') return `the agent binary is not executable: ${r.command?.split(' ')[0]} — chmod +x it or point --agent-bin at the right file`;
  return r.code ? `the agent could not be started (${r.code}): ${r.originalMessage ?? ''}` : null;
}

/**
 * Calls `onLine` for every complete stdout line as it arrives, and `onPartial` when data arrives without ending
 * a line (a long line on its way). A line that never ends is dropped once it passes MAX_PROGRESS_LINE, not kept.
 */
function watchStream(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void, onPartial: () => void): void {
  if (!stream) return;
  let pending = '';
  let skipping = false;
  stream.on('data', (chunk: Buffer | string) => {
    let text = chunk.toString();
    if (!text.includes('\n')) onPartial();
    while (text.length) {
      const newline = text.indexOf('\n');
      if (newline < 0) {
        if (!skipping) pending += text;
        if (pending.length > MAX_PROGRESS_LINE) {
          pending = '';
          skipping = true;
        }
        return;
      }
      const line = pending + text.slice(0, newline);
      text = text.slice(newline + 1);
      pending = '';
      if (skipping) {
        skipping = false;
        onPartial();
        continue;
      }
      onLine(line.trim());
    }
  });
}

/** Where the CLI keeps a session's transcript: `<config dir>/projects/<cwd, every non-alphanumeric → '-'>/<id>.jsonl`. */
export function transcriptPath(sessionId: string, workdir: string, env: NodeJS.ProcessEnv): string {
  const configDir = env.CLAUDE_CONFIG_DIR ?? join(env.HOME ?? homedir(), '.claude');
  return join(configDir, 'projects', resolve(workdir).replace(/[^a-zA-Z0-9]/g, '-'), `${sessionId}.jsonl`);
}

/** Resolves a command the way a shell would (a path as is, a bare name along PATH). */
export function findExecutable(command: string, env: NodeJS.ProcessEnv): 'ok' | 'missing' | 'not-executable' | 'directory' {
  const candidates = command.includes('/') ? [resolve(command)] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  let sawFile = false;
  let sawDirectory = false;
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) {
        sawDirectory = true;
        continue;
      }
      sawFile = true;
      accessSync(candidate, constants.X_OK);
      return 'ok';
    } catch {
      // keep looking
    }
  }
  return sawFile ? 'not-executable' : sawDirectory && command.includes('/') ? 'directory' : 'missing';
}
