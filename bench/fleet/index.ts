/**
 * bench/fleet — Obra with many tasks (the issue's fleet benchmark), in three parts:
 *   1. the engine at scale: 1,000 tasks × 5 iterations, an in-process agent that answers at once, 50 at a time,
 *      every transition journaled (store.sync: transition) — Obra's queue (submitTasks + work()) against
 *      LangGraph.js (1,000 threads on one SqliteSaver, 50 at a time, the same pipeline looping 5 times); and, to
 *      put every core to work, the same queue driven by one worker process per core on one store;
 *   2. resting tasks: 5,000 tasks queued, waiting for a human and paused — the heap (and time) they cost the
 *      processes that look at them: `obra status` (taskLines) and a worker with nothing to start;
 *   3. real processes: 32 tasks × 3 iterations through fixtures/fake-claude (2 s a call), 8 at a time, each in a
 *      worktree of its own of a small git repository: wall time against the ideal, the worker's CPU per iteration.
 *
 *   npm run bench:fleet                                   (the issue's sizes; several minutes)
 *   npm run bench:fleet -- --tasks 200 --rounds 1 --resting 1000 --procs 8 --only 1,2,3
 *   (or FLEET_TASKS=200 FLEET_ROUNDS=1 ...; see parseOptions in common.ts for every size)
 *
 * Each measurement runs in a fresh process of its own (one engine's modules and heap must not slow another's GC,
 * and the memory columns are then each its own); part 1's runs are interleaved round by round and the median is
 * reported, so the machine's noise hits them alike.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RunStore } from '../../src/index.js';
import { machineLine, met, parseOptions, table, type Options } from './common.js';
import { processesFleet, type ProcessesRow } from './processes.js';
import { buildRestingStore, measureRestingHeap, type RestingHeap, type RestingStore } from './resting.js';
import { langgraphFleet, obraFleet, type FleetRow, type FleetSize } from './scale.js';
import { workerShare, workersFleet } from './workers.js';

/** Tasks of the unmeasured warm-up fleet each part-1 process runs first (modules loaded, code compiled). */
const WARM_UP_TASKS = 50;

type Measurement = 'obra' | 'obra-direct' | 'obra-workers' | 'obra-worker' | 'langgraph' | 'resting-build' | 'resting-heap' | 'processes';

/** Worker processes on one store in part 1's multi-core row (this machine's cores, at least 2). */
const WORKERS = Math.max(2, availableParallelism());

async function measure(what: Measurement, arg: string, options: Options): Promise<unknown> {
  const size: FleetSize = { tasks: options.tasks, iterations: options.iterations, concurrency: options.concurrency };
  const warm: FleetSize = { ...size, tasks: Math.min(WARM_UP_TASKS, size.tasks) };
  switch (what) {
    case 'obra':
      await obraFleet(warm);
      return obraFleet(size);
    case 'obra-direct':
      await obraFleet(warm, 'direct');
      return obraFleet(size, 'direct');
    case 'obra-workers':
      return workersFleet(size, WORKERS, (concurrency, storeDir) => ({
        command: process.execPath,
        args: [...process.execArgv, fileURLToPath(import.meta.url), '--measure', 'obra-worker', JSON.stringify(options), `${concurrency}:${storeDir}`],
      }));
    case 'obra-worker': {
      const colon = arg.indexOf(':');
      return workerShare(size, Number(arg.slice(0, colon)), arg.slice(colon + 1), warm);
    }
    case 'langgraph':
      await langgraphFleet(warm);
      return langgraphFleet(size);
    case 'resting-build':
      return buildRestingStore(options.resting, options.realResting);
    case 'resting-heap': {
      // The same measurement on an empty store is the baseline.
      const root = arg === 'empty' ? mkdtempSync(join(tmpdir(), 'obra-bench-empty-')) : null;
      const storeDir = root ? join(root, 'store') : arg;
      RunStore.open(storeDir);
      try {
        return await measureRestingHeap(storeDir);
      } finally {
        if (root) rmSync(root, { recursive: true, force: true });
      }
    }
    case 'processes':
      return processesFleet({ tasks: options.procs, iterations: options.procIterations, concurrency: options.procConcurrency, latencyMs: options.latencyMs });
  }
}

/** Runs one measurement in a fresh process (through tsx, as this bench runs) and returns what it printed last. */
function inChild<T>(what: Measurement, options: Options, arg = ''): T {
  const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--measure', what, JSON.stringify(options), arg], {
    encoding: 'utf8',
    env: process.env,
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  if (child.status !== 0) throw new Error(`measuring ${what} failed (exit ${child.status})`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as T;
}

const s = (ms: number) => (ms / 1000).toFixed(1);
const ratio = (x: number) => `${x.toFixed(2)}×`;

function partOne(o: Options): void {
  console.log(`\n## 1. The engine at scale: ${o.tasks} tasks × ${o.iterations} iterations, ${o.concurrency} at a time, an in-process agent that answers at once`);
  console.log(`Each engine in a fresh process per round (after an unmeasured warm-up fleet of ${Math.min(WARM_UP_TASKS, o.tasks)} tasks); ${o.rounds} round(s), interleaved; the median run by wall time.\n`);
  const kinds = ['obra', 'langgraph', 'obra-direct', 'obra-workers'] as const;
  const runs = { obra: [] as FleetRow[], langgraph: [] as FleetRow[], 'obra-direct': [] as FleetRow[], 'obra-workers': [] as FleetRow[] };
  for (let round = 0; round < o.rounds; round++) {
    for (const kind of kinds) runs[kind].push(inChild<FleetRow>(kind, o));
  }
  const wall = (r: FleetRow) => r.submitMs + r.workMs;
  const pick = (rows: FleetRow[]) => [...rows].sort((a, b) => wall(a) - wall(b))[Math.floor((rows.length - 1) / 2)]!;
  const obra = pick(runs.obra);
  const lg = pick(runs.langgraph);
  const direct = pick(runs['obra-direct']);
  const workers = pick(runs['obra-workers']);
  const rows = [obra, lg, direct, workers].map((r) => [
    r.engine,
    `${r.tasks} × ${o.iterations}`,
    `${r.verified}/${r.tasks}`,
    r.submitMs ? s(r.submitMs) : '-',
    s(r.workMs),
    s(wall(r)),
    (wall(r) / r.iterations).toFixed(2),
    (r.cpuMs / r.iterations).toFixed(2),
    r.heapPeakMb.toFixed(0),
    r.heapAfterGcMb === null ? '-' : r.heapAfterGcMb.toFixed(1),
    r.rssPeakMb.toFixed(0),
    ratio(wall(r) / wall(lg)),
  ]);
  console.log(table(['engine', 'tasks × iterations', `done after exactly ${o.iterations}`, 'submit s', 'drive s', 'wall s', 'wall ms/iteration', 'CPU ms/iteration', 'heap peak MB', 'heap after GC MB', 'peak RSS MB', 'wall vs LangGraph.js'], rows));
  console.log(`\n(${lg.note}; Obra: ${obra.note}. "done after exactly ${o.iterations}": the run ended done, its iterations proceed, ..., done — checked in the store and the results.)`);
  console.log(`All runs, wall s: ${kinds.map((kind) => `${kind} ${runs[kind].map((r) => s(wall(r))).join(' ')}`).join('; ')}`);

  const target = wall(obra) / wall(lg);
  console.log(`\nObra (submitTasks + work(), concurrency ${o.concurrency}): ${s(wall(obra))} s wall, ${ratio(target)} LangGraph.js's ${s(wall(lg))} s (target ≤ 0.25×: ${met(target <= 0.25)}); driving alone (without submitting): ${ratio(obra.workMs / lg.workMs)}.`);
  if (obra.reads) {
    const r = obra.reads;
    console.log(`  The worker looked at the store ${r.scans} times while it drove, reading ${r.peeks} run files (${(r.peeks / Math.max(1, r.scans)).toFixed(0)} a look): ${s(r.peekMs)} s, ${((r.peekMs / obra.workMs) * 100).toFixed(0)}% of its drive time.`);
  }
  console.log(`  The same drives without the worker (resumeRun, ${o.concurrency} at a time): ${s(direct.workMs)} s, ${ratio(direct.workMs / lg.workMs)} LangGraph.js's drive; with submitting ${ratio(wall(direct) / wall(lg))}.`);
  console.log(`  ${WORKERS} worker processes on one store (\`obra work\` started ${WORKERS} times, ${Math.ceil(o.concurrency / WORKERS)} tasks at a time each; ${workers.note}): ${s(wall(workers))} s wall, ${ratio(wall(workers) / wall(lg))} LangGraph.js; ${ratio(wall(workers) / wall(obra))} one worker's wall for ${ratio(workers.cpuMs / obra.cpuMs)} its CPU (their heap and RSS columns are the sum of the workers').`);
  console.log(`  Submitting ${o.tasks} tasks (a plain folder each): ${s(obra.submitMs)} s, ${(obra.submitMs / o.tasks).toFixed(1)} ms a task.`);
}

function partTwo(o: Options): void {
  const queued = o.resting - o.realResting;
  console.log(`\n## 2. Resting tasks: ${o.resting} (${queued} queued, ${Math.ceil(o.realResting / 2)} waiting for a human, ${o.realResting - Math.ceil(o.realResting / 2)} paused)`);
  const built = inChild<RestingStore>('resting-build', o);
  try {
    console.log(`The escalated and paused ones were driven for real (an in-process agent refused a tool use / a checkpoint after iteration 1); the queued ones follow an escalated one, so a worker must leave them waiting. Built in ${s(built.buildMs)} s; the store holds ${Object.entries(built.statuses).map(([status, n]) => `${n} ${status}`).join(', ')}.`);
    console.log('A resting task is only files in the store: what it costs is what a process that looks at the store keeps and allocates for it — `obra status` (taskLines) and a worker (work(), nothing to start, a look every 500 ms). Each measured in a fresh process, after a warm-up pass, against the same process on an empty store.\n');
    const empty = inChild<RestingHeap>('resting-heap', o, 'empty');
    const full = inChild<RestingHeap>('resting-heap', o, built.storeDir);
    const n = full.tasks;
    const kb = (a: number, b: number) => `${(((b - a) * 1024) / n).toFixed(2)} KB`;
    const heapRow = (what: string, a: number, b: number) => [what, a.toFixed(1), b.toFixed(1), (b - a).toFixed(1), kb(a, b)];
    const cpuRow = (what: string, a: number, b: number) => [what, a.toFixed(1), b.toFixed(1), (b - a).toFixed(1), `${(((b - a) * 1000) / n).toFixed(1)} µs`];
    const rows = [
      heapRow('obra status (taskLines): heap after GC, its lines held, MB', empty.linesHeldMb, full.linesHeldMb),
      heapRow('obra status: heap peak while it reads the store (garbage included), MB', empty.linesPeakMb, full.linesPeakMb),
      heapRow('worker: heap after GC between looks, MB', empty.workerIdleMb, full.workerIdleMb),
      heapRow('worker: heap peak during its looks (garbage included), MB', empty.workerPeakMb, full.workerPeakMb),
      ['obra status: time to list them, ms', empty.linesMs.toFixed(0), full.linesMs.toFixed(0), (full.linesMs - empty.linesMs).toFixed(0), `${(((full.linesMs - empty.linesMs) * 1000) / n).toFixed(0)} µs`],
      cpuRow('obra status --watch, the board: a later look, ms', empty.linesAgainMs, full.linesAgainMs),
      cpuRow('worker: CPU of its first look at the store (reads every run), ms', empty.workerCpuMsFirstScan, full.workerCpuMsFirstScan),
      cpuRow('worker: CPU per later look (reads what changed), ms', empty.workerCpuMsPerScan, full.workerCpuMsPerScan),
    ];
    console.log(table(['', 'empty store', `${n} resting`, 'difference', 'per resting task'], rows));
    if (empty.started || full.started) console.log(`WARNING: the worker started ${empty.started + full.started} task(s) that should have rested`);
    const held = Math.max(full.linesHeldMb - empty.linesHeldMb, full.workerIdleMb - empty.workerIdleMb);
    const peak = Math.max(full.linesPeakMb - empty.linesPeakMb, full.workerPeakMb - empty.workerPeakMb);
    const perTask = (mbs: number) => (mbs * 1024) / n;
    console.log(`\nHeap per resting task: ${perTask(held).toFixed(2)} KB kept, at most ${perTask(peak).toFixed(2)} KB while a process reads the store (garbage included) — target ≤ 50 KB: ${met(perTask(peak) <= 50)}.`);
    const busy = full.workerCpuMsPerScan / 500;
    console.log(`An idle worker over this store spends ${full.workerCpuMsPerScan.toFixed(1)} ms of CPU per look after its first (${(busy * 100).toFixed(1)}% of a core at a look every 500 ms); its first look, ${full.workerCpuMsFirstScan.toFixed(0)} ms.`);
  } finally {
    rmSync(built.root, { recursive: true, force: true });
  }
}

function partThree(o: Options): void {
  console.log(`\n## 3. Real processes: ${o.procs} tasks × ${o.procIterations} iterations, ${o.procConcurrency} at a time, fixtures/fake-claude answering in ${s(o.latencyMs)} s, a worktree each`);
  const r = inChild<ProcessesRow>('processes', o);
  console.log(table(
    ['tasks × iterations', 'concurrency', `done, ${o.procIterations} iterations, ${o.procIterations} commits`, 'submit s', 'wall s', 'ideal s', 'wall / ideal', 'worker CPU ms/iteration', 'agent calls', 'most in flight', 'median call ms', 'median gap between calls ms'],
    [[`${r.tasks} × ${o.procIterations}`, String(r.concurrency), `${r.verified}/${r.tasks}`, s(r.submitMs), s(r.workMs), s(r.idealMs), ratio(r.workMs / r.idealMs), r.cpuMsPerIteration.toFixed(1), String(r.calls), String(r.maxCallsInFlight), r.medianCallMs.toFixed(0), r.medianGapMs.toFixed(0)]],
  ));
  for (const failure of r.failures) console.log(`NOT DONE AS EXPECTED: ${failure}`);
  console.log(`\nIdeal: ceil(${o.procs}/${o.procConcurrency}) × ${o.procIterations} × ${s(o.latencyMs)} s = ${s(r.idealMs)} s (every call back to back, nothing else taking time). Wall ${ratio(r.workMs / r.idealMs)} the ideal — target ≤ 1.15×: ${met(r.workMs / r.idealMs <= 1.15)}.`);
  console.log('"worker CPU": process.cpuUsage() of the worker process (its children — the CLI, git — not counted) over the drive, per iteration. "gap": from the end of a task\'s call to the start of its next (the engine, the iteration\'s commit, the next CLI process starting), from the fake\'s own log.');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2), process.env);
  const started = performance.now();
  console.log(`bench/fleet, ${new Date().toISOString()}`);
  console.log(machineLine());
  if (options.only.includes(1)) partOne(options);
  if (options.only.includes(2)) partTwo(options);
  if (options.only.includes(3)) partThree(options);
  console.log(`\n(bench/fleet took ${s(performance.now() - started)} s)`);
}

const measureAt = process.argv.indexOf('--measure');
if (measureAt !== -1) {
  const [what, options, arg] = process.argv.slice(measureAt + 1) as [Measurement, string, string];
  const result = await measure(what, arg, JSON.parse(options) as Options);
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else await main();
