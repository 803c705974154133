#!/usr/bin/env node
/**
 * Installs the real Claude Code CLI for Obra's real-CLI and contract tests — from the npm registry, into
 * `.cache/claude-code/<version>/` (gitignored), never into Obra's own dependencies. Once installed it is reused.
 *
 *   node scripts/install-real-claude.mjs            prints the path of the `claude` binary
 *   OBRA_REAL_CLAUDE_VERSION=2.1.x node scripts/...  another version
 *
 * The package ships a ~245 MB native binary per platform as an optional dependency; its postinstall copies it
 * over `bin/claude.exe`. When install scripts did not run, the platform package's binary is used directly.
 * Concurrent callers (parallel test files) wait for one another through a lock folder (install-once.mjs).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installOnce } from './install-once.mjs';

/** The version the samples in fixtures/claude-cli/ and the contract tests were made with. */
export const PINNED_CLAUDE_VERSION = '2.1.197';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export function realClaudeDir(version = process.env.OBRA_REAL_CLAUDE_VERSION ?? PINNED_CLAUDE_VERSION) {
  return join(root, '.cache', 'claude-code', version);
}

/** The installed binary that answers `--version` with the wanted version, or null. */
export function findRealClaude(version = process.env.OBRA_REAL_CLAUDE_VERSION ?? PINNED_CLAUDE_VERSION) {
  const dir = realClaudeDir(version);
  const candidates = [
    join(dir, 'node_modules', '@anthropic-ai', 'claude-code', 'bin', 'claude.exe'),
    join(dir, 'node_modules', '@anthropic-ai', `claude-code-${platformKey()}`, 'claude'),
  ];
  for (const bin of candidates) {
    if (!existsSync(bin) || statSync(bin).size < 1024 * 1024) continue; // the placeholder stub is tiny
    const run = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000 });
    if (run.status === 0 && run.stdout.includes(version)) return bin;
  }
  return null;
}

/** Installs (once) and returns `{ bin, version, installedMs }`; throws with npm's message when it cannot. */
export async function ensureRealClaude(version = process.env.OBRA_REAL_CLAUDE_VERSION ?? PINNED_CLAUDE_VERSION) {
  const dir = realClaudeDir(version);
  const { bin, installedMs } = await installOnce({
    dir,
    pkg: `@anthropic-ai/claude-code@${version}`,
    find: () => findRealClaude(version),
    // A quarter of a gigabyte, the first time only: said before it starts.
    announce: `obra tests: downloading the real Claude Code CLI ${version} (~235 MB) into .cache/ for test/real-cli and test/contract — once\n`,
    timeoutMs: 10 * 60_000,
    notRunning: () => `@anthropic-ai/claude-code@${version} was installed into ${dir} but its binary does not run here (platform ${platformKey()})`,
  });
  return { bin, version, installedMs };
}

function platformKey() {
  const os = platform() === 'win32' ? 'win32' : platform();
  const musl = os === 'linux' && !process.report?.getReport?.().header?.glibcVersionRuntime ? '-musl' : '';
  return `${os}-${arch()}${musl}`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { bin, version, installedMs } = await ensureRealClaude();
    process.stderr.write(installedMs ? `installed Claude Code ${version} in ${(installedMs / 1000).toFixed(1)}s\n` : `Claude Code ${version} already installed\n`);
    process.stdout.write(`${bin}\n`);
  } catch (error) {
    process.stderr.write(`install-real-claude: ${error.message}\n`);
    process.exit(1);
  }
}
