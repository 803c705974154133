import { randomUUID } from 'node:crypto';
import type { AgentCallRecord, SessionMode } from '../../core/types.js';
import type { Agent, AgentCallRequest } from '../agent.js';
import { isUuid, type RawCall } from '../classify.js';
import { requireBinary, type CliAgentOptions } from '../cli-agent.js';
import { runCli } from '../cli-process.js';
import type { CliNames } from '../cli-stopped.js';
import { cliRecord, type CallStart } from '../cli-record.js';
import { processSessionLocks, type SessionLocks } from '../session-lock.js';
import { cliLimits, underSessionLock } from '../locked-call.js';

/**
 * What Gemini CLI and its fork Qwen Code share: the options, the preflight, the approval mode widened by granted
 * rules, and a call — prompt as an argument, a session named up front (`--session-id U`, resumed with `-r U`),
 * Obra's session lock around it, the whole process group killed. Each agent brings its name, its arguments, its
 * progress lines and how it reads the finished call.
 */

/** The approval mode that lets the agent edit without asking: Gemini spells it `auto_edit`, Qwen `auto-edit`. */
export type AutoEdit = 'auto_edit' | 'auto-edit';

/** The approval modes of a CLI that spells the auto-edit mode `A`. */
export type ApprovalMode<A extends AutoEdit> = 'default' | A | 'yolo' | 'plan';

/** The options of a Gemini CLI or Qwen Code agent. */
export interface GeminiLikeAgentOptions<A extends AutoEdit> extends CliAgentOptions {
  /** `auto_edit` / `auto-edit` (default): edits without asking, no shell. */
  approvalMode?: ApprovalMode<A>;
}

/** The rule that lets the agent run any shell command for the rest of a run (the `yolo` mode). */
export const SHELL_RULE = 'Bash';

/**
 * The approval mode of one call: the configured one, widened by what a person granted — `Write` or `Edit` lifts
 * `default`/`plan` to the auto-edit mode, `Bash` (any command) lifts it to `yolo`. Neither CLI can allow one command.
 */
export function widenApproval<A extends AutoEdit>(configured: ApprovalMode<A>, granted: readonly string[], autoEdit: A): ApprovalMode<A> {
  if (granted.includes(SHELL_RULE)) return 'yolo';
  if ((configured === 'default' || configured === 'plan') && granted.some((rule) => rule === 'Write' || rule === 'Edit')) return autoEdit;
  return configured;
}

/** What tells the two CLIs apart in a call. */
export interface GeminiLikeCli<A extends AutoEdit> extends CliNames {
  /** Its spelling of the auto-edit mode, the default. */
  autoEdit: A;
  /** Its own flags, after `-o stream-json`. */
  flags: string[];
}

export abstract class GeminiLikeAgent<A extends AutoEdit> implements Agent {
  abstract readonly name: string;
  protected readonly locks: SessionLocks;
  protected readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly options: GeminiLikeAgentOptions<A>,
    private readonly cli: GeminiLikeCli<A>,
  ) {
    this.locks = options.locks ?? processSessionLocks;
    this.env = { ...process.env, ...options.env };
  }

  preflight(): void {
    requireBinary(this.options.command, this.env, this.cli);
  }

  whenSessionFree(sessionId: string, listener: () => void): () => void {
    return this.locks.onRelease(sessionId, listener);
  }

  buildArgs(prompt: string, mode: SessionMode, sessionId: string, approval: ApprovalMode<A> = this.options.approvalMode ?? this.cli.autoEdit): string[] {
    const o = this.options;
    return [
      '-p', prompt,
      '-o', 'stream-json',
      ...this.cli.flags,
      '--approval-mode', approval,
      ...(o.model ? ['-m', o.model] : []),
      // No fork in either CLI: a fork starts a new session (the prompt carries the task's history).
      ...(mode === 'resume' ? ['-r', sessionId] : ['--session-id', sessionId]),
      ...(o.extraArgs ?? []),
    ];
  }

  /** Reports the progress one stdout line carries. */
  protected abstract onLine(line: string, request: AgentCallRequest): void;

  /** The record of a call that ran: `sessionId` is the one Obra asked for. */
  protected abstract finish(raw: RawCall, start: CallStart, sessionId: string): AgentCallRecord;

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const startedAt = Date.now();
    const mode: SessionMode = request.mode === 'resume' ? 'resume' : 'create';
    const sessionId = request.mode === 'fork' ? randomUUID() : (request.sessionId ?? randomUUID());
    const approval = widenApproval(this.options.approvalMode ?? this.cli.autoEdit, request.allowedTools ?? [], this.cli.autoEdit);
    // The prompt is an argument: argv shows its length only, not its text, in the record.
    const args = this.buildArgs(request.prompt, mode, sessionId, approval);
    const argv = [this.options.command, ...args.map((a, i) => (i === 1 ? `<prompt: ${request.prompt.length} characters>` : a))];
    const start: CallStart = { argv, mode, startedAt };
    if (!isUuid(sessionId)) return cliRecord(start, sessionId, { kind: 'fatal', message: `the session id "${sessionId}" is not a UUID — ${this.cli.product} session ids look like 123e4567-e89b-12d3-a456-426614174000` }, null, null, '', '');
    return underSessionLock(
      this.locks,
      { sessionId, argv, request },
      (busy) => cliRecord(start, sessionId, busy, null, null, '', ''),
      async (onSpawn) => {
        const raw = await runCli({ file: this.options.command, args, cwd: request.workdir, env: this.env, ...cliLimits(this.options), signal: request.signal, onSpawn, onLine: (line) => this.onLine(line, request) });
        return this.finish(raw, start, sessionId);
      },
    );
  }
}
