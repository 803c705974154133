import { randomUUID } from 'node:crypto';
import { UserError } from '../../core/errors.js';
import type { AgentCallRecord, AgentOutcome, PermissionDenial, SessionMode } from '../../core/types.js';
import type { Agent, AgentCallRequest } from '../agent.js';
import { isUuid } from '../classify.js';
import { parseClaudeOutput } from '../claude-result.js';
import { findExecutable } from '../claude-code-agent.js';
import { runCli } from '../cli-process.js';
import { cliRecord, type CallStart } from '../cli-record.js';
import { processSessionLocks, type SessionLocks } from '../session-lock.js';
import { streamEventsOf } from '../stream-events.js';
import { withEstimatedCost, type Price } from '../usage.js';
import { classifyQwen } from './qwen-classify.js';

export type QwenApprovalMode = 'default' | 'auto-edit' | 'yolo' | 'plan';

export interface QwenAgentOptions {
  command: string;
  timeoutMs: number;
  idleTimeoutMs?: number;
  model?: string;
  approvalMode?: QwenApprovalMode;
  extraArgs?: string[];
  env?: Record<string, string>;
  price?: Price | null;
  locks?: SessionLocks;
  killGraceMs?: number;
  maxOutputBytes?: number;
}

const EDIT_TOOLS = new Set(['write_file', 'edit', 'replace']);

/** Granted rules widen the approval mode, as for Gemini CLI: `Write`/`Edit` → auto-edit, `Bash` → yolo. */
export function qwenApprovalFor(configured: QwenApprovalMode, granted: readonly string[]): QwenApprovalMode {
  if (granted.includes('Bash')) return 'yolo';
  if ((configured === 'default' || configured === 'plan') && granted.some((rule) => rule === 'Write' || rule === 'Edit')) return 'auto-edit';
  return configured;
}

/**
 * Runs Qwen Code headless: `qwen -p PROMPT -o stream-json --approval-mode auto-edit (--session-id U | -r U)`, from
 * the task's folder, stdin closed. Its stream has Claude Code's shape, so Claude's result reader reads it. Two
 * resumes of one session would branch the transcript and lose a turn: Obra's session lock serialises them. Like
 * Gemini CLI it re-launches itself as a child: the whole process group is killed.
 */
export class QwenAgent implements Agent {
  readonly name = 'qwen';
  private readonly locks: SessionLocks;
  private readonly env: NodeJS.ProcessEnv;

  constructor(readonly options: QwenAgentOptions) {
    this.locks = options.locks ?? processSessionLocks;
    this.env = { ...process.env, ...options.env };
  }

  preflight(): void {
    const found = findExecutable(this.options.command, this.env);
    if (found === 'missing') throw new UserError(`the qwen binary "${this.options.command}" was not found — install Qwen Code (npm i -g @qwen-code/qwen-code) or pass --agent-bin <path> / set agent.qwen.command`);
    if (found !== 'ok') throw new UserError(`the qwen binary "${this.options.command}" is not an executable file — pass another --agent-bin`);
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.locks.onRelease(sessionId, listener);
  }

  buildArgs(prompt: string, mode: SessionMode, sessionId: string, approval: QwenApprovalMode): string[] {
    const o = this.options;
    return [
      '-p', prompt,
      '-o', 'stream-json',
      '--approval-mode', approval,
      ...(o.model ? ['-m', o.model] : []),
      ...(mode === 'resume' ? ['-r', sessionId] : ['--session-id', sessionId]),
      ...(o.extraArgs ?? []),
    ];
  }

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const startedAt = Date.now();
    const mode: SessionMode = request.mode === 'resume' ? 'resume' : 'create';
    const sessionId = request.mode === 'fork' ? randomUUID() : (request.sessionId ?? randomUUID());
    const approval = qwenApprovalFor(this.options.approvalMode ?? 'auto-edit', request.allowedTools ?? []);
    const args = this.buildArgs(request.prompt, mode, sessionId, approval);
    const argv = [this.options.command, ...args.map((a, i) => (i === 1 ? `<prompt: ${request.prompt.length} characters>` : a))];
    const start: CallStart = { argv, mode, startedAt };
    if (!isUuid(sessionId)) return cliRecord(start, sessionId, { kind: 'fatal', message: `the session id "${sessionId}" is not a UUID — Qwen Code session ids look like 123e4567-e89b-12d3-a456-426614174000` }, null, null, '', '');
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
          for (const event of streamEventsOf(line)) if (event.kind === 'text' || event.kind === 'tool') request.onProgress?.(event);
        },
      });
      const { result } = parseClaudeOutput(raw.stdout);
      const classified = classifyQwen(raw, result);
      const id = result?.session_id ?? sessionId;
      if (classified.kind !== 'answer' || !result) return cliRecord(start, id, classified.kind === 'answer' ? { kind: 'malformed', message: 'no result', raw: '' } : classified, raw.exitCode, raw.signal, raw.stdout, raw.stderr);
      const usage = (result.usage ?? {}) as Record<string, unknown>;
      const count = (key: string) => (typeof usage[key] === 'number' ? (usage[key] as number) : 0);
      // result.usage also counts Qwen's own memory-extraction call after the turn: it is this call's cost all the same.
      const tokens = withEstimatedCost({ inputTokens: count('input_tokens'), outputTokens: count('output_tokens'), cachedInputTokens: count('cache_read_input_tokens') }, this.options.price ?? null);
      const outcome: AgentOutcome = {
        kind: 'answer',
        result: { ...result, is_error: result.is_error || classified.apiError, api_error_status: classified.apiStatus, total_cost_usd: tokens.costUsd ?? 0 },
      };
      const denials: PermissionDenial[] = (result.permission_denials ?? []).map((d) => {
        const input = (d.tool_input ?? {}) as Record<string, unknown>;
        const what = typeof input.file_path === 'string' ? input.file_path : typeof input.command === 'string' ? input.command : d.tool_name;
        return { tool: d.tool_name, input: what, rule: EDIT_TOOLS.has(d.tool_name) ? 'Write' : 'Bash' };
      });
      return { ...cliRecord(start, id, outcome, raw.exitCode, raw.signal, raw.stdout, raw.stderr), tokens, ...(denials.length ? { permissionDenials: denials } : {}) };
    } finally {
      lock.release();
    }
  }
}
