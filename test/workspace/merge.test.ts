import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { changedPaths, mergeInto, prepareWorktree } from '../../src/workspace/worktree.js';
import { gitOut, gitRepo, scratch } from '../queue/helpers.js';

/** `obra merge`'s git side: the refusal of a dirty checkout, a merge done twice, and a conflict's exit code. */

const commitIn = async (dir: string, file: string, text: string) => {
  writeFileSync(join(dir, file), text);
  await execa('git', ['add', file], { cwd: dir });
  await execa('git', ['-c', 'user.name=T', '-c', 'user.email=t@x', 'commit', '-qm', `edit ${file}`], { cwd: dir });
};

async function task(repo: string, storeDir: string, runId: string) {
  const space = await prepareWorktree({ repoDir: repo, runId, storeDir });
  await execa('git', ['worktree', 'add', '-q', space.path, space.branch], { cwd: repo });
  return space;
}

describe('mergeInto', () => {
  it('names every changed file whole (a tracked file with a space in the first column, a rename), and merges nothing', async () => {
    const s = scratch('obra-merge-');
    const repo = await gitRepo(join(s.root, 'repo'), { 'index.js': 'one\n', 'README.md': '# demo\n' });
    const a = await task(repo, s.storeDir, 'a');
    await commitIn(a.path, 'a.txt', 'a\n');
    const head = await gitOut(repo, 'rev-parse', 'HEAD');
    writeFileSync(join(repo, 'index.js'), 'two\n');
    await expect(mergeInto(a, 'a')).rejects.toMatchObject({ exitCode: 2, message: `${repo} has uncommitted changes (index.js) — commit or stash them first; nothing was merged` });
    await execa('git', ['mv', 'README.md', 'docs.md'], { cwd: repo });
    await expect(mergeInto(a, 'a')).rejects.toThrow(`${repo} has uncommitted changes (docs.md, index.js) — commit or stash them first; nothing was merged`);
    expect(await gitOut(repo, 'rev-parse', 'HEAD')).toBe(head);
  });

  it('parses porcelain -z entries without trimming them', () => {
    expect(changedPaths(' M index.js\0?? new file.txt\0R  to.md\0from.md\0A  a\0')).toEqual(['index.js', 'new file.txt', 'to.md', 'a']);
    expect(changedPaths('')).toEqual([]);
  });

  it("names a task's own merge when it is merged again, even after another task's merge", async () => {
    const s = scratch('obra-merge-');
    const repo = await gitRepo(join(s.root, 'repo'));
    const a = await task(repo, s.storeDir, 'a');
    const b = await task(repo, s.storeDir, 'b');
    await commitIn(a.path, 'a.txt', 'a\n');
    await commitIn(b.path, 'b.txt', 'b\n');
    const first = await mergeInto(a, 'a');
    expect(first).toEqual({ commit: await gitOut(repo, 'rev-parse', 'HEAD'), already: false });
    const second = await mergeInto(b, 'b');
    expect(second.commit).not.toBe(first.commit);
    expect(await mergeInto(a, 'a')).toEqual({ commit: first.commit, already: true });
    expect(await mergeInto(b, 'b')).toEqual({ commit: second.commit, already: true });
    // Nothing was merged again.
    expect(await gitOut(repo, 'rev-parse', 'HEAD')).toBe(second.commit);
    expect(await gitOut(repo, 'rev-list', '--count', '--merges', 'HEAD')).toBe('2');
  });

  it('gives a conflict its own exit code (11), undone and named', async () => {
    const s = scratch('obra-merge-');
    const repo = await gitRepo(join(s.root, 'repo'), { 'index.js': 'one\n' });
    const c = await task(repo, s.storeDir, 'c');
    await commitIn(c.path, 'index.js', 'mine\n');
    await commitIn(repo, 'index.js', 'theirs\n');
    const head = await gitOut(repo, 'rev-parse', 'HEAD');
    await expect(mergeInto(c, 'c')).rejects.toMatchObject({
      exitCode: 11,
      message: `cannot merge obra/c into main: it conflicts with main in index.js — nothing was changed; merge it yourself (\`git -C ${repo} merge obra/c\`) to resolve it`,
    });
    expect(await gitOut(repo, 'rev-parse', 'HEAD')).toBe(head);
    expect(await gitOut(repo, 'status', '--porcelain')).toBe('');
  });
});
