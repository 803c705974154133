import { randomUUID } from 'node:crypto';
import type { AgentCallRecord, AgentOutcome, AgentResult, SessionMode, TokenUsage } from '../../core/types.js';
import type { Agent, AgentCallRequest } from '../agent.js';
import { requireBinary, type CliAgentOptions } from '../cli-agent.js';
import { runCli } from '../cli-process.js';
import { cliRecord, type CallStart } from '../cli-record.js';
import { processSessionLocks, type SessionLocks } from '../session-lock.js';
import { withEstimatedCost, type Price } from '../usage.js';
import { classifyOpencode, OPENCODE_CLI } from './opencode-classify.js';
import { opencodeDenials, opencodePermissions, type OpencodePermissionMode } from './opencode-permissions.js';
import { opencodeProgressOf, readOpencodeTurn, type OpencodeTurn } from './opencode-stream.js';
import { cliLimits, underSessionLock } from '../locked-call.js';
import { OPENCODE_SESSION_ID, opencodeSessionFile, OpencodeSessionStore } from './opencode-sessions.js';

export interface OpencodeAgentOptions extends CliAgentOptions {
  /** `-m provider/model`; default: the `model` of opencode's config. */
  model?: string;
  /** `edit` (default): edits inside the working directory and the task's checks only (see opencode-permissions.ts). */
  permissionMode?: OpencodePermissionMode;
  /** Variables added to this process's environment for the CLI (OPENCODE_CONFIG, a provider's key...). */
  env?: Record<string, string>;
  /** Price for the cost estimate when opencode reports none (a model without `cost` in its config reports 0). */
  price?: Price | null;
}

/**
 * Runs opencode headless: `opencode run --format json [-m provider/model] [-s ses_…]` from the task's working
 * directory (and with PWD set to it: opencode's project directory is $PWD's), the prompt on stdin, then stdin closed (a prompt argument with spaces reaches the model in quotes,
 * and an open stdin blocks forever). The session id (`ses_…`) is on every event and cannot be chosen up front, so
 * a `create` call reports opencode's own; later calls resume it with `-s`, always from the same directory (from any
 * other, opencode runs the turn but never prints or exits). Two resumes of one session at once run away (each
 * answers the other's message, again and again): Obra's session lock serialises them. Permissions go in
 * OPENCODE_PERMISSION (opencode-permissions.ts).
 */
export class OpencodeAgent implements Agent {
  readonly name = 'opencode';
  private readonly locks: SessionLocks;
  private readonly env: NodeJS.ProcessEnv;

  /** Sessions live in opencode's SQLite database: a Restate worker carries one as opencode's export of it. */
  readonly sessionStore: OpencodeSessionStore;

  constructor(readonly options: OpencodeAgentOptions) {
    this.locks = options.locks ?? processSessionLocks;
    this.env = { ...process.env, ...options.env };
    this.sessionStore = new OpencodeSessionStore({ command: options.command, env: this.env, killGraceMs: options.killGraceMs });
  }

  /** Where the session's export goes (see opencode-sessions.ts): the same file for every folder. */
  sessionFile(sessionId: string): string {
    return opencodeSessionFile(sessionId, this.env);
  }

  preflight(): void {
    requireBinary(this.options.command, this.env, OPENCODE_CLI);
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.locks.onRelease(sessionId, listener);
  }

  buildArgs(mode: SessionMode, sessionId: string): string[] {
    const o = this.options;
    return [
      'run',
      '--format', 'json',
      ...(o.model ? ['-m', o.model] : []),
      // No fork from `run` that Obra could name: a fork starts a new session (the prompt carries the task's history).
      ...(mode === 'resume' ? ['-s', sessionId] : []),
      ...(o.extraArgs ?? []),
    ];
  }

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const startedAt = Date.now();
    const mode: SessionMode = request.mode === 'resume' ? 'resume' : 'create';
    const sessionId = request.sessionId ?? randomUUID();
    const argv = [this.options.command, ...this.buildArgs(mode, sessionId)];
    const start: CallStart = { argv, mode, startedAt };
    // Obra's own id for a session opencode never reported (the first call failed before its first event): nothing to resume.
    if (mode === 'resume' && !OPENCODE_SESSION_ID.test(sessionId)) return cliRecord(start, sessionId, { kind: 'noConversation', message: `"${sessionId}" is not an opencode session (ses_…): none was started yet` }, null, null, '', '');
    return underSessionLock(
      this.locks,
      { sessionId, argv, request },
      (busy) => cliRecord(start, sessionId, busy, null, null, '', ''),
      (onSpawn) => this.run(request, start, sessionId, onSpawn),
    );
  }

  private async run(request: AgentCallRequest, start: CallStart, sessionId: string, onSpawn: (pid: number) => void): Promise<AgentCallRecord> {
    const permissions = opencodePermissions(this.options.permissionMode ?? 'edit', request.allowedTools ?? []);
    // opencode takes its project directory from $PWD, not from the folder it is started in (measured): left as
    // Obra's own, every edit in the worktree would be "outside" it, and a session would belong to Obra's folder.
    const env = { ...this.env, PWD: request.workdir, ...(permissions ? { OPENCODE_PERMISSION: JSON.stringify(permissions) } : {}) };
    const raw = await runCli({
      file: this.options.command,
      args: start.argv.slice(1),
      cwd: request.workdir,
      env,
      input: request.prompt,
      ...cliLimits(this.options),
      signal: request.signal,
      onSpawn,
      onLine: (line) => {
        const progress = opencodeProgressOf(line);
        if (progress && progress.kind !== 'other') request.onProgress?.(progress);
      },
    });
    const turn = readOpencodeTurn(raw.stdout);
    const id = turn.sessionId ?? sessionId;
    const classified = classifyOpencode(raw, turn, Date.now());
    if (classified.kind !== 'answer') return cliRecord(start, id, classified, raw.exitCode, raw.signal, raw.stdout, raw.stderr);
    const tokens = tokensOf(turn, this.options.price ?? null);
    const failed = turn.error !== null;
    const result: AgentResult = {
      type: 'result',
      subtype: failed ? 'error_during_execution' : 'success',
      is_error: failed,
      result: failed ? `API Error: ${turn.error!.status ?? turn.error!.name} ${turn.error!.message}` : turn.answer,
      session_id: id,
      duration_ms: Date.now() - start.startedAt,
      num_turns: Math.max(1, turn.steps),
      total_cost_usd: tokens.costUsd ?? 0,
      api_error_status: classified.apiStatus,
      usage: { input_tokens: turn.tokens.input, output_tokens: turn.tokens.output, cache_read_input_tokens: turn.tokens.cacheRead, cache_creation_input_tokens: turn.tokens.cacheWrite },
    };
    const outcome: AgentOutcome = { kind: 'answer', result };
    const denials = opencodeDenials(turn.refused);
    const work = { toolCalls: turn.toolCalls, filesChanged: turn.filesChanged };
    return { ...cliRecord(start, id, outcome, raw.exitCode, raw.signal, raw.stdout, raw.stderr), tokens, work, ...(denials.length ? { permissionDenials: denials } : {}) };
  }
}

/**
 * The call's tokens, every step summed: input counts the cache's reads and writes too (opencode reports them
 * apart). opencode's cost is the CLI's own figure when the model has a price in its config; without one it reports
 * 0, which says nothing — then Obra's price table estimates it, or the cost is unknown.
 */
export function tokensOf(turn: OpencodeTurn, price: Price | null): TokenUsage {
  const t = turn.tokens;
  const tokens = { inputTokens: t.input + t.cacheRead + t.cacheWrite, outputTokens: t.output + t.reasoning, cachedInputTokens: t.cacheRead };
  if (turn.cost > 0) return { ...tokens, costUsd: turn.cost, costSource: 'reported' };
  return withEstimatedCost(tokens, price);
}
