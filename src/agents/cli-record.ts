import type { AgentCallRecord, AgentOutcome, SessionMode } from '../core/types.js';

/** What a call record keeps of a CLI's output: enough to debug and replay, bounded so journals stay small. */
const KEPT_STDOUT_CHARS = 256 * 1024;
const KEPT_STDERR_CHARS = 16 * 1024;

export interface CallStart {
  argv: string[];
  mode: SessionMode;
  startedAt: number;
}

/** The record of one CLI call, its output clipped in the middle (the start and the end say the most). */
export function cliRecord(start: CallStart, sessionId: string, outcome: AgentOutcome, exitCode: number | null, signal: string | null, stdout: string, stderr: string): AgentCallRecord {
  const finishedAt = Date.now();
  return {
    argv: start.argv,
    sessionId,
    mode: start.mode,
    startedAt: start.startedAt,
    outcome,
    exitCode,
    signal,
    stdout: clip(stdout, KEPT_STDOUT_CHARS),
    stderr: clip(stderr, KEPT_STDERR_CHARS),
    durationMs: finishedAt - start.startedAt,
    finishedAt,
  };
}

function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  const head = Math.floor(max / 4);
  return `${text.slice(0, head)}\n…[${text.length - max} characters left out]…\n${text.slice(text.length - (max - head))}`;
}
