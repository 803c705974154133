import { execa } from 'execa';
import { UserError } from '../core/errors.js';
import { hasDotGitAbove } from './dot-git.js';

/**
 * Git, driven with argument arrays (never a shell string), with a timeout and the command's own words kept in
 * the error. Obra commits as "Obra <obra@localhost>" in the worktrees it makes, whatever the user's settings.
 */

export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const IDENTITY = ['-c', 'user.name=Obra', '-c', 'user.email=obra@localhost', '-c', 'commit.gpgsign=false'];

/** Runs `git <args>` in `cwd`; resolves whatever the exit code (see `git()` for the throwing kind). */
export async function tryGit(cwd: string, args: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<GitResult> {
  const result = await execa('git', [...IDENTITY, ...args], {
    cwd,
    reject: false,
    timeout: options.timeoutMs ?? 120_000,
    // Never wait for a person: no editor, no credential prompt.
    env: { GIT_TERMINAL_PROMPT: '0', GIT_EDITOR: 'true', GIT_MERGE_AUTOEDIT: 'no', ...options.env },
    stripFinalNewline: true,
  });
  if ((result as { code?: string }).code === 'ENOENT') throw new UserError('git was not found on PATH — install git to run queued tasks in worktrees');
  return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), exitCode: typeof result.exitCode === 'number' ? result.exitCode : 1 };
}

/** Runs `git <args>` in `cwd` and returns its stdout; a failure is an error that says what was being done. */
export async function git(cwd: string, args: string[], doing: string, options: { env?: Record<string, string> } = {}): Promise<string> {
  const result = await tryGit(cwd, args, options);
  if (result.exitCode !== 0) {
    const why = (result.stderr || result.stdout).trim().split('\n').slice(0, 3).join(' / ');
    throw new UserError(`cannot ${doing}: git ${args.join(' ')} failed in ${cwd}: ${why || `exit ${result.exitCode}`}`);
  }
  return result.stdout;
}

/** The top folder of the repository `dir` is in, or null when it is not in one. */
export async function repositoryOf(dir: string): Promise<string | null> {
  // Git finds a repository only through a `.git` in the folder or above it (or through GIT_DIR): with none, the
  // answer is known without starting a git (a batch of a thousand plain folders would start a thousand).
  if (!process.env.GIT_DIR && !process.env.GIT_WORK_TREE && !hasDotGitAbove(dir)) return null;
  const result = await tryGit(dir, ['rev-parse', '--show-toplevel']);
  return result.exitCode === 0 ? result.stdout.trim() : null;
}
