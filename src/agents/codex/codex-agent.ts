import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../../core/errors.js';
import type { AgentCallRecord, AgentOutcome, AgentResult, SessionMode, TokenUsage } from '../../core/types.js';
import type { Agent, AgentCallRequest } from '../agent.js';
import { isUuid } from '../classify.js';
import { runCli } from '../cli-process.js';
import { cliRecord, type CallStart } from '../cli-record.js';
import { requireBinary, type CliAgentOptions } from '../cli-agent.js';
import { codexSessionFile } from '../session-files.js';
import { processSessionLocks, type SessionLocks } from '../session-lock.js';
import { withEstimatedCost } from '../usage.js';
import { classifyCodex, CODEX_CLI } from './codex-classify.js';
import { codexProgressOf, readCodexTurn } from './codex-stream.js';
import { refusalsOf, rolloutOf, rolloutSize, sandboxFor, type CodexSandbox } from './refusals.js';
import { ThreadUsage } from './thread-usage.js';
import { cliLimits, underSessionLock } from '../locked-call.js';

export interface CodexAgentOptions extends CliAgentOptions {
  /** `-s`: `workspace-write` (default) lets the agent edit inside the working directory and nothing else. */
  sandbox?: CodexSandbox;
  /** Let `workspace-write` also write under /tmp and $TMPDIR, as Codex does by default. */
  allowTmpWrites?: boolean;
  /** CODEX_HOME (its sessions); default: $CODEX_HOME, else ~/.codex. */
  home?: string;
}

/**
 * Runs OpenAI's Codex CLI headless: `codex exec --json --skip-git-repo-check -s workspace-write … -` with the
 * prompt on stdin, then stdin closed (Codex waits forever on an open one), from the task's working directory.
 * The thread id of `thread.started` is the session; later calls go on with `codex exec … resume <thread> -`
 * (exec options before `resume`: the subcommand takes none). A thread cannot be named up front, so a `create`
 * call ignores the id Obra picked and reports Codex's. Codex refuses a second writer of a thread by itself
 * (`sessionBusy`); Obra's lock still keeps its own calls from trying.
 */
export class CodexAgent implements Agent {
  readonly name = 'codex';
  private readonly locks: SessionLocks;
  private readonly env: NodeJS.ProcessEnv;
  private readonly home: string;
  private readonly usage: ThreadUsage;

  constructor(readonly options: CodexAgentOptions) {
    this.locks = options.locks ?? processSessionLocks;
    this.env = { ...process.env, ...(options.home ? { CODEX_HOME: options.home } : {}), ...options.env };
    this.home = this.env.CODEX_HOME ?? join(this.env.HOME ?? homedir(), '.codex');
    this.usage = new ThreadUsage(this.home);
  }

  sessionFile(threadId: string): string {
    return codexSessionFile(threadId, this.home, rolloutOf(this.home, threadId));
  }

  preflight(): void {
    requireBinary(this.options.command, this.env, CODEX_CLI);
    // Codex refuses to start when CODEX_HOME names a folder that does not exist: say so before the run is made.
    if (this.env.CODEX_HOME && !existsSync(this.env.CODEX_HOME)) throw new UserError(`CODEX_HOME ${this.env.CODEX_HOME} does not exist, and Codex will not create it — create the folder, or point agent.codex.home / CODEX_HOME elsewhere`);
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.locks.onRelease(sessionId, listener);
  }

  buildArgs(mode: SessionMode, sessionId: string, sandbox: CodexSandbox = this.options.sandbox ?? 'workspace-write'): string[] {
    const o = this.options;
    return [
      'exec',
      '--json',
      '--skip-git-repo-check',
      '-s', sandbox,
      // workspace-write's own default also opens /tmp and $TMPDIR: Obra's promise is the working directory only.
      ...(sandbox === 'workspace-write' && !o.allowTmpWrites ? ['-c', 'sandbox_workspace_write.exclude_tmpdir_env_var=true', '-c', 'sandbox_workspace_write.exclude_slash_tmp=true'] : []),
      ...(o.model ? ['-m', o.model] : []),
      ...(o.extraArgs ?? []),
      // Codex cannot fork a thread from exec: a fork starts a new thread (the prompt carries the task's history).
      ...(mode === 'resume' ? ['resume', sessionId] : []),
      '-',
    ];
  }

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const startedAt = Date.now();
    const mode: SessionMode = request.mode === 'resume' ? 'resume' : 'create';
    const sessionId = request.sessionId ?? randomUUID();
    const sandbox = sandboxFor(this.options.sandbox ?? 'workspace-write', request.allowedTools ?? []);
    const argv = [this.options.command, ...this.buildArgs(mode, sessionId, sandbox)];
    const base = { argv, sessionId, mode, startedAt, sandbox };
    if (mode === 'resume' && !isUuid(sessionId)) {
      return finish(base, sessionId, { kind: 'fatal', message: `the session id "${sessionId}" is not a Codex thread id — thread ids look like 01a25193-45e7-73b0-9860-94217cf14998` }, null, null, '', '');
    }
    return underSessionLock(
      this.locks,
      { sessionId, argv, request },
      (busy) => finish(base, sessionId, busy, null, null, '', ''),
      (onSpawn) => this.run(request, base, onSpawn),
    );
  }

  private async run(request: AgentCallRequest, base: CallBase, onSpawn: (pid: number) => void): Promise<AgentCallRecord> {
    const before = base.mode === 'resume' ? rolloutOf(this.home, base.sessionId) : null;
    const from = rolloutSize(before);
    const [file, ...args] = base.argv;
    const raw = await runCli({
      file: file!,
      args,
      cwd: request.workdir,
      env: this.env,
      input: request.prompt,
      ...cliLimits(this.options),
      signal: request.signal,
      onSpawn,
      onLine: (line) => {
        const progress = codexProgressOf(line);
        if (!request.onProgress || !progress) return;
        if (progress.kind === 'text' || progress.kind === 'tool') request.onProgress(progress);
        if (progress.kind === 'retry') request.onProgress({ kind: 'apiRetry', attempt: progress.attempt, maxRetries: progress.maxRetries, delayMs: 0, errorStatus: null, error: progress.error });
      },
    });
    const turn = readCodexTurn(raw.stdout);
    const threadId = turn.threadId ?? base.sessionId;
    const classified = classifyCodex(raw, turn, Date.now());
    let tokens: TokenUsage | undefined;
    let outcome: AgentOutcome;
    if (classified.kind === 'answer') {
      const share = turn.usage && turn.threadId ? this.usage.take(turn.threadId, turn.usage) : null;
      tokens = share ? withEstimatedCost({ inputTokens: share.input_tokens, outputTokens: share.output_tokens, cachedInputTokens: share.cached_input_tokens }, this.options.price ?? null) : undefined;
      const rollout = turn.threadId ? (before ?? rolloutOf(this.home, turn.threadId)) : null;
      const denials = refusalsOf(turn, rollout, before ? from : 0, base.sandbox, raw.stderr);
      const failed = turn.failure !== null;
      const result: AgentResult = {
        type: 'result',
        subtype: failed ? 'error_during_execution' : 'success',
        is_error: failed,
        result: failed ? `API Error: ${turn.failure}` : (turn.answer ?? ''),
        session_id: threadId,
        duration_ms: Date.now() - base.startedAt,
        num_turns: 1,
        total_cost_usd: tokens?.costUsd ?? 0,
        api_error_status: null,
        usage: share ? { ...share } : undefined,
      };
      outcome = { kind: 'answer', result };
      const record = finish(base, threadId, outcome, raw.exitCode, raw.signal, raw.stdout, raw.stderr);
      return {
        ...record,
        ...(tokens ? { tokens } : {}),
        work: { toolCalls: turn.commands.length + turn.filesChanged.length, filesChanged: turn.filesChanged },
        ...(turn.reconnects ? { apiRetries: turn.reconnects } : {}),
        ...(denials.length ? { permissionDenials: denials } : {}),
      };
    }
    outcome = classified;
    const record = finish(base, threadId, outcome, raw.exitCode, raw.signal, raw.stdout, raw.stderr);
    return { ...record, ...(turn.reconnects ? { apiRetries: turn.reconnects } : {}) };
  }
}

type CallBase = CallStart & { sessionId: string; sandbox: CodexSandbox };

const finish = (base: CallBase, sessionId: string, outcome: AgentOutcome, exitCode: number | null, signal: string | null, stdout: string, stderr: string) =>
  cliRecord(base, sessionId, outcome, exitCode, signal, stdout, stderr);
