/**
 * What the installers of the real CLIs for the tests share (scripts/install-real-claude.mjs,
 * scripts/install-agent-clis.mjs): one npm package installed once into a folder of `.cache/`, concurrent callers
 * (parallel test files) waiting for one another through a lock folder.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { platform } from 'node:os';
import { dirname } from 'node:path';

/**
 * Installs `pkg` (`name@version`) into `dir` unless `find()` already finds its binary; returns `{ bin, installedMs }`
 * (0 when it was there). `npmFlags` go to `npm install` before the package. `announce` is said on stderr before the download, inside the lock (one process says it);
 * npm gets `timeoutMs`, and a lock as old is a leftover of a killed install. Throws with npm's message, or with
 * `notRunning()` when the installed binary is not found.
 */
export async function installOnce({ dir, pkg, find, announce, timeoutMs, notRunning, npmFlags = [] }) {
  const found = find();
  if (found) return { bin: found, installedMs: 0 };
  mkdirSync(dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  const started = Date.now();
  await acquire(lock, timeoutMs);
  try {
    const again = find();
    if (again) return { bin: again, installedMs: 0 };
    mkdirSync(dir, { recursive: true });
    process.stderr.write(announce);
    try {
      execFileSync(npmCommand(), ['install', '--prefix', dir, '--no-audit', '--no-fund', '--no-save', '--loglevel=error', ...npmFlags, pkg], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: timeoutMs,
        encoding: 'utf8',
      });
    } catch (error) {
      const stderr = String(error.stderr ?? error.message).trim().split('\n').slice(-5).join(' | ');
      throw new Error(`npm could not install ${pkg} into ${dir}: ${stderr}`);
    }
    const bin = find();
    if (!bin) throw new Error(notRunning());
    return { bin, installedMs: Date.now() - started };
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function npmCommand() {
  return platform() === 'win32' ? 'npm.cmd' : 'npm';
}

/** A lock folder (mkdir is atomic); a lock older than `staleMs` is a leftover of a killed install. */
async function acquire(lock, staleMs) {
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      try {
        if (Date.now() - statSync(lock).mtimeMs > staleMs) rmSync(lock, { recursive: true, force: true });
      } catch {
        // gone meanwhile
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
