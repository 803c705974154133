import { jsonEventsOf, jsonObjectOf } from '../json-line.js';

/**
 * `opencode run --format json`'s event stream (measured on opencode 1.18.33; real samples in
 * fixtures/agent-clis/opencode/): one JSON object per line, each with `type`, `timestamp` and `sessionID` (the
 * session, `ses_…`, on every line) — `step_start` (a model call begins), `text{part.text}` (a finished text part),
 * `tool_use{part.tool, part.state{status, input, output, error, metadata{filepath}}}`, `step_finish{part.reason,
 * part.tokens{input, output, reasoning, cache{read, write}}, part.cost}` and `error{error{name, data{message,
 * statusCode, isRetryable}}}`. There is no final result event: the run ends when the process exits.
 */

/** A tool use opencode refused: the rule Obra's permissions set, or the model calling a tool that was not offered. */
export interface OpencodeRefusal {
  tool: string;
  /** The command, or the file's path. */
  input: string;
  /**
   * `rule`: a deny rule; `rejected`: an `ask` rule, auto-rejected in `run` (the run stops); `unavailable`: the tool
   * was not offered (its last rule is `*: deny`), so the call's input is unknown.
   */
  why: 'rule' | 'rejected' | 'unavailable';
  /** The refusal came from the `external_directory` rule: the path is outside the working directory. */
  outside: boolean;
}

export interface OpencodeTurn {
  sessionId: string | null;
  /** The text parts after the last `step_start`, joined: the answer. */
  answer: string;
  /** Paths `write` / `edit` / `patch` wrote (`state.metadata.filepath`). */
  filesChanged: string[];
  /** Every tool use, by name. */
  toolCalls: number;
  refused: OpencodeRefusal[];
  /** `step_finish` events: model calls that completed. */
  steps: number;
  /** Summed over the steps: `input` leaves out the cache's reads and writes, which come apart. */
  tokens: { input: number; output: number; reasoning: number; cacheRead: number; cacheWrite: number };
  /** The steps' `cost` summed (USD): 0 unless the model has a price in opencode's config. */
  cost: number;
  /** The `error` event that ended the run (after the CLI's own retries). */
  error: { name: string; message: string; status: number | null; retryable: boolean } | null;
  /** Lines that were not JSON events. */
  junk: number;
}

export type OpencodeProgress = { kind: 'text'; text: string } | { kind: 'tool'; name: string; input: unknown } | { kind: 'other' };

const WRITE_TOOLS = new Set(['write', 'edit', 'patch', 'multiedit']);
const DENIED_BY_RULE = /^The user has specified a rule which prevents you from using this specific tool call/;
const REJECTED = /^The user rejected permission to use this specific tool call/;
const UNAVAILABLE = /Model tried to call unavailable tool '([^']+)'/;

interface ToolPart {
  tool?: string;
  state?: { status?: string; input?: Record<string, unknown>; error?: unknown; metadata?: { filepath?: unknown } };
}

/** The progress one stream line carries, for the terminal and the inspector; null for a line that is not an event. */
export function opencodeProgressOf(line: string): OpencodeProgress | null {
  const event = jsonObjectOf(line);
  if (!event) return null;
  const part = (event.part ?? {}) as { text?: unknown } & ToolPart;
  if (event.type === 'text' && typeof part.text === 'string') return { kind: 'text', text: part.text };
  if (event.type === 'tool_use' && typeof part.tool === 'string') return { kind: 'tool', name: part.tool, input: part.state?.input ?? {} };
  return { kind: 'other' };
}

const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0);

/** Reads a whole call's stdout. */
export function readOpencodeTurn(stdout: string): OpencodeTurn {
  const turn: OpencodeTurn = { sessionId: null, answer: '', filesChanged: [], toolCalls: 0, refused: [], steps: 0, tokens: { input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0 }, cost: 0, error: null, junk: 0 };
  let texts: string[] = [];
  const { events, junk } = jsonEventsOf(stdout);
  turn.junk = junk;
  for (const event of events) {
    if (typeof event.sessionID === 'string') turn.sessionId ??= event.sessionID;
    const part = (event.part ?? {}) as Record<string, unknown>;
    switch (event.type) {
      case 'step_start':
        // Text of an earlier step came before a tool call: the answer is the last step's.
        texts = [];
        break;
      case 'text':
        if (typeof part.text === 'string') texts.push(part.text);
        break;
      case 'tool_use':
        turn.toolCalls++;
        readTool(part as ToolPart, turn);
        break;
      case 'step_finish': {
        turn.steps++;
        const tokens = (part.tokens ?? {}) as Record<string, unknown>;
        const cache = (tokens.cache ?? {}) as Record<string, unknown>;
        turn.tokens.input += count(tokens.input);
        turn.tokens.output += count(tokens.output);
        turn.tokens.reasoning += count(tokens.reasoning);
        turn.tokens.cacheRead += count(cache.read);
        turn.tokens.cacheWrite += count(cache.write);
        turn.cost += count(part.cost);
        break;
      }
      case 'error': {
        const error = (event.error ?? {}) as { name?: unknown; data?: { message?: unknown; statusCode?: unknown; isRetryable?: unknown } };
        turn.error = {
          name: typeof error.name === 'string' ? error.name : 'Error',
          message: typeof error.data?.message === 'string' ? error.data.message : 'opencode reported an error',
          status: typeof error.data?.statusCode === 'number' ? error.data.statusCode : null,
          retryable: error.data?.isRetryable === true,
        };
        break;
      }
    }
  }
  turn.answer = texts.join('');
  return turn;
}

function readTool(part: ToolPart, turn: OpencodeTurn): void {
  const tool = part.tool ?? 'unknown';
  const state = part.state ?? {};
  const input = state.input ?? {};
  if (state.status === 'completed' && WRITE_TOOLS.has(tool)) {
    const path = typeof state.metadata?.filepath === 'string' ? state.metadata.filepath : typeof input.filePath === 'string' ? input.filePath : null;
    if (path && !turn.filesChanged.includes(path)) turn.filesChanged.push(path);
  }
  // A tool whose last rule is `*: deny` is not offered: the model's call comes back as tool `invalid`, without its input.
  if (tool === 'invalid') {
    const m = UNAVAILABLE.exec(typeof input.error === 'string' ? input.error : '');
    if (m) turn.refused.push({ tool: m[1]!, input: '(not offered)', why: 'unavailable', outside: false });
    return;
  }
  if (state.status !== 'error' || typeof state.error !== 'string') return;
  const why = DENIED_BY_RULE.test(state.error) ? 'rule' : REJECTED.test(state.error) ? 'rejected' : null;
  if (!why) return;
  const what = typeof input.command === 'string' ? input.command : typeof input.filePath === 'string' ? input.filePath : typeof input.url === 'string' ? input.url : JSON.stringify(input).slice(0, 200);
  turn.refused.push({ tool, input: what, why, outside: state.error.includes('"permission":"external_directory"') });
}
