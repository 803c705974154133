#!/usr/bin/env node
/**
 * Installs the Restate server for Obra's Restate tests and `obra restate up` — from the npm registry
 * (`@restatedev/restate-server`, whose platform package ships the binary), into
 * `.cache/restate-server/<version>/` (gitignored), never into Obra's own dependencies: it is a 216 MB binary
 * under the BSL 1.1 that single-machine users never need. Once installed it is reused.
 *
 *   node scripts/install-restate-server.mjs      prints the path of the `restate-server` binary
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The version src/hosts/restate/server.ts looks for (RESTATE_SERVER_VERSION there). */
export const RESTATE_SERVER_VERSION = '1.7.12';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, '.cache', 'restate-server', RESTATE_SERVER_VERSION);
const bin = join(dir, 'node_modules', `@restatedev/restate-server-${platform()}-${arch()}`, 'bin', 'restate-server');

export function ensureRestateServer() {
  if (existsSync(bin)) return { bin, installedMs: 0 };
  const started = Date.now();
  mkdirSync(dir, { recursive: true });
  // A package.json of its own: npm installs here, not into the project above.
  if (!existsSync(join(dir, 'package.json'))) writeFileSync(join(dir, 'package.json'), '{ "private": true }\n');
  try {
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `@restatedev/restate-server@${RESTATE_SERVER_VERSION}`], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 10 * 60_000,
      encoding: 'utf8',
    });
  } catch (error) {
    const stderr = String(error.stderr ?? error.message).trim().split('\n').slice(-5).join(' | ');
    throw new Error(`npm could not install @restatedev/restate-server@${RESTATE_SERVER_VERSION} into ${dir}: ${stderr}`);
  }
  if (!existsSync(bin)) throw new Error(`@restatedev/restate-server@${RESTATE_SERVER_VERSION} was installed into ${dir} but has no binary for ${platform()}-${arch()}`);
  return { bin, installedMs: Date.now() - started };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { bin: found, installedMs } = ensureRestateServer();
    process.stderr.write(installedMs ? `installed the Restate server ${RESTATE_SERVER_VERSION} in ${(installedMs / 1000).toFixed(1)}s\n` : `the Restate server ${RESTATE_SERVER_VERSION} is already installed\n`);
    process.stdout.write(`${found}\n`);
  } catch (error) {
    process.stderr.write(`install-restate-server: ${error.message}\n`);
    process.exit(1);
  }
}
