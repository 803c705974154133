import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ROOT, sandbox } from '../helpers/cli.js';

/**
 * `npm test` installs the real Claude Code CLI (a quarter of a gigabyte) the first time: it says so in one line
 * before it starts. Run from a copy of the script (its `.cache/` is the copy's) with an `npm` that refuses at
 * once, so that nothing is downloaded.
 */
describe('scripts/install-real-claude.mjs', () => {
  it('says in one line that it downloads the CLI, before npm starts', async () => {
    const box = sandbox();
    mkdirSync(join(box.dir, 'scripts'));
    const script = join(box.dir, 'scripts', 'install-real-claude.mjs');
    copyFileSync(join(ROOT, 'scripts', 'install-real-claude.mjs'), script);
    copyFileSync(join(ROOT, 'scripts', 'install-once.mjs'), join(box.dir, 'scripts', 'install-once.mjs'));
    const bin = join(box.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'npm'), '#!/bin/sh\necho "npm error 404 not found (offline here)" >&2\nexit 1\n');
    chmodSync(join(bin, 'npm'), 0o755);
    const run = await execa('node', [script], {
      cwd: box.dir,
      env: { ...box.env, PATH: `${bin}:${process.env.PATH}`, OBRA_REAL_CLAUDE_VERSION: '0.0.0-none' },
      extendEnv: false,
      reject: false,
      timeout: 30_000,
    });
    expect(run.exitCode).toBe(1);
    expect(run.stderr.split('\n')).toEqual([
      'obra tests: downloading the real Claude Code CLI 0.0.0-none (~235 MB) into .cache/ for test/real-cli and test/contract — once',
      `install-real-claude: npm could not install @anthropic-ai/claude-code@0.0.0-none into ${join(box.dir, '.cache', 'claude-code', '0.0.0-none')}: npm error 404 not found (offline here)`,
    ]);
  });
});
