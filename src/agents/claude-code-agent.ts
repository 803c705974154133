import { randomUUID } from 'node:crypto';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { execa } from 'execa';
import { UserError } from '../core/errors.js';
import type { AgentCallRecord, AgentOutcome, SessionMode } from '../core/types.js';
import type { Agent, AgentCallRequest, AgentProgress } from './agent.js';
import { parseClaudeOutput } from './claude-result.js';
import { processSessionLocks, type SessionLocks } from './session-lock.js';

export interface ClaudeCodeAgentOptions {
  /** Path or name of the `claude` binary. */
  command: string;
  /** Milliseconds one call may run before its whole process tree is killed. */
  timeoutMs: number;
  extraArgs?: string[];
  model?: string;
  maxTurns?: number;
  permissionMode?: string;
  allowedTools?: string[];
  appendSystemPrompt?: string;
  /** Variables added to this process's environment for the CLI (CLAUDE_CONFIG_DIR, ANTHROPIC_BASE_URL...). */
  env?: Record<string, string>;
  locks?: SessionLocks;
  /** Output beyond this many bytes is an error, not a memory blow-up. */
  maxOutputBytes?: number;
  /** Time between SIGTERM and SIGKILL when a call is stopped. */
  killGraceMs?: number;
}

/**
 * Runs the Claude Code CLI headless: `claude -p --output-format stream-json --verbose` with the prompt on
 * stdin (no argv length limit, no shell), one session flag set, from the task's working directory (sessions
 * belong to a directory). Every way the call can end is classified into an `AgentOutcome`.
 */
export class ClaudeCodeAgent implements Agent {
  readonly name = 'claude-code';
  private readonly locks: SessionLocks;

  private readonly env: NodeJS.ProcessEnv;

  constructor(readonly options: ClaudeCodeAgentOptions) {
    this.locks = options.locks ?? processSessionLocks;
    this.env = { ...process.env, ...options.env };
  }

  preflight(): void {
    const found = findExecutable(this.options.command, this.env);
    if (found === 'missing') {
      throw new UserError(`the agent binary "${this.options.command}" was not found — install Claude Code (npm i -g @anthropic-ai/claude-code) or pass --agent-bin <path> / set OBRA_CLAUDE_BIN`);
    }
    if (found === 'not-executable') throw new UserError(`the agent binary "${this.options.command}" is not executable — chmod +x it or pass another --agent-bin`);
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.locks.onRelease(sessionId, listener);
  }

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const startedAt = Date.now();
    const sessionId = request.sessionId ?? randomUUID();
    const mode = this.effectiveMode(request.mode, sessionId, request.workdir);
    const argv = [this.options.command, ...this.buildArgs(sessionId, mode)];
    const base = { argv, sessionId, mode, startedAt };

    const lock = this.locks.tryAcquire(sessionId);
    if (!lock.ok) {
      return finish(base, { kind: 'sessionBusy', message: `Session ID ${sessionId} is already in use (held by ${lock.holder}).` }, null, null, '', '');
    }
    try {
      return await this.run(request, base);
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

  private buildArgs(sessionId: string, mode: SessionMode): string[] {
    const o = this.options;
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
      ...(o.permissionMode ? ['--permission-mode', o.permissionMode] : []),
      ...(o.allowedTools?.length ? ['--allowedTools', o.allowedTools.join(',')] : []),
      ...(o.appendSystemPrompt ? ['--append-system-prompt', o.appendSystemPrompt] : []),
      ...(o.extraArgs ?? []),
    ];
  }

  private async run(
    request: AgentCallRequest,
    base: { argv: string[]; sessionId: string; mode: SessionMode; startedAt: number },
  ): Promise<AgentCallRecord> {
    const [file, ...args] = base.argv;
    const subprocess = execa(file!, args, {
      cwd: request.workdir,
      input: request.prompt,
      env: this.env,
      extendEnv: false,
      // Its own process group, so a timeout or abort can kill the CLI *and* everything it started.
      detached: true,
      reject: false,
      stripFinalNewline: false,
      maxBuffer: this.options.maxOutputBytes ?? 64 * 1024 * 1024,
    });
    request.onProgress?.({ kind: 'started', sessionId: base.sessionId, argv: base.argv });

    let stoppedBy: 'timeout' | 'abort' | null = null;
    const stop = (why: 'timeout' | 'abort') => {
      stoppedBy ??= why;
      killTree(subprocess.pid, 'SIGTERM');
      const hard = setTimeout(() => killTree(subprocess.pid, 'SIGKILL'), this.options.killGraceMs ?? 2000);
      hard.unref();
    };
    const timer = setTimeout(() => stop('timeout'), this.options.timeoutMs);
    const onAbort = () => stop('abort');
    request.signal?.addEventListener('abort', onAbort, { once: true });
    if (request.signal?.aborted) onAbort();
    if (request.onProgress) forwardProgress(subprocess.stdout, request.onProgress);

    const result = await subprocess;
    clearTimeout(timer);
    request.signal?.removeEventListener('abort', onAbort);
    // Anything the CLI left running in its group goes too.
    killTree(subprocess.pid, 'SIGKILL');

    const stdout = String(result.stdout ?? '');
    const stderr = String(result.stderr ?? '');
    const exitCode = typeof result.exitCode === 'number' ? result.exitCode : null;
    const signal = result.signal ?? null;
    const outcome = classify({ stdout, stderr, exitCode, signal, stoppedBy, timeoutMs: this.options.timeoutMs, command: this.options.command, spawnError: spawnErrorOf(result) , overflow: Boolean((result as { isMaxBuffer?: boolean }).isMaxBuffer) });
    return finish(base, outcome, exitCode, signal, stdout, stderr);
  }
}

function finish(
  base: { argv: string[]; sessionId: string; mode: SessionMode; startedAt: number },
  outcome: AgentOutcome,
  exitCode: number | null,
  signal: string | null,
  stdout: string,
  stderr: string,
): AgentCallRecord {
  const finishedAt = Date.now();
  // A forked or brand-new session reports its real id in the result.
  const sessionId = outcome.kind === 'answer' && outcome.result.session_id ? outcome.result.session_id : base.sessionId;
  return { ...base, sessionId, outcome, exitCode, signal, stdout, stderr, durationMs: finishedAt - base.startedAt, finishedAt };
}

interface RawCall {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
  stoppedBy: 'timeout' | 'abort' | null;
  timeoutMs: number;
  command: string;
  spawnError: string | null;
  overflow: boolean;
}

const SESSION_IN_USE = /Session ID (\S+) is already in use/;
const NO_CONVERSATION = /No conversation found with session ID/;
const FATAL_STDERR = /invalid api key|authentication|unauthorized|please run \/login|unknown option|error: option|requires a value|cannot be used with/i;

/** Maps what the CLI did to an outcome the machine routes on (see the CLI contract in the README). */
export function classify(call: RawCall): AgentOutcome {
  if (call.spawnError) return { kind: 'fatal', message: call.spawnError };
  if (call.stoppedBy === 'timeout') return { kind: 'timeout', message: `the agent did not finish within ${(call.timeoutMs / 1000).toFixed(1)}s and was killed` };
  if (call.stoppedBy === 'abort') return { kind: 'crashed', message: 'the call was aborted (run cancelled)' };
  if (call.overflow) return { kind: 'malformed', message: 'the agent printed more output than allowed and was stopped', raw: call.stdout.slice(0, 4096) };
  const firstStderrLine = call.stderr.trim().split('\n')[0] ?? '';
  if (SESSION_IN_USE.test(call.stderr)) return { kind: 'sessionBusy', message: firstStderrLine };
  if (NO_CONVERSATION.test(call.stderr)) return { kind: 'noConversation', message: firstStderrLine };

  const parsed = parseClaudeOutput(call.stdout);
  if (parsed.result) {
    const status = parsed.result.api_error_status;
    if (parsed.result.is_error && (status === 429 || status === 529)) {
      return { kind: 'rateLimited', status, message: parsed.result.result || `API error ${status}` };
    }
    return { kind: 'answer', result: parsed.result };
  }
  if (call.signal) return { kind: 'crashed', message: `the agent was killed by ${call.signal}${firstStderrLine ? `: ${firstStderrLine}` : ''}` };
  if (call.exitCode !== 0 && !call.stdout.trim()) {
    if (FATAL_STDERR.test(call.stderr)) return { kind: 'fatal', message: `the agent refused to run: ${firstStderrLine}` };
    return { kind: 'crashed', message: `the agent exited with code ${call.exitCode}${firstStderrLine ? `: ${firstStderrLine}` : ' and printed nothing'}` };
  }
  return { kind: 'malformed', message: parsed.error ?? 'unreadable output', raw: call.stdout.slice(0, 64 * 1024) };
}

function spawnErrorOf(result: unknown): string | null {
  const r = result as { failed?: boolean; code?: string; exitCode?: number; signal?: string; command?: string; originalMessage?: string };
  if (!r.failed || typeof r.exitCode === 'number' || r.signal) return null;
  if (r.code === 'ENOENT') return `the agent binary was not found: ${r.command?.split(' ')[0]} — install Claude Code (npm i -g @anthropic-ai/claude-code) or point --agent-bin / OBRA_CLAUDE_BIN at it`;
  if (r.code === 'EACCES') return `the agent binary is not executable: ${r.command?.split(' ')[0]} — chmod +x it or point --agent-bin at the right file`;
  return r.code ? `the agent could not be started (${r.code}): ${r.originalMessage ?? ''}` : null;
}

function killTree(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Turns stream-json lines into progress events as they arrive. */
function forwardProgress(stream: NodeJS.ReadableStream | null, onProgress: (p: AgentProgress) => void): void {
  if (!stream) return;
  let pending = '';
  stream.on('data', (chunk: Buffer | string) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      for (const progress of progressOf(line)) onProgress(progress);
    }
  });
}

function progressOf(line: string): AgentProgress[] {
  let event: { type?: string; message?: { content?: Array<{ type: string; text?: string; name?: string; input?: unknown }> } };
  try {
    event = JSON.parse(line);
  } catch {
    return [];
  }
  if (event.type !== 'assistant') return [];
  return (event.message?.content ?? []).flatMap((block): AgentProgress[] =>
    block.type === 'text' && block.text ? [{ kind: 'text', text: block.text }]
    : block.type === 'tool_use' && block.name ? [{ kind: 'tool', name: block.name, input: block.input }]
    : [],
  );
}

/** Where the CLI keeps a session's transcript: `<config dir>/projects/<cwd with '/' → '-'>/<id>.jsonl`. */
export function transcriptPath(sessionId: string, workdir: string, env: NodeJS.ProcessEnv): string {
  const configDir = env.CLAUDE_CONFIG_DIR ?? join(env.HOME ?? homedir(), '.claude');
  return join(configDir, 'projects', resolve(workdir).replace(/[^a-zA-Z0-9]/g, '-'), `${sessionId}.jsonl`);
}

/** Resolves a command the way a shell would (a path as is, a bare name along PATH). */
function findExecutable(command: string, env: NodeJS.ProcessEnv): 'ok' | 'missing' | 'not-executable' {
  const candidates = command.includes('/') ? [resolve(command)] : (env.PATH ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, command));
  let sawFile = false;
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) continue;
      sawFile = true;
      accessSync(candidate, constants.X_OK);
      return 'ok';
    } catch {
      // keep looking
    }
  }
  return sawFile ? 'not-executable' : 'missing';
}
