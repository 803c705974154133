#!/usr/bin/env node
/**
 * Installs the real agent CLIs Obra drives besides Claude Code, for the contract tests — from the npm registry,
 * into `.cache/agent-clis/<cli>/<version>/` (gitignored), never into Obra's own dependencies. Once installed each
 * is reused. The versions are the ones the samples in fixtures/agent-clis/ were measured with.
 *
 *   node scripts/install-agent-clis.mjs             installs every CLI below, prints `<cli> <path of its binary>`
 *   node scripts/install-agent-clis.mjs codex       only Codex
 *
 * Concurrent callers (parallel test files) wait for one another through a lock folder per CLI (install-once.mjs).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installOnce } from './install-once.mjs';

/** Per CLI: its npm package, the pinned version, its command, its size (said before the download), `--version`'s words. */
export const AGENT_CLIS = {
  codex: { pkg: '@openai/codex', version: '0.171.0', bin: 'codex', size: '~424 MB', versionText: '0.171.0' },
  gemini: { pkg: '@google/gemini-cli', version: '0.61.0', bin: 'gemini', size: '~102 MB', versionText: '0.61.0' },
  // The newest Qwen Code that runs on Node 20.
  qwen: { pkg: '@qwen-code/qwen-code', version: '0.15.10', bin: 'qwen', size: '~55 MB', versionText: '0.15.10' },
  // npm would add both x64 builds (opencode-linux-x64 and -baseline, 177 MB each); without the optional platform
  // packages, opencode's own postinstall fetches just the one this CPU runs and copies it into bin/.
  opencode: { pkg: 'opencode-ai', version: '1.18.33', bin: 'opencode', size: '~177 MB', versionText: '1.18.33', npmFlags: ['--omit=optional'] },
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
  const { bin, installedMs } = await installOnce({
    dir: agentCliDir(cli),
    pkg: `${spec.pkg}@${spec.version}`,
    find: () => findAgentCli(cli),
    announce: `obra tests: downloading ${spec.pkg} ${spec.version} (${spec.size}) into .cache/ for test/contract — once\n`,
    timeoutMs: 15 * 60_000,
    npmFlags: spec.npmFlags ?? [],
    notRunning: () => `${spec.pkg}@${spec.version} was installed into ${agentCliDir(cli)} but \`${spec.bin} --version\` does not run here`,
  });
  return { bin, version: spec.version, installedMs };
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
