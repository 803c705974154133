/**
 * bench/cli-start — how fast the `obra` command starts (issue 11, item 6): the median of fresh processes for
 * `obra --help`, `obra --version`, `obra runs` on a store of 1,000 runs and `obra show` of a 100-iteration run,
 * side by side with `node -e 0` in the same rounds (this machine is shared and noisy: the ratios travel, the
 * milliseconds do not). Targets: --help and --version ≤ 2.5× `node -e 0`; runs and show ≤ 4×.
 *
 *   npm run build && npm run bench:cli-start        (ROUNDS=10 by default)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { runTask } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const ROUNDS = Number(process.env.ROUNDS ?? 10);
const RUNS = Number(process.env.RUNS ?? 1000);

async function makeStore(): Promise<{ store: string; showId: string }> {
  const store = join(mkdtempSync(join(tmpdir(), 'obra-bench-cli-')), 'store');
  const workdir = mkdtempSync(join(tmpdir(), 'obra-bench-cli-work-'));
  // One run of 100 iterations for `obra show`...
  const agent = new ScriptedAgent((request) => `Step ${request.index}: refactored one more module and updated its tests.\nSTATUS: ${request.index === 100 ? 'DONE' : 'CONTINUE'}`);
  const long = await runTask({ task: 'Refactor the codebase module by module', workdir, storeDir: store, agent, config: configSchema.parse({ task: { max_iterations: 100 } }) });
  // ...and the rest of the 1,000 as small finished runs (what `obra runs` reads is each run.json).
  const handle = RunStore.open(store);
  const template = handle.openRun(long.runId);
  const file = template.file;
  template.close();
  for (let i = 1; i < RUNS; i++) {
    const runId = `20261128-${String(100000 + i)}-${i.toString(16).padStart(6, '0')}`;
    const run = handle.createRun({ runId, task: { ...file.task, text: `Task ${i}` }, createdAt: new Date(Date.now() - i * 60_000).toISOString(), sessionId: file.sessionId, config: file.config, input: file.input, agent: file.agent });
    // Finished, as most runs of a store are (a `running` run whose process is gone lists as interrupted).
    run.update({ status: 'done', reason: 'the agent reports done', finishedAt: new Date().toISOString(), iterations: 3, totalCostUsd: 0.02 });
    run.close();
  }
  return { store, showId: long.runId };
}

function timeOnce(args: string[]): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - started;
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return ms;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  const { store, showId } = await makeStore();
  const commands: { name: string; args: string[]; target: number | null }[] = [
    { name: 'node -e 0', args: ['-e', '0'], target: null },
    { name: 'obra --help', args: [CLI, '--help'], target: 2.5 },
    { name: 'obra --version', args: [CLI, '--version'], target: 2.5 },
    { name: `obra runs (${RUNS} runs)`, args: [CLI, 'runs', '--db', store], target: 4 },
    { name: 'obra show (100 iterations)', args: [CLI, 'show', showId, '--db', store], target: 4 },
  ];
  // One unmeasured round (file caches), then rounds in which every command runs once, in turn.
  for (const c of commands) timeOnce(c.args);
  const samples = commands.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) commands.forEach((c, i) => samples[i]!.push(timeOnce(c.args)));
  const baseline = median(samples[0]!);
  const rows = commands.map((c, i) => {
    const ms = median(samples[i]!);
    const ratio = ms / baseline;
    return [c.name, ms.toFixed(1), `${ratio.toFixed(2)}×`, c.target === null ? '' : `≤ ${c.target}×`, c.target === null ? '' : ratio <= c.target ? 'met' : 'NOT met'];
  });
  const header = ['command', 'median ms', 'vs node -e 0', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(`\nobra start-up, median of ${ROUNDS} fresh processes per command (interleaved rounds), Node ${process.version}\n`);
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(row));
}

await main();
