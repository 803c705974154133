import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { OverlapRecord } from '../../src/persisted/overlap.js';
import { conflictsOf } from '../../src/queue/overlap.js';
import { computeOverlap, touchSamePath } from '../../src/workspace/overlap.js';
import { runMergeQueue } from '../../src/queue/merge-queue.js';
import { readOverlap } from '../../src/store/overlap-file.js';
import { buildCase, git } from './corpus.js';
import { gitRepo } from '../queue/helpers.js';

/** The overlap check's parts: the path test that spares trial merges, the reuse of results by tips, and the pairing. */

describe('overlap', () => {
  it('tells paths that meet (the same file, a file against a folder) from paths that do not', () => {
    expect(touchSamePath(['a/b.txt'], ['a/b.txt'])).toBe(true);
    expect(touchSamePath(['a/b'], ['a/b/c.txt'])).toBe(true);
    expect(touchSamePath(['a/b/c.txt'], ['a/b'])).toBe(true);
    expect(touchSamePath(['a/b.txt'], ['a/c.txt', 'ab.txt'])).toBe(false);
    expect(touchSamePath([], ['a'])).toBe(false);
  });

  it('reuses a trial by the tips it was made for, and tries again once a tip moved', async () => {
    const repo = await gitRepo(join(mkdtempSync(join(tmpdir(), 'obra-overlap-')), 'repo'), { 'f.txt': 'one\n' });
    const base = await git(repo, 'rev-parse', 'HEAD');
    const commitOn = async (branch: string, text: string) => {
      await git(repo, 'checkout', '-q', '-B', branch, base);
      await git(repo, 'commit', '-q', '--allow-empty', '-m', text);
      const { writeFileSync } = await import('node:fs');
      writeFileSync(join(repo, 'f.txt'), text);
      await git(repo, 'commit', '-q', '-am', text);
      return git(repo, 'rev-parse', 'HEAD');
    };
    const mine = await commitOn('obra/mine', 'mine\n');
    const theirs = await commitOn('obra/theirs', 'theirs\n');
    await git(repo, 'checkout', '-q', 'main');
    const subject = { repo, runId: 'mine', branch: 'obra/mine', baseCommit: base, baseBranch: 'main' };
    const peer = { runId: 'theirs', branch: 'obra/theirs', baseCommit: base, record: null };
    // A record of the last look at these very tips says "conflicts in made-up.txt": it is believed, not tried again.
    const previous: OverlapRecord = { computedAt: '2026-01-01T00:00:00.000Z', tip: mine, baseBranch: 'main', baseTip: base, files: ['f.txt'], baseConflicts: [], others: [{ runId: 'theirs', branch: 'obra/theirs', tip: theirs, conflicts: ['made-up.txt'] }] };
    expect((await computeOverlap(subject, [peer], previous)).others).toEqual([{ runId: 'theirs', branch: 'obra/theirs', tip: theirs, conflicts: ['made-up.txt'] }]);
    // Their branch moved: a real trial.
    const moved = await commitOn('obra/theirs', 'theirs again\n');
    const record = await computeOverlap(subject, [peer], previous);
    expect(record.others).toEqual([{ runId: 'theirs', branch: 'obra/theirs', tip: moved, conflicts: ['f.txt'] }]);
    expect(record).toMatchObject({ tip: mine, baseTip: base, files: ['f.txt'], baseConflicts: [] });
  });

  it('warns both tasks of a pair from the later look, and neither once one is merged', () => {
    const record = (at: string, other: string, conflicts: string[]): OverlapRecord => ({ computedAt: at, tip: 't', baseBranch: 'main', baseTip: 'b', files: [], baseConflicts: [], others: [{ runId: other, branch: `obra/${other}`, tip: 'o', conflicts }] });
    // a looked first (b had no commit then), b later: b's look decides for both.
    const tasks = [
      { runId: 'a', branch: 'obra/a', open: true, record: record('2026-01-01T00:00:01Z', 'b', []) },
      { runId: 'b', branch: 'obra/b', open: true, record: record('2026-01-01T00:00:02Z', 'a', ['x.txt']) },
    ];
    const found = conflictsOf(tasks);
    expect(found.get('a')).toEqual([{ with: 'task', runId: 'b', branch: 'obra/b', files: ['x.txt'] }]);
    expect(found.get('b')).toEqual([{ with: 'task', runId: 'a', branch: 'obra/a', files: ['x.txt'] }]);
    expect(conflictsOf([{ ...tasks[0]!, open: false }, tasks[1]!]).size).toBe(0);
    // The later look says clean: no warning, though an earlier one said otherwise.
    expect(conflictsOf([{ ...tasks[0]!, record: record('2026-01-01T00:00:03Z', 'b', []) }, tasks[1]!]).size).toBe(0);
  });

  it('after a landing, works out again the overlap of the open tasks in its repository only: not the landed one, nor a discarded one', async () => {
    const built = await buildCase({
      name: 'refresh',
      files: { 'f.txt': 'one\ntwo\n' },
      checks: [],
      tasks: [
        { name: 'a', edits: [{ write: { 'f.txt': 'ONE-A\ntwo\n' } }] },
        { name: 'b', edits: [{ write: { 'f.txt': 'ONE-B\ntwo\n' } }] },
        { name: 'c', edits: [{ write: { 'g.txt': 'g\n' } }] },
        { name: 'd', edits: [{ write: { 'f.txt': 'ONE-D\ntwo\n' } }] },
      ],
    });
    const { store, ids } = built;
    const handle = store.openRun(ids.d!);
    handle.update({ queue: { ...handle.file.queue!, discarded: true } });
    handle.close();
    const before = Object.fromEntries(Object.entries(ids).map(([name, runId]) => [name, readOverlap(store.runDir(runId))!]));
    expect(Object.values(before).map((r) => r.baseTip)).toEqual([built.baseTip, built.baseTip, built.baseTip, built.baseTip]);

    await runMergeQueue({ store, runIds: [ids.a!], strategy: 'merge', checkTimeoutMs: 10_000 });
    const main = await git(built.repo, 'rev-parse', 'main');
    const after = Object.fromEntries(Object.entries(ids).map(([name, runId]) => [name, readOverlap(store.runDir(runId))!]));
    expect(after.b).toMatchObject({ baseTip: main, baseConflicts: ['f.txt'], others: [{ runId: ids.c, conflicts: [] }] });
    expect(after.c).toMatchObject({ baseTip: main, baseConflicts: [], others: [{ runId: ids.b, conflicts: [] }] });
    // Merged, discarded: their records are as the last look left them.
    expect(after.a).toEqual(before.a);
    expect(after.d).toEqual(before.d);
  });
});
