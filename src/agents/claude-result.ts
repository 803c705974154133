import { z } from 'zod';
import type { AgentResult } from '../core/types.js';

/**
 * The result object of `claude -p --output-format json` (and the last line of `stream-json`). Only the fields
 * Obra uses are required; the rest (modelUsage, uuid, timings...) pass through untouched.
 */
export const claudeResultSchema = z.looseObject({
  type: z.literal('result'),
  subtype: z.string(),
  is_error: z.boolean(),
  result: z.string().default(''),
  session_id: z.string(),
  duration_ms: z.number().default(0),
  num_turns: z.number().default(0),
  total_cost_usd: z.number().default(0),
  api_error_status: z.number().nullable().optional(),
  stop_reason: z.string().nullable().optional(),
  usage: z.record(z.string(), z.unknown()).optional(),
  permission_denials: z.array(z.looseObject({ tool_name: z.string(), tool_use_id: z.string().optional(), tool_input: z.unknown().optional() })).optional(),
});

/**
 * Finds the result object in what the CLI printed: the whole stdout for `json`, the last `result` line for
 * `stream-json`. Returns null when there is none.
 */
export function parseClaudeOutput(stdout: string): { result: AgentResult | null; error: string | null } {
  const trimmed = stdout.trim();
  if (!trimmed) return { result: null, error: 'the agent printed nothing on stdout' };
  const lines = trimmed.split('\n').reverse();
  let lastError = 'no JSON result object in the output';
  for (const line of lines) {
    const text = line.trim();
    if (!text.startsWith('{')) continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      lastError = 'the output is not valid JSON';
      continue;
    }
    if ((json as { type?: unknown }).type !== 'result') continue;
    const parsed = claudeResultSchema.safeParse(json);
    if (parsed.success) return { result: parsed.data as AgentResult, error: null };
    lastError = `the result object does not match the CLI's format: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join(', ')}`;
  }
  return { result: null, error: lastError };
}
