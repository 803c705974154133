import { describe, expect, it } from 'vitest';
import { ContextManager } from '../../src/context/context-manager.js';
import type { IterationSummary, TaskSpec } from '../../src/core/types.js';
import { PromptGenerator } from '../../src/prompt/prompt-generator.js';

const task: TaskSpec = { text: 'Add a CSV export to the report page', workdir: '/w', checks: ['npm test'], requiredMarkers: [] };
const summary = (index: number, extra: Partial<IterationSummary> = {}): IterationSummary => ({
  index,
  decision: 'proceed',
  quality: 0.8,
  confidence: 0.75,
  answerExcerpt: `answer of iteration ${index} `.repeat(8),
  feedback: null,
  failingChecks: [],
  validationCodes: [],
  ...extra,
});

describe('ContextManager', () => {
  it('puts the task, the checks, the history and the feedback in the context', () => {
    const text = new ContextManager(16_000).build({
      task,
      index: 3,
      history: [summary(1), summary(2, { decision: 'retry', failingChecks: ['npm test'] })],
      feedback: 'The check `npm test` failed: 2 tests failing.',
    });
    expect(text).toContain('## Task\nAdd a CSV export to the report page');
    expect(text).toContain('- `npm test`');
    expect(text).toContain('- Iteration 1: proceed (quality 0.80, confidence 0.75)');
    expect(text).toContain('- Iteration 2: retry (quality 0.80, confidence 0.75); failing checks: npm test');
    expect(text).toContain('## Feedback to address first\nThe check `npm test` failed');
    expect(text.indexOf('Iteration 1')).toBeLessThan(text.indexOf('Iteration 2'));
  });

  it('stays within its size budget by dropping the oldest history first, never the task or the feedback', () => {
    const history = Array.from({ length: 40 }, (_, i) => summary(i + 1));
    const budget = 2_000;
    const text = new ContextManager(budget).build({ task, index: 41, history, feedback: 'Fix the header row.' });
    expect(text.length).toBeLessThanOrEqual(budget);
    expect(text).toContain('Add a CSV export');
    expect(text).toContain('Fix the header row.');
    expect(text).toContain('- Iteration 40:');
    expect(text).not.toContain('- Iteration 1:');
    const omitted = Number(/\((\d+) earlier iterations omitted/.exec(text)?.[1]);
    const kept = (text.match(/^- Iteration \d+:/gm) ?? []).length;
    expect(omitted + kept).toBe(40);
  });

  it('clips a task longer than half the budget', () => {
    const long = { ...task, text: 'x'.repeat(10_000) };
    const text = new ContextManager(2_000).build({ task: long, index: 1, history: [], feedback: null });
    expect(text.length).toBeLessThanOrEqual(2_000);
    expect(text).toContain('…(truncated)');
  });
});

describe('PromptGenerator', () => {
  it('renders the context, the iteration number and the status instructions', () => {
    const prompt = new PromptGenerator().render({ context: '## Task\nDo it', iteration: 4 });
    expect(prompt).toContain('(iteration 4)');
    expect(prompt).toContain('## Task\nDo it');
    expect(prompt).toMatch(/`STATUS: DONE`.*`STATUS: CONTINUE`/s);
  });

  it('accepts a custom template and rejects one without {{context}}', () => {
    expect(new PromptGenerator('Task #{{iteration}}: {{context}}').render({ context: 'C', iteration: 2 })).toBe('Task #2: C');
    expect(() => new PromptGenerator('no placeholder')).toThrow(/must contain \{\{context\}\}/);
  });
});
