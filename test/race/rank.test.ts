import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BatchTask } from '../../src/queue/submit.js';
import { readTasksFile } from '../../src/queue/tasks-file.js';
import { expandRaces } from '../../src/race/race-submit.js';
import { rankAttempts, RANKING_CRITERIA, whyBehind, type AttemptEvidence } from '../../src/race/rank.js';
import { errorOf } from '../helpers/user-error.js';

const expectUserError = (fn: () => unknown, message: string) => expect(errorOf(fn)).toBe(message);

const attempt = (n: number, over: Partial<AttemptEvidence> = {}): AttemptEvidence => ({
  runId: `r-${n}`,
  attempt: n,
  agent: 'claude',
  status: 'done',
  checksPassed: 2,
  checksTotal: 2,
  judge: null,
  quality: 0.9,
  confidence: 0.8,
  costUsd: 0.01,
  costEstimated: false,
  durationMs: 10_000,
  ...over,
});
const order = (...attempts: AttemptEvidence[]) => rankAttempts(attempts).ranked.map((e) => e.attempt);

describe('the ranking of a race', () => {
  it('has the documented order of criteria', () => {
    expect(RANKING_CRITERIA.map((c) => c.name)).toEqual(['ended done', 'checks passed', "judge's verdict", 'quality', 'confidence', 'cost', 'time', 'attempt number']);
  });

  it('decides by the first criterion that differs, each one only on a tie of those before', () => {
    // done beats better everything else
    expect(order(attempt(1, { status: 'failed', costUsd: 0, quality: 1 }), attempt(2))).toEqual([2, 1]);
    // more checks passing beats a higher quality and a lower cost
    expect(order(attempt(1, { checksPassed: 1, quality: 1, costUsd: 0 }), attempt(2))).toEqual([2, 1]);
    // no checks run ranks after checks that ran, even failing ones
    expect(order(attempt(1, { checksPassed: 0, checksTotal: 0 }), attempt(2, { checksPassed: 0 }))).toEqual([2, 1]);
    // the judge before quality; a verdict before none; none and none tie
    expect(order(attempt(1, { judge: 0.6, quality: 1 }), attempt(2, { judge: 0.8 }))).toEqual([2, 1]);
    expect(order(attempt(1, { quality: 1 }), attempt(2, { judge: 0.1 }))).toEqual([2, 1]);
    expect(order(attempt(1, { costUsd: 0.02 }), attempt(2))).toEqual([2, 1]);
    // quality and confidence to 2 decimals: 0.904 and 0.9 tie, and the cost decides
    expect(order(attempt(1, { quality: 0.904, costUsd: 0.02 }), attempt(2))).toEqual([2, 1]);
    expect(order(attempt(1, { quality: 0.92, costUsd: 0.02 }), attempt(2))).toEqual([1, 2]);
    expect(order(attempt(1, { confidence: 0.7 }), attempt(2))).toEqual([2, 1]);
    // time, to a tenth of a second
    expect(order(attempt(1, { durationMs: 12_000 }), attempt(2))).toEqual([2, 1]);
    expect(order(attempt(1, { durationMs: 10_040 }), attempt(2))).toEqual([1, 2]);
    // a tie on everything: the earlier attempt
    expect(order(attempt(3), attempt(2), attempt(1))).toEqual([1, 2, 3]);
  });

  it('names the winner with one reason per other attempt, and no winner when none ended done', () => {
    const failing = attempt(1, { agent: 'gemini', status: 'max_iterations', checksPassed: 0, costUsd: 0 });
    const expensive = attempt(2, { agent: 'claude', costUsd: 0.05 });
    const cheap = attempt(3, { agent: 'codex', costUsd: 0.001, costEstimated: true });
    const ranking = rankAttempts([failing, expensive, cheap]);
    expect(ranking.winner).toBe('r-3');
    expect(ranking.reasons).toEqual(['beats attempt 2 (claude, r-2): cheaper (~$0.0010 against $0.0500)', 'beats attempt 1 (gemini, r-1): ended done (against max_iterations)']);
    expect(whyBehind(expensive, failing)).toBe('behind attempt 2 (claude): ended done (against max_iterations)');

    const none = rankAttempts([failing, attempt(2, { status: 'cancelled' })]);
    expect(none.winner).toBeNull();
    expect(none.reasons).toEqual(['no attempt ended done (attempt 2 (claude) cancelled, attempt 1 (gemini) max_iterations): nothing to merge']);
  });
});

describe('a race submitted', () => {
  let ids = 0;
  const newId = () => `race${++ids}`;

  it('becomes one task per attempt, linked by the race, with `after` of the batch renumbered', () => {
    const batch: BatchTask[] = [
        { task: 'first' },
        { task: 'race it', agents: ['claude', 'codex'], attempts: 2 },
        { task: 'follows the first', after: '@1' },
        { task: 'three of one', attempts: 3, agentKind: 'gemini' },
    ];
    const { tasks, races } = expandRaces(batch, newId);
    expect(races).toEqual([
      { raceId: 'race1', runIds: ['race1-1', 'race1-2', 'race1-3', 'race1-4'] },
      { raceId: 'race2', runIds: ['race2-1', 'race2-2', 'race2-3'] },
    ]);
    expect(tasks.map((t) => [t.task, t.runId ?? null, t.agentKind ?? null, t.race ? `${t.race.attempt}/${t.race.of}` : null, t.after ?? null])).toEqual([
      ['first', null, null, null, null],
      ['race it', 'race1-1', 'claude', '1/4', null],
      ['race it', 'race1-2', 'claude', '2/4', null],
      ['race it', 'race1-3', 'codex', '3/4', null],
      ['race it', 'race1-4', 'codex', '4/4', null],
      ['follows the first', null, null, null, '@1'],
      ['three of one', 'race2-1', 'gemini', '1/3', null],
      ['three of one', 'race2-2', 'gemini', '2/3', null],
      ['three of one', 'race2-3', 'gemini', '3/3', null],
    ]);
    // The run id given is the race's.
    expect(expandRaces([{ task: 't', attempts: 2, runId: 'mine' }], newId).races).toEqual([{ raceId: 'mine', runIds: ['mine-1', 'mine-2'] }]);
    // One attempt is no race.
    expect(expandRaces([{ task: 't', agents: ['codex'] }], newId).tasks).toEqual([{ task: 't', agentKind: 'codex' }]);
  });

  it('refuses a task that follows a race by its place in the batch, and a race too large', () => {
    expectUserError(() => expandRaces([{ task: 'a', attempts: 2 }, { task: 'b', after: '@1' }], newId), 'after: @1 names a race (task 1) — a task can follow one run, not a race: follow an attempt\'s run id once the race is decided');
    expectUserError(() => expandRaces([{ task: 'a', attempts: 17 }], newId), 'a race of 17 attempts is too many (at most 16) — fewer --agents or --attempts');
  });

  it('is written in a tasks file as agents: [...] and attempts: N', () => {
    const dir = mkdtempSync(join(tmpdir(), 'obra-race-file-'));
    const file = join(dir, 'tasks.yaml');
    writeFileSync(file, ['- task: Race it', '  agents: [claude, codex]', '- task: Thrice', '  attempts: 3', '- task: Bad', '  agents: [claude, nope]', '  attempts: 0'].join('\n'));
    expectUserError(() => readTasksFile(file), [`${file}:6: task 3: agents.1: expected one of claude, codex, gemini, qwen, opencode`, `${file}:7: task 3: attempts: must be at least 1`].join('\n'));
    writeFileSync(file, ['- task: Race it', '  agents: [claude, codex]', '- task: Thrice', '  attempts: 3'].join('\n'));
    expect(readTasksFile(file).map((t) => [t.task, t.agents ?? null, t.attempts ?? null])).toEqual([
      ['Race it', ['claude', 'codex'], null],
      ['Thrice', null, 3],
    ]);
  });
});
