import type { AgentCallRecord, AgentOutcome, PermissionDenial } from '../../core/types.js';
import type { AgentCallRequest } from '../agent.js';
import type { RawCall } from '../classify.js';
import { parseClaudeOutput } from '../claude-result.js';
import { cliRecord, type CallStart } from '../cli-record.js';
import { GeminiLikeAgent, widenApproval, type ApprovalMode, type GeminiLikeAgentOptions } from '../gemini/gemini-like-agent.js';
import { adoptQwenSession, qwenSessionFile } from '../session-files.js';
import { streamEventsOf } from '../stream-events.js';
import { withEstimatedCost } from '../usage.js';
import { classifyQwen, QWEN_CLI } from './qwen-classify.js';

export type QwenApprovalMode = ApprovalMode<'auto-edit'>;

export type QwenAgentOptions = GeminiLikeAgentOptions<'auto-edit'>;

const EDIT_TOOLS = new Set(['write_file', 'edit', 'replace']);

/** Granted rules widen the approval mode, as for Gemini CLI: `Write`/`Edit` → auto-edit, `Bash` → yolo. */
export function qwenApprovalFor(configured: QwenApprovalMode, granted: readonly string[]): QwenApprovalMode {
  return widenApproval(configured, granted, 'auto-edit');
}

/**
 * Runs Qwen Code headless: `qwen -p PROMPT -o stream-json --approval-mode auto-edit (--session-id U | -r U)`, from
 * the task's folder, stdin closed. Its stream has Claude Code's shape, so Claude's result reader reads it. Two
 * resumes of one session would branch the transcript and lose a turn: Obra's session lock serialises them. Like
 * Gemini CLI it re-launches itself as a child: the whole process group is killed.
 */
export class QwenAgent extends GeminiLikeAgent<'auto-edit'> {
  readonly name = 'qwen';

  constructor(options: QwenAgentOptions) {
    super(options, { ...QWEN_CLI, autoEdit: 'auto-edit', flags: [] });
  }

  sessionFile(sessionId: string, workdir: string): string {
    return qwenSessionFile(sessionId, workdir, this.env);
  }

  /** Qwen Code serves a session only to the folder its first record names (`cwd`): moved, it names this one. */
  adoptSessionFile(file: string, workdir: string): void {
    adoptQwenSession(file, workdir);
  }

  protected onLine(line: string, request: AgentCallRequest): void {
    for (const event of streamEventsOf(line)) if (event.kind === 'text' || event.kind === 'tool') request.onProgress?.(event);
  }

  protected finish(raw: RawCall, start: CallStart, sessionId: string): AgentCallRecord {
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
  }
}
