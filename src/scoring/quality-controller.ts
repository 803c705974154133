import type { AgentCallRecord, CheckResult, QualityReport, TaskSpec, ValidationVerdict } from '../core/types.js';

export interface QualityWeights {
  syntax: number;
  requirements: number;
  code_quality: number;
  testing: number;
}

export interface QualityInput {
  task: TaskSpec;
  call: AgentCallRecord;
  validation: ValidationVerdict;
  checks: CheckResult[];
}

const ERROR_WORDS = /\b(error|failed|failure|cannot|can't|unable to|traceback|exception|not working)\b/gi;
const CLAIMS_TESTS = /\b(tests? (pass|passed|passing)|all green|verified)\b/i;

/**
 * A quality score in [0, 1] with its breakdown, from the original Obra's four weighted parts:
 * syntax (is the reply well-formed), requirements (does it cover what was asked), code quality (error words,
 * claimed vs. shown work) and testing (the acceptance checks). Weights come from config.
 */
export class QualityController {
  constructor(private readonly weights: QualityWeights) {}

  score({ task, validation, checks }: QualityInput): QualityReport {
    const answer = validation.answer ?? '';
    const notes: string[] = [];

    const syntax = validation.ok ? 1 : validation.codes.some((c) => ['is_error', 'malformed', 'empty', 'timeout', 'crashed', 'fatal'].includes(c)) ? 0 : 0.5;

    let requirements = validation.ok ? 1 : 0.4;
    if (task.requiredMarkers.length) {
      const present = task.requiredMarkers.filter((m) => answer.includes(m)).length;
      requirements = Math.min(requirements, present / task.requiredMarkers.length);
    }
    if (validation.codes.includes('question_only')) requirements = Math.min(requirements, 0.3);

    const errorWords = answer.match(ERROR_WORDS)?.length ?? 0;
    let codeQuality = answer ? Math.max(0, 1 - 0.15 * errorWords) : 0;
    if (errorWords) notes.push(`${errorWords} error word(s) in the answer`);

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

    const breakdown = { syntax, requirements, code_quality: round(codeQuality), testing: round(testing) };
    const w = this.weights;
    const total = w.syntax + w.requirements + w.code_quality + w.testing || 1;
    const score = (syntax * w.syntax + requirements * w.requirements + codeQuality * w.code_quality + testing * w.testing) / total;
    return { score: round(score), breakdown, checks, warnings: [], notes };
  }
}

export const round = (n: number) => Math.round(n * 1000) / 1000;
