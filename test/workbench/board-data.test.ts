import { describe, expect, it } from 'vitest';
import { actionsFor } from '../../src/viewer/actions-for.js';
import { boardData } from '../../src/viewer/board-data.js';
import { spendOf, spendSvg } from '../../src/viewer/spend.js';
import type { BoardTask } from '../../src/viewer/store-feed.js';
import { columnOf } from '../../src/core/status-line.js';
import type { RunStatus } from '../../src/core/statuses.js';

/** The board's figures: the actions each state allows, the spend per task, agent and day, the columns' pages. */

function task(runId: string, status: RunStatus, more: Partial<BoardTask> = {}): BoardTask {
  const line = { runId, task: `task ${runId}`, status, branchOutcome: null, state: null, iteration: 1, lastDecision: null, costUsd: 0, waitingFor: null, reason: null, priority: 0, after: null, createdAt: '2026-12-01T10:00:00.000Z', ageMs: 0, column: columnOf(status), branch: 'obra/x', mergedInto: null, worker: null, agent: 'claude', usage: null, race: null, resolves: null, resolvedBy: null, conflicts: [], ...more };
  return { ...line, actions: actionsFor(line) };
}

describe('actionsFor', () => {
  it('offers what the state allows', () => {
    const of = (status: RunStatus | 'unreadable', branch: string | null = 'obra/x', branchOutcome: 'merged' | 'discarded' | null = null) => actionsFor({ status, branch, branchOutcome });
    expect(of('queued')).toEqual(['cancel', 'discard']);
    expect(of('running')).toEqual(['pause', 'cancel']);
    expect(of('paused')).toEqual(['resume', 'cancel', 'merge', 'discard']);
    expect(of('interrupted', null)).toEqual(['resume', 'cancel']);
    expect(of('escalated')).toEqual(['answer', 'cancel', 'retry', 'merge', 'discard']);
    expect(of('done')).toEqual(['merge', 'discard']);
    expect(of('done', 'obra/x', 'merged')).toEqual(['discard']);
    expect(of('done', null, 'discarded')).toEqual([]);
    expect(of('failed', null)).toEqual(['retry']);
    expect(of('blocked')).toEqual(['retry', 'merge', 'discard']);
    expect(of('unreadable')).toEqual([]);
  });
});

describe('the spend', () => {
  const tasks = [
    { runId: 'a', task: 'Alpha', agent: 'claude', costUsd: 0.5, createdAt: '2026-12-01T09:00:00.000Z' },
    { runId: 'b', task: 'Beta', agent: 'codex', costUsd: 0.25, createdAt: '2026-12-01T23:00:00.000Z' },
    { runId: 'c', task: 'Gamma', agent: 'claude', costUsd: 1, createdAt: '2026-12-03T01:00:00.000Z' },
    { runId: 'd', task: 'Delta', agent: 'gemini', costUsd: 0, createdAt: '2026-12-03T02:00:00.000Z' },
  ];

  it('sums per task, per agent and per day', () => {
    expect(spendOf(tasks)).toEqual({
      totalUsd: 1.75,
      perTask: [
        { runId: 'c', task: 'Gamma', usd: 1 },
        { runId: 'a', task: 'Alpha', usd: 0.5 },
        { runId: 'b', task: 'Beta', usd: 0.25 },
      ],
      perAgent: [
        { agent: 'claude', usd: 1.5, tasks: 2 },
        { agent: 'codex', usd: 0.25, tasks: 1 },
        { agent: 'gemini', usd: 0, tasks: 1 },
      ],
      perDay: [
        { day: '2026-12-01', usd: 0.75, tasks: 2 },
        { day: '2026-12-03', usd: 1, tasks: 2 },
      ],
    });
  });

  it('draws each as bars, the largest full width, every text escaped', () => {
    const svg = spendSvg(spendOf([...tasks, { runId: 'e', task: '<script>x</script>', agent: 'qwen', costUsd: 0.1, createdAt: '2026-12-04T00:00:00.000Z' }]));
    const rows = [...svg.matchAll(/<g class="spend-row" data-key="([^"]+)" data-usd="([^"]+)">.*?<rect class="spend-bar" x="\d+" y="\d+" width="(\d+)"/g)].map((m) => [m[1], Number(m[2]), Number(m[3])]);
    expect(rows).toEqual([
      ['c', 1, 190], ['a', 0.5, 95], ['b', 0.25, 48], ['e', 0.1, 19],
      ['claude', 1.5, 190], ['codex', 0.25, 32], ['qwen', 0.1, 13], ['gemini', 0, 1],
      ['2026-12-01', 0.75, 143], ['2026-12-03', 1, 190], ['2026-12-04', 0.1, 19],
    ]);
    expect(svg).toContain('&lt;script&gt;x&lt;/script&gt;');
    expect(svg).not.toContain('<script>');
    expect(spendSvg(spendOf([]))).toContain('nothing spent yet');
  });
});

describe('the board\'s pages', () => {
  it('sends the first cards of each column, in the workers\' order or newest first, with every count', () => {
    const all = [
      task('q1', 'queued', { createdAt: '2026-12-01T10:00:00.000Z' }),
      task('q2', 'queued', { createdAt: '2026-12-01T11:00:00.000Z', priority: 3 }),
      task('q3', 'queued', { createdAt: '2026-12-01T09:00:00.000Z' }),
      ...Array.from({ length: 7 }, (_, i) => task(`d${i}`, 'done', { createdAt: `2026-12-0${i + 1}T10:00:00.000Z`, costUsd: 0.1 })),
    ];
    const page = boardData('/s', all, { perColumn: 2 });
    expect(page.tasks.map((t) => t.runId)).toEqual(['q2', 'q3', 'd6', 'd5']);
    expect(page.counts).toEqual({ queued: 3, running: 0, waiting: 0, done: 7, failed: 0 });
    expect(page.spend.totalUsd).toBeCloseTo(0.7);
    expect(boardData('/s', all, { perColumn: 4, column: 'done' }).tasks.map((t) => t.runId)).toEqual(['d6', 'd5', 'd4', 'd3']);
    // A column of thousands is not sorted whole for its first page, and gives the same cards.
    const many = Array.from({ length: 3000 }, (_, i) => task(`m${String(i).padStart(4, '0')}`, 'done', { createdAt: new Date(Date.UTC(2026, 0, 1) + ((i * 7919) % 3000) * 60_000).toISOString() }));
    const sorted = many.slice().sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1)).slice(0, 50).map((t) => t.runId);
    expect(boardData('/s', many).tasks.map((t) => t.runId)).toEqual(sorted);
  });
});
