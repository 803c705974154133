import { randomUUID } from 'node:crypto';
import type { AgentCallRecord, AgentOutcome, PermissionDenial } from '../core/types.js';
import type { Agent, AgentCallRequest } from './agent.js';

/** One scripted turn: a plain answer, or an outcome to simulate (busy session, crash, ...). */
export type ScriptedReply =
  | string
  | { answer: string; isError?: boolean; subtype?: string; costUsd?: number; turns?: number; denials?: PermissionDenial[] }
  | { outcome: Exclude<AgentOutcome, { kind: 'answer' }> };

export type ReplyScript = ScriptedReply[] | ((request: AgentCallRequest, call: number) => ScriptedReply);

export interface ScriptedAgentOptions {
  latencyMs?: number;
  now?: () => number;
  /** Counts against the store's cap on calls in flight, as a CLI's call does. */
  countsAsApiCall?: boolean;
  sessionFile?: (sessionId: string, workdir: string) => string;
}

/**
 * An agent that answers from a script, in process: no child process, no latency (unless asked for).
 * For tests, benchmarks and library users who want to see the engine work without Claude Code.
 */

export class ScriptedAgent implements Agent {
  readonly name = 'scripted';
  /** True unless `countsAsApiCall` (tests of the store's cap on calls in flight). */
  readonly inProcess: boolean;
  private calls = 0;
  readonly requests: AgentCallRequest[] = [];

  constructor(
    private readonly script: ReplyScript,
    private readonly options: ScriptedAgentOptions = {},
  ) {
    this.inProcess = !options.countsAsApiCall;
    this.sessionFile = options.sessionFile;
  }

  /** Where a script that writes a CLI's transcript writes it (so that a Restate worker carries it). */
  readonly sessionFile: ((sessionId: string, workdir: string) => string) | undefined;

  async call(request: AgentCallRequest): Promise<AgentCallRecord> {
    const now = this.options.now ?? Date.now;
    const startedAt = now();
    const index = this.calls++;
    this.requests.push(request);
    if (this.options.latencyMs) await new Promise((r) => setTimeout(r, this.options.latencyMs));
    const reply = typeof this.script === 'function'
      ? this.script(request, index)
      : (this.script[Math.min(index, this.script.length - 1)] ?? 'Nothing to do.\nSTATUS: DONE');
    const sessionId = request.sessionId ?? randomUUID();
    const outcome: AgentOutcome =
      typeof reply === 'string' ? { kind: 'answer', result: resultFor(reply, sessionId) }
      : 'outcome' in reply ? reply.outcome
      : { kind: 'answer', result: { ...resultFor(reply.answer, sessionId), is_error: reply.isError ?? false, subtype: reply.subtype ?? 'success', total_cost_usd: reply.costUsd ?? 0.0001, num_turns: reply.turns ?? 1 } };
    const finishedAt = now();
    return {
      outcome,
      argv: ['scripted-agent', `call ${index + 1}`],
      sessionId,
      mode: request.mode,
      exitCode: outcome.kind === 'answer' && !outcome.result.is_error ? 0 : 1,
      signal: null,
      stdout: outcome.kind === 'answer' ? JSON.stringify(outcome.result) : '',
      stderr: outcome.kind === 'answer' ? '' : 'message' in outcome ? outcome.message : '',
      startedAt,
      durationMs: finishedAt - startedAt,
      finishedAt,
      ...(typeof reply === 'object' && 'denials' in reply && reply.denials?.length ? { permissionDenials: reply.denials } : {}),
    };
  }
}

function resultFor(text: string, sessionId: string) {
  return {
    type: 'result' as const,
    subtype: 'success',
    is_error: false,
    result: text,
    session_id: sessionId,
    duration_ms: 1,
    num_turns: 1,
    total_cost_usd: 0.0001,
    api_error_status: null,
    stop_reason: 'end_turn',
  };
}
