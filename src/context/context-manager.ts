import type { IterationSummary, TaskSpec } from '../core/types.js';

export interface ContextRequest {
  task: TaskSpec;
  index: number;
  history: IterationSummary[];
  feedback: string | null;
}

/**
 * Assembles what the agent needs to know for the next iteration: the task, what earlier iterations did, and
 * the feedback to address — trimmed to a size budget. The task and the feedback always stay; older history
 * goes first when space runs out, so the newest progress is never the part that is cut.
 */
export class ContextManager {
  private readonly maxChars: number;
  private readonly historyWindow: number;

  constructor(options: number | { maxChars: number; historyWindow?: number }) {
    const o = typeof options === 'number' ? { maxChars: options } : options;
    this.maxChars = o.maxChars;
    this.historyWindow = o.historyWindow ?? Infinity;
  }

  build({ task, index, history: allHistory, feedback }: ContextRequest): string {
    // The task keeps a few more summaries than the prompt shows (stuck detection needs them).
    const history = this.historyWindow === Infinity ? allHistory : allHistory.slice(allHistory.length - this.historyWindow);
    const last = allHistory.at(-1);
    // A clarify decision asks a follow-up in the same session: the conversation already holds the context.
    if (last?.decision === 'clarify' && feedback) return section('Follow-up question', clip(feedback, Math.floor(this.maxChars * 0.5)));
    const taskPart = section('Task', clip(task.text, Math.floor(this.maxChars * 0.5)));
    const feedbackPart = feedback ? section('Feedback to address first', clip(feedback, Math.floor(this.maxChars * 0.25))) : '';
    const checksPart = task.checks.length ? section('Acceptance checks (run after your answer)', task.checks.map((c) => `- \`${c}\``).join('\n')) : '';
    const fixed = [taskPart, checksPart, feedbackPart].filter(Boolean);

    let room = this.maxChars - fixed.join('\n\n').length - 64;
    const lines: string[] = [];
    for (const summary of [...history].reverse()) {
      const line = describe(summary);
      if (line.length > room) break;
      lines.unshift(line);
      room -= line.length + 1;
    }
    const omitted = history.length - lines.length;
    const historyPart =
      index > 1
        ? section(
            'Progress so far',
            [omitted > 0 ? `(${omitted} earlier iteration${omitted === 1 ? '' : 's'} omitted to fit the context budget)` : '', ...lines]
              .filter(Boolean)
              .join('\n') || '(no summaries kept)',
          )
        : '';
    return [taskPart, checksPart, historyPart, feedbackPart].filter(Boolean).join('\n\n');
  }
}

function describe(s: IterationSummary): string {
  const parts = [`- Iteration ${s.index}: ${s.decision} (quality ${s.quality.toFixed(2)}, confidence ${s.confidence.toFixed(2)})`];
  if (s.failingChecks.length) parts.push(`failing checks: ${s.failingChecks.join(', ')}`);
  if (s.validationCodes.length) parts.push(`problems: ${s.validationCodes.join(', ')}`);
  if (s.answerExcerpt) parts.push(`answer: "${s.answerExcerpt.replace(/\s+/g, ' ').slice(0, 200)}"`);
  return parts.join('; ');
}

function section(title: string, body: string): string {
  return `## ${title}\n${body}`;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 20))}\n…(truncated)`;
}
