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
 * Concurrent callers (parallel test files) wait for one another through a lock folder.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  const found = findRealClaude(version);
  if (found) return { bin: found, version, installedMs: 0 };
  const dir = realClaudeDir(version);
  mkdirSync(dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  const started = Date.now();
  await acquire(lock);
  try {
    const again = findRealClaude(version);
    if (again) return { bin: again, version, installedMs: 0 };
    mkdirSync(dir, { recursive: true });
    // A quarter of a gigabyte, the first time only: said before it starts (inside the lock: one process says it).
    process.stderr.write(`obra tests: downloading the real Claude Code CLI ${version} (~235 MB) into .cache/ for test/real-cli and test/contract — once\n`);
    try {
      execFileSync(npmCommand(), ['install', '--prefix', dir, '--no-audit', '--no-fund', '--no-save', '--loglevel=error', `@anthropic-ai/claude-code@${version}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 10 * 60_000,
        encoding: 'utf8',
      });
    } catch (error) {
      const stderr = String(error.stderr ?? error.message).trim().split('\n').slice(-5).join(' | ');
      throw new Error(`npm could not install @anthropic-ai/claude-code@${version} into ${dir}: ${stderr}`);
    }
    const bin = findRealClaude(version);
    if (!bin) throw new Error(`@anthropic-ai/claude-code@${version} was installed into ${dir} but its binary does not run here (platform ${platformKey()})`);
    return { bin, version, installedMs: Date.now() - started };
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function platformKey() {
  const os = platform() === 'win32' ? 'win32' : platform();
  const musl = os === 'linux' && !process.report?.getReport?.().header?.glibcVersionRuntime ? '-musl' : '';
  return `${os}-${arch()}${musl}`;
}

function npmCommand() {
  return platform() === 'win32' ? 'npm.cmd' : 'npm';
}

/** A lock folder (mkdir is atomic); a lock older than 10 minutes is a leftover of a killed install. */
async function acquire(lock) {
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 10 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        // gone meanwhile
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
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
