import { describe, expect, it } from 'vitest';
import { runTask } from '../../src/index.js';
import { harness } from './helpers.js';

/**
 * `context.history_window` only decides how many earlier iterations the prompt summarises; stuck detection
 * looks back `decision.stuck_after` iterations (and four for an A/B alternation) whatever it is set to. A
 * small window, set the way a user sets it, must not switch stuck detection off.
 */

const QUESTION = 'Which database should I migrate?';
const TASK = 'Migrate the database to the new schema';
/** The lines of the "Progress so far" section of a prompt (one per summarised iteration). */
const summaries = (prompt: string) => prompt.split('\n').filter((line) => /^- Iteration \d+:/.test(line)).map((line) => line.match(/^- Iteration (\d+):/)![1]);

describe('stuck detection does not depend on context.history_window', () => {
  for (const window of [0, 1, 2, 5]) {
    it(`history_window: ${window}: the same answer three times escalates with rule "stuck"`, async () => {
      const h = harness([QUESTION, QUESTION, QUESTION, QUESTION, QUESTION], { context: { history_window: window } });
      const result = await runTask({ ...h.options(), task: TASK });

      expect(result.status).toBe('escalated');
      expect(result.iterations.map((i) => [i.decision, i.decisionRule])).toEqual([
        ['retry', 'validationFailed'],
        ['retry', 'validationFailed'],
        ['escalate', 'stuck'],
      ]);
      expect(result.question).toBe('the agent gave the same answer 3 times in a row');
      expect(h.trace.guards()).toEqual(['decidedRetry', 'decidedRetry', 'decidedEscalate']);
      expect(h.trace.states().at(-1)).toBe('awaitingHuman');
      expect(h.agent.requests).toHaveLength(3);
      // The window still shapes the prompt: the third one summarises at most `window` earlier iterations.
      expect(summaries(h.agent.requests[2]!.prompt)).toEqual(['1', '2'].slice(2 - Math.min(window, 2)));
    });
  }

  it('history_window: 1 with stuck_after: 6: escalates on the sixth identical answer, not before', async () => {
    // Six in a row needs five earlier summaries: more than the window (1) and more than the four of A/B.
    const h = harness(Array.from({ length: 9 }, () => QUESTION), { context: { history_window: 1 }, decision: { stuck_after: 6, max_retries_per_goal: 10 } });
    const result = await runTask({ ...h.options(), task: TASK });
    expect(result.status).toBe('escalated');
    expect(result.iterations.map((i) => i.decisionRule)).toEqual([...Array.from({ length: 5 }, () => 'validationFailed'), 'stuck']);
    expect(result.question).toBe('the agent gave the same answer 6 times in a row');
    expect(summaries(h.agent.requests[5]!.prompt)).toEqual(['5']);
  });

  it('history_window: 1, stuck_after: 2: an A/B alternation over four iterations is still seen', async () => {
    // A, B, A, B needs three earlier summaries: more than the window (1) and than stuck_after (2).
    const a = 'Added greet(name) to greet.js and tested it by hand.\nSTATUS: CONTINUE';
    const b = 'Removed greet(name) again: it did not belong in greet.js.\nSTATUS: CONTINUE';
    const h = harness([a, b, a, b, a, b], { context: { history_window: 1 }, decision: { stuck_after: 2 } });
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function to greet.js' });
    expect(result.status).toBe('escalated');
    expect(result.iterations.map((i) => [i.decision, i.decisionRule])).toEqual([
      ['proceed', 'progressing'],
      ['proceed', 'progressing'],
      ['proceed', 'progressing'],
      ['escalate', 'stuck'],
    ]);
    expect(result.question).toBe('the agent alternates between two answers (A, B, A, B)');
  });
});
