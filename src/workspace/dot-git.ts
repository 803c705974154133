import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** Whether `dir` or a folder above it holds a `.git` (a folder, or the file a worktree or submodule has). No git is started. */
export function hasDotGitAbove(dir: string): boolean {
  for (let at = resolve(dir); ; at = dirname(at)) {
    if (existsSync(join(at, '.git'))) return true;
    if (dirname(at) === at) return false;
  }
}
