/**
 * bench/persistence — what durability costs as runs grow (issue 5, item 7).
 *
 *  1. Write cost of a transition's journal entry (encode + write + fdatasync, every transition synced) at
 *     iteration 10, 100 and 1,000 of a run. The three runs are measured at the same time (interleaved in one
 *     process), the longer two resumed at iteration 90 and 990, so disk noise hits all three alike.
 *  2. The same with 1, 100 and 10,000 earlier runs in the store, and the cost of creating a run there.
 *  3. Replay time of the 1,000-iteration run.
 *
 *   npm run bench:persistence
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { listRuns } from '../../src/cli/runs.js';
import { configSchema } from '../../src/config/schema.js';
import { newRunId, resumeRun, runTask, type EngineEvent } from '../../src/index.js';
import { replayRun } from '../../src/replay/replay.js';
import type { CommitStats } from '../../src/store/journal.js';
import { RunStore } from '../../src/store/run-store.js';

const LONG = Number(process.env.LONG_ITERATIONS ?? 1000);
const WINDOW = 20;
const EARLIER_RUNS = [1, 100, Number(process.env.MANY_RUNS ?? 10_000)];

/** Answers at once, a different few-hundred-character answer each time, like a terse agent. */
function agent(): ScriptedAgent {
  const scripted = new ScriptedAgent((request) => `Step ${request.index}: refactored one more module and updated its tests; the suite passes.\n${'Details of the change. '.repeat(12)}\nSTATUS: CONTINUE`);
  const call = scripted.call.bind(scripted);
  scripted.call = async (request) => {
    scripted.requests.length = 0;
    return call(request);
  };
  return scripted;
}

const config = (iterations: number) => configSchema.parse({ task: { max_iterations: iterations } });
const TASK = 'Refactor the codebase module by module, keeping every test green';

interface Sample {
  ms: number;
  bytes: number;
  lines: number;
}

/** Collects every journal commit of a run with the iteration it belongs to. */
function recorder() {
  let iteration = 0;
  const samples = new Map<number, Sample[]>();
  return {
    samples,
    onEvent: (event: EngineEvent) => {
      if (event.type === 'state' && event.actor === 'iteration') iteration = event.index;
    },
    onJournalCommit: (stats: CommitStats, encodeMs: number) => {
      if (!stats.synced || !stats.lines) return;
      const list = samples.get(iteration) ?? [];
      list.push({ ms: encodeMs + stats.writeMs + stats.syncMs, bytes: stats.bytes / stats.lines, lines: stats.lines });
      samples.set(iteration, list);
    },
    window(from: number, to: number): Sample[] {
      return [...samples].filter(([i]) => i >= from && i <= to).flatMap(([, s]) => s);
    },
  };
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
};
const median = (values: number[]) => quantile(values, 0.5);

/** Runs a task to `stopAt` iterations quickly (group commit), then stops it there: the starting point. */
async function prepare(store: string, iterations: number, stopAt: number): Promise<string> {
  const controller = new AbortController();
  const result = await runTask({
    task: TASK,
    workdir: store,
    storeDir: store,
    agent: agent(),
    config: config(iterations),
    signal: controller.signal,
    onEvent: (event) => event.type === 'iteration-done' && event.record.index === stopAt && queueMicrotask(() => controller.abort()),
  });
  if (result.status !== 'interrupted' || result.iterations.length !== stopAt) throw new Error(`setup run ended ${result.status} at ${result.iterations.length}`);
  return result.runId;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const fmt = (ms: number) => ms.toFixed(3);
const verdict = (ok: boolean) => (ok ? 'meets the target' : 'MISSES the target');

async function byIteration(root: string): Promise<{ runId: string; store: string }> {
  const store = join(root, 'by-iteration');
  console.log(`Setting up: a run stopped at iteration 90 and one at iteration ${LONG - 10}…`);
  const hundred = await prepare(store, 100 + WINDOW / 2, 100 - WINDOW / 2);
  const thousand = await prepare(store, LONG + WINDOW / 2, LONG - WINDOW / 2);
  const positions = [
    { at: 10, recorder: recorder() },
    { at: 100, recorder: recorder() },
    { at: LONG, recorder: recorder() },
  ];
  const strict = { durability: 'strict' as const };
  await Promise.all([
    runTask({ task: TASK, workdir: store, storeDir: store, agent: agent(), config: config(WINDOW), ...strict, ...positions[0]!.recorder }),
    resumeRun(hundred, { storeDir: store, agent: agent(), ...strict, ...positions[1]!.recorder }),
    resumeRun(thousand, { storeDir: store, agent: agent(), ...strict, ...positions[2]!.recorder }),
  ]);
  const rows = positions.map(({ at, recorder: r }) => {
    const window = r.window(at - WINDOW / 2 + 1, at + WINDOW / 2);
    return { at, samples: window };
  });
  const base = median(rows[0]!.samples.map((s) => s.ms));
  console.log('\nJournal write per transition (encode + write + fdatasync; every transition synced), by how far the run is:\n');
  console.log(
    table(
      ['iteration', 'transitions', 'median ms', 'p99 ms', 'median bytes/line', 'median vs iteration 10'],
      rows.map(({ at, samples }) => [
        `~${at} (${at - WINDOW / 2 + 1}–${at + WINDOW / 2})`,
        String(samples.length),
        fmt(median(samples.map((s) => s.ms))),
        fmt(quantile(samples.map((s) => s.ms), 0.99)),
        median(samples.map((s) => s.bytes)).toFixed(0),
        `${(median(samples.map((s) => s.ms)) / base).toFixed(2)}×`,
      ]),
    ),
  );
  const ratio = median(rows[2]!.samples.map((s) => s.ms)) / base;
  console.log(`\nCost at iteration ${LONG} / cost at iteration 10: ${ratio.toFixed(2)}× (target ≤ 2×): ${verdict(ratio <= 2)}.`);
  return { runId: thousand, store };
}

async function byStoreSize(root: string): Promise<void> {
  console.log(`\nSetting up stores with ${EARLIER_RUNS.join(', ')} earlier runs…`);
  const template = join(root, 'template');
  const model = await runTask({ task: TASK, workdir: template, storeDir: template, agent: agent(), config: config(1) });
  const stores = EARLIER_RUNS.map((count) => {
    const store = join(root, `store-${count}`);
    RunStore.open(store);
    const started = Date.now() - count * 1000;
    for (let i = 0; i < count; i++) {
      const id = newRunId(new Date(started + i * 1000));
      mkdirSync(join(store, 'runs', id));
      cpSync(join(template, 'runs', model.runId), join(store, 'runs', id), { recursive: true });
    }
    return { count, store, recorder: recorder(), creates: [] as number[] };
  });
  for (const s of stores) if (readdirSync(join(s.store, 'runs')).length !== s.count) throw new Error('store setup failed');

  // Creating a run (its folder and run.json, fsync'd), interleaved across the stores.
  for (let i = 0; i < 30; i++) {
    for (const s of stores) {
      const store = RunStore.open(s.store);
      const t0 = performance.now();
      const handle = store.createRun({ runId: newRunId(), task: { text: TASK, workdir: root, checks: [], requiredMarkers: [] }, createdAt: new Date().toISOString(), sessionId: null, config: {}, input: {}, agent: { name: 'bench' } });
      s.creates.push(performance.now() - t0);
      handle.close();
      rmSync(handle.dir, { recursive: true });
    }
  }
  // One run per store at the same time, every transition synced.
  await Promise.all(stores.map((s) => runTask({ task: TASK, workdir: s.store, storeDir: s.store, agent: agent(), config: config(40), durability: 'strict', ...s.recorder })));
  const rows = stores.map((s) => ({ ...s, samples: s.recorder.window(1, 40) }));
  const base = median(rows[0]!.samples.map((s) => s.ms));
  console.log('\nJournal write per transition, and creating a run, by how many runs the store already holds:\n');
  console.log(
    table(
      ['earlier runs', 'transitions', 'median ms', 'p99 ms', 'median vs 1 run', 'create a run: median ms'],
      rows.map((r) => [
        String(r.count),
        String(r.samples.length),
        fmt(median(r.samples.map((s) => s.ms))),
        fmt(quantile(r.samples.map((s) => s.ms), 0.99)),
        `${(median(r.samples.map((s) => s.ms)) / base).toFixed(2)}×`,
        fmt(median(r.creates)),
      ]),
    ),
  );
  const ratio = median(rows.at(-1)!.samples.map((s) => s.ms)) / base;
  console.log(`\nCost with ${EARLIER_RUNS.at(-1)} runs / cost with 1: ${ratio.toFixed(2)}× (target ≤ 1.2×): ${verdict(ratio <= 1.2)}.`);
  const t0 = performance.now();
  const listed = listRuns(rows.at(-1)!.store);
  console.log(`(Listing all ${listed.length} runs, \`obra runs\`, takes ${((performance.now() - t0) / 1000).toFixed(2)} s: it reads every run.json; writes never do.)`);
}

async function replayTime(store: string, runId: string): Promise<void> {
  const result = await replayRun(runId, { storeDir: store });
  if (!result.verified) throw new Error(`replay diverged: ${JSON.stringify(result.divergence)}`);
  console.log(`\nReplay of the ${result.iterations}-iteration run (${result.steps} transitions, ${result.segments} segments): ${(result.durationMs / 1000).toFixed(2)} s, every step verified (target < 2 s): ${verdict(result.durationMs < 2000)}.`);
}

async function main() {
  const root = mkdtempSync(join(tmpdir(), 'obra-bench-persistence-'));
  console.log(`bench/persistence, Node ${process.version}, ${new Date().toISOString()}, in ${root}\n`);
  try {
    const long = await byIteration(root);
    await byStoreSize(root);
    await replayTime(long.store, long.runId);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
