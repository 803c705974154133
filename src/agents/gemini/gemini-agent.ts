import type { AgentCallRecord, AgentOutcome, AgentResult, PermissionDenial } from '../../core/types.js';
import type { AgentCallRequest } from '../agent.js';
import type { RawCall } from '../classify.js';
import { cliRecord, type CallStart } from '../cli-record.js';
import { geminiSessionFile } from '../session-files.js';
import { withEstimatedCost } from '../usage.js';
import { classifyGemini, GEMINI_CLI } from './gemini-classify.js';
import { GeminiLikeAgent, SHELL_RULE, widenApproval, type ApprovalMode, type GeminiLikeAgentOptions } from './gemini-like-agent.js';
import { geminiProgressOf, readGeminiTurn } from './gemini-stream.js';

export type GeminiApprovalMode = ApprovalMode<'auto_edit'>;

export type GeminiAgentOptions = GeminiLikeAgentOptions<'auto_edit'>;

/** The rule that lets the agent run any shell command for the rest of a run (Gemini's `yolo`). */
export const GEMINI_SHELL_RULE = SHELL_RULE;

/**
 * The approval mode of one call: the configured one, widened by what a person granted — `Write` or `Edit` lifts
 * `default`/`plan` to `auto_edit`, `Bash` (any command) lifts it to `yolo`. Gemini cannot allow one command.
 */
export function approvalFor(configured: GeminiApprovalMode, granted: readonly string[]): GeminiApprovalMode {
  return widenApproval(configured, granted, 'auto_edit');
}

/**
 * Runs Google's Gemini CLI headless: `gemini -p PROMPT -o stream-json --skip-trust --approval-mode auto_edit`
 * from the task's working directory (sessions belong to the project directory), stdin closed. Obra names the
 * session up front (`--session-id U`) and resumes it with `-r U`. Gemini lets two resumes of one session run at
 * once and merges their turns, so Obra's session lock serialises them. It re-launches itself as a child that
 * outlives a killed parent: the whole process group is killed (cli-process.ts).
 */
export class GeminiAgent extends GeminiLikeAgent<'auto_edit'> {
  readonly name = 'gemini';

  constructor(options: GeminiAgentOptions) {
    super(options, {
      ...GEMINI_CLI,
      autoEdit: 'auto_edit',
      // A new folder (every worktree) is untrusted: without this the CLI exits 55 and forces `default`.
      flags: ['--skip-trust'],
    });
  }

  sessionFile(sessionId: string, workdir: string): string {
    return geminiSessionFile(sessionId, workdir, this.env);
  }

  protected onLine(line: string, request: AgentCallRequest): void {
    const progress = geminiProgressOf(line);
    if (progress && progress.kind !== 'other') request.onProgress?.(progress);
  }

  protected finish(raw: RawCall, start: CallStart, sessionId: string): AgentCallRecord {
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
      duration_ms: Date.now() - start.startedAt,
      num_turns: 1,
      total_cost_usd: tokens.costUsd ?? 0,
      api_error_status: classified.apiStatus,
      usage: { input_tokens: r.inputTokens, output_tokens: r.outputTokens, cached: r.cachedTokens },
    };
    const denials: PermissionDenial[] = turn.refused.map((d) => ({ tool: d.tool, input: d.input, rule: d.tool === 'run_shell_command' ? GEMINI_SHELL_RULE : 'Write' }));
    const outcome: AgentOutcome = { kind: 'answer', result };
    const work = { toolCalls: r.toolCalls, filesChanged: turn.filesChanged };
    return { ...cliRecord(start, id, outcome, raw.exitCode, raw.signal, raw.stdout, raw.stderr), tokens, work, ...(denials.length ? { permissionDenials: denials } : {}) };
  }
}
