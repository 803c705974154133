import { jsonEventsOf, jsonObjectOf } from '../json-line.js';

/**
 * `gemini -p … -o stream-json` (measured on Gemini CLI 0.61.0; real samples in fixtures/agent-clis/gemini/):
 * `init{session_id,model}`, `message{role,content,delta}` (the prompt's echo, then the answer in chunks),
 * `tool_use{tool_name,tool_id,parameters}`, `tool_result{tool_id,status,output,error{type,message}}`,
 * `error{severity,message}` (a notice) and, last on a normal end, `result{status,error,stats}` with this call's
 * tokens (`stats.input_tokens`, `output_tokens`, `cached`; every model of the call summed, the router's too).
 */

export interface GeminiTurn {
  sessionId: string | null;
  /** The assistant's chunks after the last tool result, joined: the answer. */
  answer: string;
  /** Paths `write_file` / `replace` wrote (as the model sent them). */
  filesChanged: string[];
  /** Tool uses the CLI refused: in `default` mode the write tools are not registered at all. */
  refused: { tool: string; input: string; why: string }[];
  result: { status: string; error: string | null; inputTokens: number; outputTokens: number; cachedTokens: number; toolCalls: number } | null;
}

export type GeminiProgress = { kind: 'text'; text: string } | { kind: 'tool'; name: string; input: unknown } | { kind: 'other' };

const WRITE_TOOLS = new Set(['write_file', 'replace']);

export function geminiProgressOf(line: string): GeminiProgress | null {
  const event = jsonObjectOf(line);
  if (!event) return null;
  if (event.type === 'message' && event.role === 'assistant' && typeof event.content === 'string') return { kind: 'text', text: event.content };
  if (event.type === 'tool_use' && typeof event.tool_name === 'string') return { kind: 'tool', name: event.tool_name, input: event.parameters };
  return { kind: 'other' };
}

const n = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : 0);

export function readGeminiTurn(stdout: string): GeminiTurn {
  const turn: GeminiTurn = { sessionId: null, answer: '', filesChanged: [], refused: [], result: null };
  const uses = new Map<string, { tool: string; params: Record<string, unknown> }>();
  let chunks: string[] = [];
  for (const event of jsonEventsOf(stdout).events) {
    switch (event.type) {
      case 'init':
        if (typeof event.session_id === 'string') turn.sessionId = event.session_id;
        break;
      case 'message':
        if (event.role === 'assistant' && typeof event.content === 'string') chunks.push(event.content);
        break;
      case 'tool_use':
        uses.set(String(event.tool_id), { tool: String(event.tool_name), params: (event.parameters ?? {}) as Record<string, unknown> });
        break;
      case 'tool_result': {
        // Text before a tool's result was the model thinking aloud: the answer is what comes after the last one.
        chunks = [];
        const use = uses.get(String(event.tool_id));
        if (!use) break;
        const path = typeof use.params.file_path === 'string' ? use.params.file_path : '';
        const error = (event.error ?? null) as { type?: string; message?: string } | null;
        if (event.status === 'success' && WRITE_TOOLS.has(use.tool) && path && !turn.filesChanged.includes(path)) turn.filesChanged.push(path);
        if (event.status === 'error' && error?.type === 'tool_not_registered') {
          const input = path || (typeof use.params.command === 'string' ? use.params.command : JSON.stringify(use.params).slice(0, 200));
          turn.refused.push({ tool: use.tool, input, why: error.message ?? 'not registered' });
        }
        break;
      }
      case 'result': {
        const stats = (event.stats ?? {}) as Record<string, unknown>;
        const error = (event.error ?? null) as { message?: string } | null;
        turn.result = {
          status: String(event.status ?? ''),
          error: error?.message ?? null,
          inputTokens: n(stats.input_tokens),
          outputTokens: n(stats.output_tokens),
          cachedTokens: n(stats.cached),
          toolCalls: n(stats.tool_calls),
        };
        break;
      }
    }
  }
  turn.answer = chunks.join('');
  return turn;
}
