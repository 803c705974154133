import { jsonEventsOf, jsonObjectOf } from '../json-line.js';

/**
 * `codex exec --json`'s event stream (measured on Codex 0.171.0; real samples in fixtures/agent-clis/codex/):
 * `thread.started{thread_id}` (the session id), `turn.started`, `item.started|updated|completed{item}` with
 * `agent_message{text}`, `file_change{changes[{path,kind}],status}`, `command_execution{command,
 * aggregated_output,exit_code,status}` and `error{message}` (a warning), `turn.completed{usage}` — usage that is
 * the running total of the whole thread, not the turn's — `turn.failed{error{message}}`, and top-level
 * `error{message}`, one per retry of the CLI's own (`Reconnecting... 2/5 (...)`).
 */

export interface CodexUsage {
  input_tokens: number;
  cached_input_tokens: number;
  output_tokens: number;
}

interface CodexItem {
  id?: string;
  type?: string;
  text?: string;
  message?: string;
  command?: string;
  aggregated_output?: string;
  exit_code?: number | null;
  status?: string;
  changes?: { path?: string; kind?: string }[];
}

/** What one call's stream said, once it ended. */
export interface CodexTurn {
  threadId: string | null;
  /** The `text` of the last `agent_message` item: the answer. */
  answer: string | null;
  /** Absolute paths of the completed `file_change` items. */
  filesChanged: string[];
  /** Completed shell commands, with how they ended. */
  commands: { command: string; exitCode: number | null; status: string; output: string }[];
  /** `turn.completed`'s usage (cumulative over the thread), or null when the turn did not complete. */
  usage: CodexUsage | null;
  /** `turn.failed`'s message, or null. */
  failure: string | null;
  /** How many times the CLI reconnected to the API by itself (its `Reconnecting... n/m` errors). */
  reconnects: number;
  /** Lines that were not JSON events. */
  junk: number;
}

export type CodexProgress = { kind: 'text'; text: string } | { kind: 'tool'; name: string; input: unknown } | { kind: 'retry'; attempt: number; maxRetries: number; error: string } | { kind: 'other' };

const RECONNECTING = /^Reconnecting\.\.\. (\d+)\/(\d+)(?: \((.*)\))?$/s;

/** The progress one stream line carries, for the terminal and the inspector; null for a line that is not an event. */
export function codexProgressOf(line: string): CodexProgress | null {
  const event = jsonObjectOf(line);
  if (!event) return null;
  if (event.type === 'error' && typeof event.message === 'string') {
    const m = RECONNECTING.exec(event.message);
    if (m) return { kind: 'retry', attempt: Number(m[1]), maxRetries: Number(m[2]), error: m[3] ?? event.message };
    return { kind: 'other' };
  }
  if (event.type !== 'item.completed') return { kind: 'other' };
  const item = (event.item ?? {}) as CodexItem;
  if (item.type === 'agent_message' && item.text) return { kind: 'text', text: item.text };
  if (item.type === 'file_change') return { kind: 'tool', name: 'file_change', input: { changes: item.changes ?? [] } };
  if (item.type === 'command_execution') return { kind: 'tool', name: 'command_execution', input: { command: item.command } };
  if (item.type && item.type !== 'error' && item.type !== 'reasoning') return { kind: 'tool', name: item.type, input: {} };
  return { kind: 'other' };
}

/** Reads a whole call's stdout. */
export function readCodexTurn(stdout: string): CodexTurn {
  const turn: CodexTurn = { threadId: null, answer: null, filesChanged: [], commands: [], usage: null, failure: null, reconnects: 0, junk: 0 };
  const { events, junk } = jsonEventsOf(stdout);
  turn.junk = junk;
  for (const event of events) {
    switch (event.type) {
      case 'thread.started':
        if (typeof event.thread_id === 'string') turn.threadId = event.thread_id;
        break;
      case 'item.completed': {
        const item = (event.item ?? {}) as CodexItem;
        if (item.type === 'agent_message' && typeof item.text === 'string') turn.answer = item.text;
        else if (item.type === 'file_change' && item.status !== 'failed') {
          for (const change of item.changes ?? []) if (change.path && !turn.filesChanged.includes(change.path)) turn.filesChanged.push(change.path);
        } else if (item.type === 'command_execution') {
          turn.commands.push({ command: item.command ?? '', exitCode: item.exit_code ?? null, status: item.status ?? '', output: item.aggregated_output ?? '' });
        }
        break;
      }
      case 'turn.completed': {
        const usage = (event.usage ?? {}) as Record<string, unknown>;
        turn.usage = { input_tokens: count(usage.input_tokens), cached_input_tokens: count(usage.cached_input_tokens), output_tokens: count(usage.output_tokens) };
        break;
      }
      case 'turn.failed': {
        const error = (event.error ?? {}) as { message?: unknown };
        turn.failure = typeof error.message === 'string' ? error.message : 'the turn failed';
        break;
      }
      case 'error':
        if (typeof event.message === 'string' && RECONNECTING.test(event.message)) turn.reconnects++;
        break;
    }
  }
  return turn;
}

const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0);
