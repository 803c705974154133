#!/usr/bin/env node
/**
 * Installs the real agent CLIs Obra drives besides Claude Code, for the contract tests — from the npm registry,
 * into `.cache/agent-clis/<cli>/<version>/` (gitignored), never into Obra's own dependencies. Once installed each
 * is reused. The versions are the ones the samples in fixtures/agent-clis/ were measured with.
 *
 *   node scripts/install-agent-clis.mjs             installs every CLI below, prints `<cli> <path of its binary>`
 *   node scripts/install-agent-clis.mjs codex       only Codex
 *
 * Concurrent callers (parallel test files) wait for one another through a lock folder per CLI.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Per CLI: its npm package, the pinned version, its command, its size (said before the download), `--version`'s words. */
export const AGENT_CLIS = {
  codex: { pkg: '@openai/codex', version: '0.171.0', bin: 'codex', size: '~424 MB', versionText: '0.171.0' },
  gemini: { pkg: '@google/gemini-cli', version: '0.61.0', bin: 'gemini', size: '~102 MB', versionText: '0.61.0' },
  // The newest Qwen Code that runs on Node 20.
  qwen: { pkg: '@qwen-code/qwen-code', version: '0.15.10', bin: 'qwen', size: '~55 MB', versionText: '0.15.10' },
};

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export function agentCliDir(cli) {
  return join(root, '.cache', 'agent-clis', cli, AGENT_CLIS[cli].version);
}

/** The installed binary that answers `--version` with the pinned version, or null. */
export function findAgentCli(cli) {
  const spec = AGENT_CLIS[cli];
  const bin = join(agentCliDir(cli), 'node_modules', '.bin', spec.bin);
  if (!existsSync(bin)) return null;
  // Its own HOME: some CLIs write state there even for --version (Gemini CLI's projects.json), never in the user's.
  const home = join(agentCliDir(cli), 'home');
  mkdirSync(home, { recursive: true });
  const run = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: home } });
  return run.status === 0 && run.stdout.includes(spec.versionText) ? bin : null;
}

/** Installs (once) and returns `{ bin, version, installedMs }`; throws with npm's message when it cannot. */
export async function ensureAgentCli(cli) {
  const spec = AGENT_CLIS[cli];
  if (!spec) throw new Error(`unknown agent CLI "${cli}" — one of ${Object.keys(AGENT_CLIS).join(', ')}`);
  const found = findAgentCli(cli);
  if (found) return { bin: found, version: spec.version, installedMs: 0 };
  const dir = agentCliDir(cli);
  mkdirSync(dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  const started = Date.now();
  await acquire(lock);
  try {
    const again = findAgentCli(cli);
    if (again) return { bin: again, version: spec.version, installedMs: 0 };
    mkdirSync(dir, { recursive: true });
    process.stderr.write(`obra tests: downloading ${spec.pkg} ${spec.version} (${spec.size}) into .cache/ for test/contract — once\n`);
    try {
      execFileSync(npmCommand(), ['install', '--prefix', dir, '--no-audit', '--no-fund', '--no-save', '--loglevel=error', `${spec.pkg}@${spec.version}`], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 15 * 60_000,
        encoding: 'utf8',
      });
    } catch (error) {
      const stderr = String(error.stderr ?? error.message).trim().split('\n').slice(-5).join(' | ');
      throw new Error(`npm could not install ${spec.pkg}@${spec.version} into ${dir}: ${stderr}`);
    }
    const bin = findAgentCli(cli);
    if (!bin) throw new Error(`${spec.pkg}@${spec.version} was installed into ${dir} but \`${spec.bin} --version\` does not run here`);
    return { bin, version: spec.version, installedMs: Date.now() - started };
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function npmCommand() {
  return platform() === 'win32' ? 'npm.cmd' : 'npm';
}

/** A lock folder (mkdir is atomic); a lock older than 15 minutes is a leftover of a killed install. */
async function acquire(lock) {
  for (;;) {
    try {
      mkdirSync(lock);
      return;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 15 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        // gone meanwhile
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(AGENT_CLIS);
  let failed = false;
  for (const cli of wanted) {
    try {
      const { bin, version, installedMs } = await ensureAgentCli(cli);
      process.stderr.write(installedMs ? `installed ${cli} ${version} in ${(installedMs / 1000).toFixed(1)}s\n` : `${cli} ${version} already installed\n`);
      process.stdout.write(`${cli} ${bin}\n`);
    } catch (error) {
      process.stderr.write(`install-agent-clis: ${error.message}\n`);
      failed = true;
    }
  }
  if (failed) process.exit(1);
}
