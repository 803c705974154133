import { randomUUID } from 'node:crypto';
import { UserError } from '../../core/errors.js';
import type { AgentCallRecord, AgentOutcome, AgentResult, PermissionDenial, SessionMode } from '../../core/types.js';
import type { Agent, AgentCallRequest } from '../agent.js';
import { isUuid } from '../classify.js';
import { findExecutable } from '../claude-code-agent.js';
import { runCli } from '../cli-process.js';
import { cliRecord, type CallStart } from '../cli-record.js';
import { processSessionLocks, type SessionLocks } from '../session-lock.js';
import { withEstimatedCost, type Price } from '../usage.js';
import { classifyGemini } from './gemini-classify.js';
import { geminiProgressOf, readGeminiTurn } from './gemini-stream.js';

export type GeminiApprovalMode = 'default' | 'auto_edit' | 'yolo' | 'plan';

export interface GeminiAgentOptions {
  command: string;
  timeoutMs: number;
  idleTimeoutMs?: number;
  model?: string;
  /** `auto_edit` (default): edits without asking, no shell. */
  approvalMode?: GeminiApprovalMode;
  extraArgs?: string[];
  env?: Record<string, string>;
  price?: Price | null;
  locks?: SessionLocks;
  killGraceMs?: number;
  maxOutputBytes?: number;
}

/** The rule that lets the agent run any shell command for the rest of a run (Gemini's `yolo`). */
export const GEMINI_SHELL_RULE = 'Bash';

/**
 * The approval mode of one call: the configured one, widened by what a person granted — `Write` or `Edit` lifts
 * `default`/`plan` to `auto_edit`, `Bash` (any command) lifts it to `yolo`. Gemini cannot allow one command.
 */
export function approvalFor(configured: GeminiApprovalMode, granted: readonly string[]): GeminiApprovalMode {
  if (granted.includes(GEMINI_SHELL_RULE)) return 'yolo';
  if ((configured === 'default' || configured === 'plan') && granted.some((rule) => rule === 'Write' || rule === 'Edit')) return 'auto_edit';
  return configured;
}

/**
 * Runs Google's Gemini CLI headless: `gemini -p PROMPT -o stream-json --skip-trust --approval-mode auto_edit`
 * from the task's working directory (sessions belong to the project directory), stdin closed. Obra names the
 * session up front (`--session-id U`) and resumes it with `-r U`. Gemini lets two resumes of one session run at
 * once and merges their turns, so Obra's session lock serialises them. It re-launches itself as a child that
 * outlives a killed parent: the whole process group is killed (cli-process.ts).
 */
export class GeminiAgent implements Agent {
  readonly name = 'gemini';
  private readonly locks: SessionLocks;
  private readonly env: NodeJS.ProcessEnv;

  constructor(readonly options: GeminiAgentOptions) {
    this.locks = options.locks ?? processSessionLocks;
    this.env = { ...process.env, ...options.env };
  }

  preflight(): void {
    const found = findExecutable(this.options.command, this.env);
    if (found === 'missing') throw new UserError(`the gemini binary "${this.options.command}" was not found — install Gemini CLI (npm i -g @google/gemini-cli) or pass --agent-bin <path> / set agent.gemini.command`);
    if (found !== 'ok') throw new UserError(`the gemini binary "${this.options.command}" is not an executable file — pass another --agent-bin`);
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.locks.onRelease(sessionId, listener);
  }

  buildArgs(prompt: string, mode: SessionMode, sessionId: string, approval: GeminiApprovalMode = this.options.approvalMode ?? 'auto_edit'): string[] {
    const o = this.options;
    return [
      '-p', prompt,
      '-o', 'stream-json',
      // A new folder (every worktree) is untrusted: without this the CLI exits 55 and forces `default`.
      '--skip-trust',
      '--approval-mode', approval,
      ...(o.model ? ['-m', o.model] : []),
      // No fork in Gemini CLI: a fork starts a new session (the prompt carries the task's history).
      ...(mode === 'resume' ? ['-r', sessionId] : ['--session-id', sessionId]),
      ...(o.extraArgs ?? []),
    ];
  }

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const startedAt = Date.now();
    const mode: SessionMode = request.mode === 'resume' ? 'resume' : 'create';
    const sessionId = mode === 'create' && request.mode === 'fork' ? randomUUID() : (request.sessionId ?? randomUUID());
    const approval = approvalFor(this.options.approvalMode ?? 'auto_edit', request.allowedTools ?? []);
    // The prompt is an argument: argv shows its length only, not its text, in the record.
    const args = this.buildArgs(request.prompt, mode, sessionId, approval);
    const argv = [this.options.command, ...args.map((a, i) => (i === 1 ? `<prompt: ${request.prompt.length} characters>` : a))];
    const start: CallStart = { argv, mode, startedAt };
    if (!isUuid(sessionId)) return cliRecord(start, sessionId, { kind: 'fatal', message: `the session id "${sessionId}" is not a UUID — Gemini CLI session ids look like 123e4567-e89b-12d3-a456-426614174000` }, null, null, '', '');
    const lock = this.locks.tryAcquire(sessionId);
    if (!lock.ok) return cliRecord(start, sessionId, { kind: 'sessionBusy', holder: lock.holder, message: `Session ${sessionId} is in use by ${lock.holder} (Obra's session lock)` }, null, null, '', '');
    try {
      const raw = await runCli({
        file: this.options.command,
        args,
        cwd: request.workdir,
        env: this.env,
        timeoutMs: this.options.timeoutMs,
        idleTimeoutMs: this.options.idleTimeoutMs ?? null,
        killGraceMs: this.options.killGraceMs,
        maxOutputBytes: this.options.maxOutputBytes,
        signal: request.signal,
        onSpawn: (pid) => {
          lock.recordChild(pid);
          request.onProgress?.({ kind: 'started', sessionId, argv });
        },
        onLine: (line) => {
          const progress = geminiProgressOf(line);
          if (progress && progress.kind !== 'other') request.onProgress?.(progress);
        },
      });
      const turn = readGeminiTurn(raw.stdout);
      const classified = classifyGemini(raw, turn);
      const id = turn.sessionId ?? sessionId;
      if (classified.kind !== 'answer') return cliRecord(start, id, classified, raw.exitCode, raw.signal, raw.stdout, raw.stderr);
      const r = turn.result!;
      const tokens = withEstimatedCost({ inputTokens: r.inputTokens, outputTokens: r.outputTokens, cachedInputTokens: r.cachedTokens }, this.options.price ?? null);
      const failed = r.status !== 'success';
      const result: AgentResult = {
        type: 'result',
        subtype: failed ? 'error_during_execution' : 'success',
        is_error: failed,
        result: failed ? (r.error ?? 'API Error') : turn.answer,
        session_id: id,
        duration_ms: Date.now() - startedAt,
        num_turns: 1,
        total_cost_usd: tokens.costUsd ?? 0,
        api_error_status: classified.apiStatus,
        usage: { input_tokens: r.inputTokens, output_tokens: r.outputTokens, cached: r.cachedTokens },
      };
      const denials: PermissionDenial[] = turn.refused.map((d) => ({ tool: d.tool, input: d.input, rule: d.tool === 'run_shell_command' ? GEMINI_SHELL_RULE : 'Write' }));
      const outcome: AgentOutcome = { kind: 'answer', result };
      return { ...cliRecord(start, id, outcome, raw.exitCode, raw.signal, raw.stdout, raw.stderr), tokens, ...(denials.length ? { permissionDenials: denials } : {}) };
    } finally {
      lock.release();
    }
  }
}
