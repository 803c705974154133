import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { statusTable } from '../../src/cli/status.js';
import { statusLineOf, statusLinesOf } from '../../src/hosts/restate/status-line.js';
import type { QueueLine } from '../../src/hosts/restate/model.js';
import { RunStore, submitTasks, taskLines } from '../../src/index.js';
import { sandbox } from '../helpers/cli.js';
import { gitRepo } from './helpers.js';

/** `obra status`: one line shape on both engines, in the order the workers take the tasks, merged and discarded said so. */

const queueLine = (over: Partial<QueueLine> = {}): QueueLine => ({
  runId: 'r1',
  status: 'running',
  reason: '',
  priority: 0,
  submittedAt: '2026-12-01T10:00:00.000Z',
  updatedAt: '2026-12-01T10:00:05.000Z',
  iterations: 2,
  totalCostUsd: 0.25,
  task: 'Do it',
  worker: 'host:42',
  wakeAt: null,
  after: null,
  ...over,
});

describe('one status shape', () => {
  it("the local engine's lines and Restate's have exactly the same keys, what one lacks being null", async () => {
    const box = sandbox();
    mkdirSync(join(box.dir, 'a'));
    const storeDir = join(box.dir, 'store');
    await submitTasks([{ task: 'Local', repo: join(box.dir, 'a') }], { storeDir });
    const [local] = taskLines(storeDir);
    const now = Date.parse('2026-12-01T10:01:00.000Z');
    const remote = statusLineOf(queueLine(), now);
    expect(Object.keys(remote).sort()).toEqual(Object.keys(local!).sort());
    // Through JSON too (no undefined dropped on the way).
    expect(Object.keys(JSON.parse(JSON.stringify(remote))).sort()).toEqual(Object.keys(JSON.parse(JSON.stringify(local))).sort());
    expect(remote).toEqual({
      runId: 'r1',
      task: 'Do it',
      status: 'running',
      branchOutcome: null,
      state: null,
      iteration: 2,
      lastDecision: null,
      costUsd: 0.25,
      waitingFor: null,
      reason: null,
      priority: 0,
      after: null,
      createdAt: '2026-12-01T10:00:00.000Z',
      ageMs: 60_000,
      column: 'running',
      branch: null,
      mergedInto: null,
      worker: 'host:42',
      agent: null,
      usage: null,
      race: null,
      resolves: null,
      resolvedBy: null,
      conflicts: [],
    });
    expect(local).toMatchObject({ status: 'queued', state: 'queued', worker: null, branchOutcome: null, after: null, waitingFor: 'a worker (`obra work`)', agent: 'claude', race: null });
    expect(local!.usage).toEqual({ calls: 0, inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, costUsd: 0, estimated: false, unpricedCalls: 0 });
  });

  it("Restate's lines come in queue order, and say what a queued task waits for", () => {
    const now = Date.parse('2026-12-01T10:01:00.000Z');
    const lines = statusLinesOf(
      [
        queueLine({ runId: 'old-low', status: 'done', submittedAt: '2026-12-01T09:00:00.000Z' }),
        queueLine({ runId: 'new-high', status: 'queued', priority: 2, submittedAt: '2026-12-01T10:00:30.000Z', worker: null }),
        queueLine({ runId: 'follower', status: 'queued', submittedAt: '2026-12-01T09:30:00.000Z', after: 'new-high', worker: null }),
        queueLine({ runId: 'parked', status: 'queued', submittedAt: '2026-12-01T09:40:00.000Z', wakeAt: Date.parse('2026-12-01T15:00:00.000Z'), worker: null }),
      ],
      now,
    );
    expect(lines.map((l) => [l.runId, l.waitingFor])).toEqual([
      ['new-high', 'a worker (`obra worker`)'],
      ['old-low', null],
      ['follower', 'run new-high (queued) to be done'],
      ['parked', 'the usage limit to reset, until 15:00:00 UTC'],
    ]);
  });

  it('lists local tasks in queue order (priority, then age) and shows merged and discarded tasks as such', async () => {
    const box = sandbox();
    const repo = await gitRepo(join(box.dir, 'repo'));
    const storeDir = join(box.dir, 'store');
    const [low, high, merged, discarded, low2] = await submitTasks(
      [
        { task: 'Low, first', repo },
        { task: 'High', repo, priority: 3 },
        { task: 'Merged', repo, priority: 1 },
        { task: 'Discarded', repo, priority: 1 },
        { task: 'Low, second', repo },
      ],
      { storeDir },
    );
    const store = RunStore.open(storeDir);
    const end = (runId: string, queuePatch: Record<string, unknown>) => {
      const handle = store.openRun(runId);
      handle.update({ status: 'done', reason: 'all done', queue: { ...handle.file.queue!, ...queuePatch } });
      handle.close();
    };
    end(merged!, { merged: { commit: 'abcdef0123456789', at: new Date().toISOString() } });
    end(discarded!, { discarded: true });
    const lines = taskLines(storeDir);
    expect(lines.map((l) => l.runId)).toEqual([high, merged, discarded, low, low2]);
    expect(lines.map((l) => [l.status, l.branchOutcome])).toEqual([
      ['queued', null],
      ['done', 'merged'],
      ['done', 'discarded'],
      ['queued', null],
      ['queued', null],
    ]);
    const rows = statusTable(lines).split('\n');
    expect(rows[2]).toMatch(new RegExp(`^${merged} +merged +`));
    expect(rows[3]).toMatch(new RegExp(`^${discarded} +discarded +`));
    expect(rows[1]).toMatch(new RegExp(`^${high} +queued +claude +queued +`));
  });
});
