import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { taskLines } from '../../src/queue/board.js';
import { runMergeQueue } from '../../src/queue/merge-queue.js';
import { MergeConflictError } from '../../src/workspace/conflict.js';
import { buildCase, CLEAN_TRIO, CORPUS, everyBaseCommitGreen, git } from './corpus.js';

/**
 * The corpus, case by case: the overlap warnings `obra status` gives (or none), then `obra merge --all`'s order
 * and result, and the base never red (the checks pass on every commit main went through).
 */

const landAll = (built: Awaited<ReturnType<typeof buildCase>>, progress: string[] = [], strategy: 'merge' | 'rebase' | 'squash' = 'merge') =>
  runMergeQueue({ store: built.store, runIds: 'all', strategy, checkTimeoutMs: 30_000, progress: (line) => progress.push(line) });

describe('the landing corpus', () => {
  for (const c of CORPUS) {
    it(`${c.name}: warns ${Object.keys(c.expect.conflicts).length ? 'on both tasks' : 'on none'}, lands ${c.expect.landed.join(', ')}${c.expect.stopsAt ? `, stops at ${c.expect.stopsAt.task} (exit ${c.expect.stopsAt.exitCode})` : ''}`, async () => {
      const built = await buildCase(c);
      const name = (runId: string) => Object.entries(built.ids).find(([, id]) => id === runId)![0];

      // The warnings, on both tasks of the pair, naming the other and the files.
      const lines = taskLines(built.storeDir);
      const warned = Object.fromEntries(lines.filter((l) => l.conflicts.length).map((l) => [name(l.runId), l.conflicts]));
      expect(Object.keys(warned).sort()).toEqual(Object.keys(c.expect.conflicts).sort());
      for (const [task, files] of Object.entries(c.expect.conflicts)) {
        const other = Object.keys(c.expect.conflicts).find((t) => t !== task)!;
        expect(warned[task]).toEqual([{ with: 'task', runId: built.ids[other], branch: `obra/${built.ids[other]}`, files }]);
      }

      const progress: string[] = [];
      let stopped: unknown = null;
      const result = await landAll(built, progress).catch((error: unknown) => {
        stopped = error;
        return null;
      });
      // The order: one progress line per landing, in queue order, up to the stop.
      const tried = progress.map((line) => name(/^\[\d+\/\d+\] (\S+?):/.exec(line)![1]!));
      expect(tried).toEqual(c.expect.order.slice(0, c.expect.landed.length + (c.expect.stopsAt ? 1 : 0)));
      if (c.expect.stopsAt) {
        expect(result).toBeNull();
        expect((stopped as { exitCode: number }).exitCode).toBe(c.expect.stopsAt.exitCode);
        if (c.expect.stopsAt.files) {
          expect(stopped).toBeInstanceOf(MergeConflictError);
          const conflict = (stopped as MergeConflictError).conflict;
          expect(conflict).toMatchObject({ runId: built.ids[c.expect.stopsAt.task], into: 'main', files: c.expect.stopsAt.files, strategy: 'merge', baseCommit: await git(built.repo, 'rev-parse', 'main') });
        } else {
          expect((stopped as Error).message).toMatch(new RegExp(`^${built.ids[c.expect.stopsAt.task]} \\(obra/\\S+\\) was not landed: the check .* failed \\(exit 1\\) on main with it; main stays at [0-9a-f]{12}, the last green landing`));
        }
      } else {
        expect(result!.landed.map((l) => name(l.runId))).toEqual(c.expect.landed);
      }
      // What landed is recorded, and only that; main moved once per landing, every step green.
      const merged = taskLines(built.storeDir).filter((l) => l.branchOutcome === 'merged').map((l) => name(l.runId));
      expect(merged.sort()).toEqual([...c.expect.landed].sort());
      const steps = await everyBaseCommitGreen(built.repo, built.baseTip, c.checks);
      expect(steps.length).toBe(c.expect.landed.length);
      expect(steps.every((s) => s.green)).toBe(true);
      // The user's checkout followed main and is clean; no scratch worktree and no queue file is left.
      expect(await git(built.repo, 'status', '--porcelain')).toBe('');
      expect(await git(built.repo, 'rev-parse', 'HEAD')).toBe(await git(built.repo, 'rev-parse', 'main'));
      expect(existsSync(join(built.storeDir, 'merge-queue.json'))).toBe(false);
      expect(await git(built.repo, 'worktree', 'list')).not.toContain('/landing/');
      // Landed tasks warn no more; the one that stopped the queue on a conflict now conflicts with main itself.
      const after = taskLines(built.storeDir);
      expect(after.filter((l) => c.expect.landed.includes(name(l.runId))).flatMap((l) => l.conflicts)).toEqual([]);
      if (c.expect.stopsAt?.files) {
        expect(after.find((l) => name(l.runId) === c.expect.stopsAt!.task)!.conflicts).toEqual([{ with: 'base', runId: null, branch: 'main', files: c.expect.stopsAt.files }]);
      }
    });
  }

  it('orders by what a task follows, then by priority, and lands the same tree with merge, rebase and squash', async () => {
    const trees: string[] = [];
    for (const strategy of ['merge', 'rebase', 'squash'] as const) {
      const built = await buildCase(CLEAN_TRIO);
      const result = await landAll(built, [], strategy);
      // b (priority 5) first; c (priority 9) follows a, so it waits for a.
      expect(result.landed.map((l) => l.runId)).toEqual(['trio-b', 'trio-a', 'trio-c']);
      expect(result.landed.map((l) => l.outcome)).toEqual(['landed', 'landed', 'landed']);
      trees.push(await git(built.repo, 'rev-parse', 'main^{tree}'));
      const log = await git(built.repo, 'log', '--first-parent', '--format=%P', `${built.baseTip}..main`);
      const parents = log.split('\n').map((l) => l.split(' ').length);
      if (strategy === 'merge') expect(parents).toEqual([2, 2, 2]);
      if (strategy === 'squash') expect(parents).toEqual([1, 1, 1]);
      // Rebase replays a's two commits and c's own one on top of b's.
      if (strategy === 'rebase') expect(await git(built.repo, 'rev-list', '--count', `${built.baseTip}..main`)).toBe('4');
      // Each landing carries its trailer: run again, nothing lands twice.
      expect(await git(built.repo, 'log', '--format=%(trailers:key=Obra-Landed,valueonly)', `${built.baseTip}..main`)).toContain('trio-c');
      const before = await git(built.repo, 'rev-parse', 'main');
      for (const runId of Object.values(built.ids)) {
        const handle = built.store.openRun(runId);
        const { merged: _merged, ...queue } = handle.file.queue!;
        handle.update({ queue });
        handle.close();
      }
      const again = await landAll(built, [], strategy);
      expect(again.landed.map((l) => l.outcome)).toEqual(['already', 'already', 'already']);
      expect(await git(built.repo, 'rev-parse', 'main')).toBe(before);
    }
    expect(new Set(trees).size).toBe(1);
  }, 90_000);

  it('takes up a queue cut short with its own plan and strategy, and plans afresh once nothing of it is left', async () => {
    const built = await buildCase(CLEAN_TRIO);
    const { hostname } = await import('node:os');
    const { writeFileSync } = await import('node:fs');
    const cut = (strategy: string, runIds: string[]) =>
      writeFileSync(join(built.storeDir, 'merge-queue.json'), JSON.stringify({ version: 1, startedAt: '2026-12-07T10:00:00.000Z', strategy, runIds, holder: { pid: 2 ** 22 + 1, start: null, host: hostname(), since: '2026-12-07T10:00:00.000Z' } }));
    cut('squash', ['trio-a']);
    const progress: string[] = [];
    const taken = await landAll(built, progress, 'merge');
    expect(taken.resumedFrom).toBe('2026-12-07T10:00:00.000Z');
    expect(taken.landed.map((l) => l.runId)).toEqual(['trio-a']);
    expect(progress[0]).toBe('taking up the merge queue started at 2026-12-07T10:00:00.000Z (squash): 1 task');
    // Squashed, as the queue that was cut had it: one parent.
    expect(await git(built.repo, 'log', '-1', '--format=%P', 'main')).toMatch(/^[0-9a-f]{40}$/);
    // A queue file whose tasks all landed since: over; this run plans afresh, with its own strategy.
    cut('squash', ['trio-a']);
    const fresh = await landAll(built, [], 'merge');
    expect(fresh.resumedFrom).toBeNull();
    // a is in: c (priority 9) waits for no one now, and goes before b (5).
    expect(fresh.landed.map((l) => l.runId)).toEqual(['trio-c', 'trio-b']);
    expect((await git(built.repo, 'log', '-1', '--format=%P', 'main')).split(' ').length).toBe(2);
    expect(existsSync(join(built.storeDir, 'merge-queue.json'))).toBe(false);
  });

  it('moves main by compare-and-swap when no checkout has it, and refuses a dirty checkout that has it up front', async () => {
    const built = await buildCase(CLEAN_TRIO);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(built.repo, 'README.md'), 'changed\n');
    await expect(landAll(built)).rejects.toThrow(`${built.repo} has main checked out with uncommitted changes (README.md) — commit or stash them first; nothing was merged`);
    expect(await git(built.repo, 'rev-parse', 'main')).toBe(built.baseTip);
    await git(built.repo, 'checkout', '-q', '-b', 'elsewhere');
    const result = await landAll(built);
    expect(result.landed.length).toBe(3);
    // main moved; the checkout (on another branch, still dirty) was left alone.
    expect(await git(built.repo, 'rev-parse', 'HEAD')).toBe(built.baseTip);
    expect(await git(built.repo, 'status', '--porcelain')).toBe('M README.md');
    expect(await git(built.repo, 'ls-tree', '--name-only', 'main')).toBe(['README.md', 'a.txt', 'b.txt', 'c.txt', 'src'].join('\n'));
  });
});
