import type { AgentCallRecord, CheckResult, QualityReport, TaskSpec, ValidationVerdict } from '../core/types.js';
import type { JudgeOutcome, LlmJudge } from './llm-judge.js';

export interface QualityWeights {
  syntax: number;
  requirements: number;
  code_quality: number;
  testing: number;
}

export const DEFAULT_QUALITY_WEIGHTS: QualityWeights = { syntax: 0.2, requirements: 0.3, code_quality: 0.3, testing: 0.2 };

export interface QualityInput {
  task: TaskSpec;
  call: AgentCallRecord;
  validation: ValidationVerdict;
  checks: CheckResult[];
}

export interface QualityOptions {
  weights?: QualityWeights;
  /** The optional LLM judge and the share of the score its verdict takes. */
  judge?: { judge: Pick<LlmJudge, 'judge'>; weight: number } | null;
}

const ERROR_WORDS = /\b(error|errors|failed|failure|cannot|can't|unable to|traceback|exception|not working|doesn't work|broken)\b/gi;
const CLAIMS_TESTS = /\b((tests?|they|checks?|everything)( now| all)? (pass|passed|passing|succeed|succeeded|are green)|all (tests )?green|verified)\b/i;
const CLAIMS_CHANGES = /\b(created|wrote|written|added|updated|fixed|implemented|edited|changed|modified|refactored|removed|renamed|migrated)\b/i;
const STOPWORDS = new Set(['with', 'that', 'this', 'from', 'into', 'them', 'then', 'than', 'your', 'have', 'should', 'would', 'could', 'make', 'sure', 'there', 'their', 'which', 'what', 'when', 'where', 'while', 'also', 'only', 'each', 'every', 'file', 'files', 'code']);

/**
 * A quality score in [0, 1] with its breakdown, from three kinds of evidence:
 *  - heuristics in the original Obra's four weighted parts — syntax (is the reply well-formed), requirements
 *    (does it cover what was asked), code quality (error words, claimed vs. shown work) and testing;
 *  - objective checks (the user's commands): they make up *testing* when there are any;
 *  - an optional LLM judge, blended in with its configured weight; when it fails, its warning is kept and the
 *    score comes from the rest.
 */
export class QualityController {
  private readonly weights: QualityWeights;
  private readonly judge: QualityOptions['judge'];

  constructor(options: QualityOptions | QualityWeights = {}) {
    const o: QualityOptions = 'syntax' in options ? { weights: options as QualityWeights } : (options as QualityOptions);
    this.weights = o.weights ?? DEFAULT_QUALITY_WEIGHTS;
    this.judge = o.judge ?? null;
  }

  /** Heuristics and checks only (synchronous, no judge). */
  score({ task, call, validation, checks }: QualityInput): QualityReport {
    const answer = validation.answer ?? '';
    const notes: string[] = [];
    const hard = ['is_error', 'malformed', 'empty', 'timeout', 'crashed', 'fatal', 'not_an_answer', 'validator_error'];

    const syntax = validation.ok ? 1 : validation.codes.some((c) => hard.includes(c)) ? 0 : 0.5;

    const coverage = taskCoverage(task.text, answer);
    let requirements = validation.ok ? 0.7 + 0.3 * coverage : 0.4;
    if (answer) notes.push(`the answer mentions ${Math.round(coverage * 100)}% of the task's key words`);
    if (task.requiredMarkers.length) {
      const present = task.requiredMarkers.filter((m) => answer.includes(m)).length;
      requirements = Math.min(requirements, present / task.requiredMarkers.length);
      notes.push(`${present}/${task.requiredMarkers.length} required markers present`);
    }
    if (validation.codes.includes('question_only')) requirements = Math.min(requirements, 0.3);
    if (validation.codes.includes('error_max_turns') || validation.codes.includes('truncated')) requirements = Math.min(requirements, 0.5);

    const errorWords = answer.match(ERROR_WORDS)?.length ?? 0;
    let codeQuality = answer ? Math.max(0, 1 - 0.15 * errorWords) : 0;
    if (errorWords) notes.push(`${errorWords} error word(s) in the answer`);
    if (answer && CLAIMS_CHANGES.test(answer) && !showsWork(call)) {
      codeQuality = Math.max(0, codeQuality - 0.2);
      notes.push('the answer claims changes but the agent used no tools in this call');
    }

    let testing: number;
    if (checks.length) {
      const passed = checks.filter((c) => c.exitCode === 0).length;
      testing = passed / checks.length;
      notes.push(`${passed}/${checks.length} checks passed`);
      // Saying the tests pass when they do not is worse than saying nothing.
      if (passed < checks.length && CLAIMS_TESTS.test(answer)) {
        codeQuality = Math.max(0, codeQuality - 0.3);
        notes.push('the answer claims the work is verified but checks fail');
      }
    } else {
      testing = CLAIMS_TESTS.test(answer) ? 0.8 : 0.6;
      notes.push('no acceptance checks configured: testing scored from the answer alone');
    }

    const breakdown: Record<string, number> = { syntax, requirements: round(requirements), code_quality: round(codeQuality), testing: round(testing) };
    const w = this.weights;
    const total = w.syntax + w.requirements + w.code_quality + w.testing || 1;
    const score = (syntax * w.syntax + requirements * w.requirements + codeQuality * w.code_quality + testing * w.testing) / total;
    return { score: round(score), breakdown, checks, warnings: [], notes };
  }

  /** The full assessment: heuristics and checks, then the LLM judge when one is configured. */
  async assess(input: QualityInput, signal?: AbortSignal): Promise<QualityReport> {
    const report = this.score(input);
    if (!this.judge || this.judge.weight <= 0) return report;
    if (!input.validation.answer?.trim()) {
      report.notes.push('LLM judge skipped: there is no answer to judge');
      return report;
    }
    let outcome: JudgeOutcome;
    try {
      outcome = await this.judge.judge.judge({ task: input.task.text, answer: input.validation.answer, checks: input.checks, signal });
    } catch (error) {
      // A judge must not throw, but a custom one might: the run goes on without it.
      outcome = { ok: false, warning: `LLM judge failed: ${(error as Error)?.message ?? String(error)}; quality scored from checks and heuristics only`, durationMs: 0 };
    }
    return blendJudge(report, outcome, this.judge.weight);
  }
}

/** Mixes the judge's verdict into the report (or records why it could not). */
export function blendJudge(report: QualityReport, outcome: JudgeOutcome, weight: number): QualityReport {
  if (!outcome.ok) return { ...report, warnings: [...report.warnings, outcome.warning] };
  const v = outcome.verdict;
  return {
    ...report,
    score: round((1 - weight) * report.score + weight * v.score),
    breakdown: { ...report.breakdown, judge: round(v.score) },
    notes: [
      ...report.notes,
      `LLM judge ${outcome.model} (${outcome.durationMs} ms): ${v.score.toFixed(2)} — correctness ${v.correctness.toFixed(2)}, completeness ${v.completeness.toFixed(2)}, verification ${v.verification.toFixed(2)}: ${v.summary.slice(0, 200)}`,
    ],
  };
}

/** Share of the task's key words (a crude stem: the first five letters) that the answer mentions. */
export function taskCoverage(task: string, answer: string): number {
  const stem = (w: string) => w.toLowerCase().slice(0, 5);
  const keys = new Set((task.match(/[A-Za-z][A-Za-z0-9_]{3,}/g) ?? []).filter((w) => !STOPWORDS.has(w.toLowerCase())).map(stem));
  if (!keys.size) return 1;
  const said = new Set((answer.match(/[A-Za-z][A-Za-z0-9_]{3,}/g) ?? []).map(stem));
  let hits = 0;
  for (const key of keys) if (said.has(key)) hits++;
  return hits / keys.size;
}

/** Whether the call shows work: tool uses in the stream, or more than one turn. */
function showsWork(call: AgentCallRecord): boolean {
  if (call.outcome.kind !== 'answer') return false;
  if ((call.outcome.result.num_turns ?? 0) > 1) return true;
  if (call.work && (call.work.toolCalls > 0 || call.work.filesChanged.length > 0)) return true;
  return /"type"\s*:\s*"tool_use"/.test(call.stdout ?? '');
}

export const round = (n: number) => Math.round(n * 1000) / 1000;
