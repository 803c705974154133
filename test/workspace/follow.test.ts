import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { prepareWorktree, startFromFollowed } from '../../src/workspace/worktree.js';
import { gitOut, gitRepo, scratch } from '../queue/helpers.js';

const commit = (dir: string, file: string) =>
  execa('sh', ['-c', `echo work > ${file} && git add ${file} && git -c user.name=T -c user.email=t@x commit -qm ${file}`], { cwd: dir });

describe('startFromFollowed: a follower starts from where the task it follows ended', () => {
  it('moves its branch once, even when a worktree whose folder is gone still holds the branch; never moves a branch with work', async () => {
    const s = scratch('obra-follow-');
    const repo = await gitRepo(join(s.root, 'repo'));
    const base = await gitOut(repo, 'rev-parse', 'HEAD');
    const storeDir = join(s.root, 'store');
    const first = await prepareWorktree({ repoDir: repo, runId: 'first', storeDir });
    const next = { ...(await prepareWorktree({ repoDir: repo, runId: 'next', storeDir })), follows: first.branch };
    // The first task's work, on its branch.
    await execa('git', ['worktree', 'add', '-q', first.path, first.branch], { cwd: repo });
    await commit(first.path, 'a.txt');
    const end = await gitOut(repo, 'rev-parse', first.branch);
    // A worktree of the follower's branch whose folder was deleted (a crash, a hand): git still counts it.
    const stale = join(s.root, 'stale');
    await execa('git', ['worktree', 'add', '-q', stale, next.branch], { cwd: repo });
    rmSync(stale, { recursive: true, force: true });

    const moved = await startFromFollowed(next);
    expect(moved).toEqual({ ...next, base: first.branch, baseCommit: end });
    expect(await gitOut(repo, 'rev-parse', next.branch)).toBe(end);
    // Recorded: nothing more to do.
    expect(await startFromFollowed(moved!)).toBeNull();

    // A follower that already has commits of its own is never moved.
    const busy = { ...(await prepareWorktree({ repoDir: repo, runId: 'busy', storeDir })), follows: first.branch };
    await execa('git', ['worktree', 'add', '-q', busy.path, busy.branch], { cwd: repo });
    await commit(busy.path, 'b.txt');
    const own = await gitOut(repo, 'rev-parse', busy.branch);
    rmSync(busy.path, { recursive: true, force: true });
    await execa('git', ['worktree', 'prune'], { cwd: repo });
    expect(await startFromFollowed(busy)).toBeNull();
    expect(await gitOut(repo, 'rev-parse', busy.branch)).toBe(own);
    expect(base).not.toBe(end);
  });
});
