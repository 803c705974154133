import { Ollama } from 'ollama';
import { z } from 'zod';
import type { JudgeConfig } from '../config/schema.js';
import type { CheckResult } from '../core/types.js';

/**
 * The optional LLM judge: a local model behind Ollama's HTTP API grades an answer against a rubric and
 * answers in JSON, which zod validates. It is advice, not a gate: when the judge is unreachable, slow, or
 * answers garbage or out-of-range scores, `judge()` says so in a warning and the quality score is computed
 * from the other evidence. It never throws.
 */

const unit = z.number().min(0).max(1);

/** What the judge must answer. Each part and the overall score in [0, 1]. */
export const judgeVerdictSchema = z.object({
  correctness: unit,
  completeness: unit,
  verification: unit,
  score: unit,
  summary: z.string().max(2000),
});
export type JudgeVerdict = z.infer<typeof judgeVerdictSchema>;

/** Sent as Ollama's `format` (structured outputs), so a capable model answers in exactly this shape. */
export const JUDGE_FORMAT = z.toJSONSchema(judgeVerdictSchema);

export const RUBRIC = `You grade the work of a coding agent. Judge only what the answer and the check results show.
Score each part from 0 to 1:
- correctness: does the described change do what the task asks, without obvious mistakes?
- completeness: is every part of the task addressed, or does the answer leave work out?
- verification: did the agent show that it checked its work (tests run, output shown), and do the checks pass?
- score: your overall grade from 0 to 1.
- summary: one or two sentences explaining the grade.
Answer with a single JSON object with exactly these keys: correctness, completeness, verification, score, summary.`;

export type JudgeOutcome =
  | { ok: true; verdict: JudgeVerdict; model: string; durationMs: number }
  | { ok: false; warning: string; durationMs: number };

export interface JudgeRequest {
  task: string;
  answer: string;
  checks: CheckResult[];
  signal?: AbortSignal;
}

export class LlmJudge {
  constructor(
    private readonly config: Pick<JudgeConfig, 'model' | 'host' | 'timeout' | 'max_answer_chars'>,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  async judge(request: JudgeRequest): Promise<JudgeOutcome> {
    const started = Date.now();
    const timeoutMs = this.config.timeout * 1000;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = request.signal ? AbortSignal.any([timeout, request.signal]) : timeout;
    const client = new Ollama({ host: this.config.host, fetch: this.fetchWith(signal) });
    const fail = (warning: string): JudgeOutcome => ({ ok: false, warning: `LLM judge (${this.config.model} at ${this.config.host}) ${warning}; quality scored from checks and heuristics only`, durationMs: Date.now() - started });

    let content: string;
    try {
      const response = await client.chat({
        model: this.config.model,
        stream: false,
        format: JUDGE_FORMAT,
        options: { temperature: 0 },
        messages: [
          { role: 'system', content: RUBRIC },
          { role: 'user', content: judgePrompt(request, this.config.max_answer_chars) },
        ],
      });
      content = typeof response?.message?.content === 'string' ? response.message.content : '';
    } catch (error) {
      if (timeout.aborted) return fail(`did not answer within ${this.config.timeout}s`);
      if (request.signal?.aborted) return fail('was stopped because the run was stopped');
      return fail(describeFailure(error));
    }

    let json: unknown;
    try {
      json = JSON.parse(content);
    } catch {
      return fail(`answered something that is not JSON (${JSON.stringify(content.slice(0, 80))})`);
    }
    const parsed = judgeVerdictSchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'answer'}: ${i.message}${valueAt(json, i.path)}`).slice(0, 3);
      return fail(`answered JSON that does not fit the rubric (${problems.join('; ')})`);
    }
    return { ok: true, verdict: parsed.data, model: this.config.model, durationMs: Date.now() - started };
  }

  /** The client's fetch, bounded by our signal; a non-JSON error page becomes JSON so the client stays quiet. */
  private fetchWith(signal: AbortSignal): typeof fetch {
    return async (url, init) => {
      const response = await this.fetchImpl(url, { ...init, signal });
      if (response.ok || response.headers.get('content-type')?.includes('application/json')) return response;
      const text = await response.text().catch(() => '');
      return new Response(JSON.stringify({ error: text.slice(0, 200) || `HTTP ${response.status}` }), {
        status: response.status,
        statusText: response.statusText,
        headers: { 'content-type': 'application/json' },
      });
    };
  }
}

export function judgePrompt(request: JudgeRequest, maxAnswerChars: number): string {
  const answer = request.answer.length > maxAnswerChars ? `${request.answer.slice(0, maxAnswerChars)}\n…(cut)` : request.answer;
  const checks = request.checks.length
    ? request.checks.map((c) => `- \`${c.command}\`: ${c.exitCode === 0 ? 'passed' : c.exitCode === null ? 'did not finish' : `failed (exit ${c.exitCode})`}`).join('\n')
    : '(no acceptance checks configured)';
  return `## Task\n${request.task}\n\n## The agent's answer\n${answer}\n\n## Acceptance checks run after the answer\n${checks}`;
}

function describeFailure(error: unknown): string {
  const e = error as { name?: string; status_code?: number; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'ResponseError' && typeof e.status_code === 'number') return `answered HTTP ${e.status_code}: ${String(e.message).slice(0, 160)}`;
  const code = e?.cause?.code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ECONNRESET') return `is unreachable (${code})`;
  if (e instanceof SyntaxError) return `answered something that is not JSON (${e.message.slice(0, 80)})`;
  return `failed: ${(e?.cause?.message ?? e?.message ?? String(error)).slice(0, 160)}`;
}

function valueAt(json: unknown, path: PropertyKey[]): string {
  let node = json;
  for (const part of path) node = node && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[part] : undefined;
  return node === undefined || typeof node === 'object' ? '' : ` — got ${JSON.stringify(node)}`;
}
