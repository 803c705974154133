import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';

export const ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(ROOT, 'dist/src/cli/main.js');
export const FAKE_CLAUDE = join(ROOT, 'fixtures/fake-claude');
export const FAKE_OPENCODE = join(ROOT, 'fixtures/fake-opencode');

/** A scratch directory that is the CLI's cwd, workdir and fake-claude home: nothing leaks between tests. */
export function sandbox() {
  const dir = mkdtempSync(join(tmpdir(), 'obra-cli-'));
  return { dir, env: { CLAUDE_CONFIG_DIR: join(dir, '.claude'), HOME: dir, NO_COLOR: '1' } };
}

/** Runs the built CLI (npm test builds it first) and never throws on a non-zero exit. */
export function obra(args: string[], options: { cwd: string; env?: Record<string, string> }) {
  return execa('node', [CLI, ...args], { cwd: options.cwd, env: options.env, reject: false, timeout: 60_000 });
}
