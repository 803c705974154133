import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store.js';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { gitOut, gitRepo } from '../queue/helpers.js';

/** A store inside a git checkout stays out of it: `git status` does not show it, so `obra merge` is not refused. */
describe('a store inside a git checkout', () => {
  it('`obra run` in a checkout leaves `git status` clean (the store carries a .gitignore of *)', async () => {
    const box = sandbox();
    const repo = await gitRepo(join(box.dir, 'repo'));
    const run = await obra(['run', '--task', 'Say done', '--agent-bin', FAKE_CLAUDE], { cwd: repo, env: { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(['Done.\nSTATUS: DONE']) } });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(existsSync(join(repo, '.obra', 'runs'))).toBe(true);
    expect(await gitOut(repo, 'status', '--porcelain', '--untracked-files=all')).toBe('');
    expect(readFileSync(join(repo, '.obra', '.gitignore'), 'utf8')).toMatch(/\n\*\n$/);
  });

  it('is given one when opened (made by an older Obra), never outside a checkout, never when it is the checkout itself', async () => {
    const box = sandbox();
    const repo = await gitRepo(join(box.dir, 'repo'));
    const nested = join(repo, 'deep', 'store');
    RunStore.open(nested);
    rmSync(join(nested, '.gitignore'));
    expect(await gitOut(repo, 'status', '--porcelain')).toBe('?? deep/');
    RunStore.open(nested, { create: false });
    expect(existsSync(join(nested, '.gitignore'))).toBe(false);
    RunStore.open(nested);
    expect(await gitOut(repo, 'status', '--porcelain')).toBe('');

    const outside = join(box.dir, 'plain', 'store');
    RunStore.open(outside);
    expect(existsSync(join(outside, '.gitignore'))).toBe(false);

    // An empty checkout used as the store: its own files must still show.
    const top = join(box.dir, 'top');
    mkdirSync(top);
    await gitOut(top, 'init', '-q');
    RunStore.open(top);
    expect(existsSync(join(top, '.gitignore'))).toBe(false);
    writeFileSync(join(top, 'mine.txt'), 'x\n');
    expect(await gitOut(top, 'status', '--porcelain')).toContain('?? mine.txt');
  });
});
