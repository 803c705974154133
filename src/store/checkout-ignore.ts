import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hasDotGitAbove } from '../workspace/dot-git.js';

/**
 * A store inside a git checkout (the default `.obra/` of the folder `obra` runs in) would show in `git status` as
 * `?? .obra/`, and `obra merge` refuses a checkout with untracked files. So such a store carries a `.gitignore`
 * of `*`: in the folder itself rather than in `.git/info/exclude`, because it needs no git, holds in whichever
 * checkout (or worktree) the store sits, and moves with the folder.
 */
export function ignoreInCheckout(storeDir: string): void {
  const file = join(storeDir, '.gitignore');
  // A store that is itself a checkout's top folder must not hide that checkout's files.
  if (existsSync(file) || existsSync(join(storeDir, '.git')) || !hasDotGitAbove(storeDir)) return;
  try {
    writeFileSync(file, "# Obra's store (runs, task worktrees): never part of the checkout it is in\n*\n", { flag: 'wx' });
  } catch (error) {
    // Another process wrote it first.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}
