import type { CheckResult, IterationRecord, IterationSummary } from '../src/core/types.js';
import { fnv1a } from './fnv.js';

/**
 * The small summary of an iteration that later iterations (and the DecisionEngine's stuck detection) see.
 * It lives in the task machine's context, so it is kept short: the full record is in the store.
 */
export function summarizeIteration(record: IterationRecord): IterationSummary {
  const answer = record.validation?.answer ?? '';
  const failing = record.checks.filter((c) => c.exitCode !== 0);
  const codes = record.validation?.codes ?? [];
  return {
    index: record.index,
    decision: record.decision,
    quality: record.quality ?? 0,
    confidence: record.confidence ?? 0,
    answerExcerpt: excerpt(answer),
    // The full feedback travels in the task's `feedback`; the summary keeps a glimpse for the prompt's history.
    feedback: record.feedback === null ? null : record.feedback.length > 200 ? `${record.feedback.slice(0, 200)}…` : record.feedback,
    failingChecks: failing.map((c) => c.command),
    validationCodes: codes,
    rule: record.decisionRule,
    failureFingerprint: failureFingerprint(failing, record.validation?.ok === false ? codes : []),
  };
}

/** The first 400 characters with whitespace collapsed: "the same answer" ignores re-wrapping. */
export function excerpt(answer: string): string {
  const flat = answer.replace(/\s+/g, ' ').trim();
  return flat.length > 400 ? `${flat.slice(0, 400)}…` : flat;
}

/**
 * A short hash of what failed: each failing check's command, exit code and output with timings, addresses and
 * dates removed (so the same failure run twice looks the same), plus the validator's codes. '' when nothing
 * failed.
 */
export function failureFingerprint(failing: Pick<CheckResult, 'command' | 'exitCode' | 'outputTail'>[], validationCodes: string[]): string {
  if (!failing.length && !validationCodes.length) return '';
  const parts = [
    ...failing.map((c) => `${c.command}\u0000${c.exitCode ?? 'x'}\u0000${normaliseOutput(c.outputTail)}`).sort(),
    `codes:${[...validationCodes].sort().join(',')}`,
  ];
  return fnv1a(parts.join('\u0001')).toString(16).padStart(8, '0');
}

export function normaliseOutput(text: string): string {
  return text
    .replace(/\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?Z?/g, '<time>')
    .replace(/\b\d+(\.\d+)?\s*(ms|s|sec|secs|seconds|m|min)\b/g, '<dur>')
    .replace(/\b0x[0-9a-f]+\b/gi, '<addr>')
    .replace(/\/tmp\/[^\s'"]+/g, '<tmp>')
    .replace(/\s+/g, ' ')
    .trim();
}
