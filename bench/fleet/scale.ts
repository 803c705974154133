/**
 * Part 1, the engine at scale: many tasks of a few iterations each, an agent that answers at once, N at a time —
 * by Obra's queue (submitTasks, then work()) with every transition journaled, and by LangGraph.js (one thread a
 * task on one SqliteSaver, the same pipeline as a graph that loops until the decision is done).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema } from '../../src/config/schema.js';
import type { TaskSpec } from '../../src/core/types.js';
import { langgraphPipeline } from '../langgraph-pipeline.js';
import { resumeRun, RunStore, submitTasks, work, type RunResult } from '../../src/index.js';
import { fleetAgent, gc, mb, memorySampler, runIdsFor, storeReads, TASK_TEXT, type StoreReads } from './common.js';

export interface FleetRow {
  engine: string;
  tasks: number;
  iterations: number;
  /** Submitting the tasks (Obra only; LangGraph makes a thread on its first checkpoint). */
  submitMs: number;
  /** Driving them all to the end. */
  workMs: number;
  cpuMs: number;
  /** Tasks that ended done with exactly the iterations asked for. */
  verified: number;
  heapPeakMb: number;
  /** Null where several processes drove (each its own heap). */
  heapAfterGcMb: number | null;
  rssPeakMb: number;
  /** What the driving process read of the store while it drove (Obra only). */
  reads: StoreReads | null;
  note: string;
}

export interface FleetSize {
  tasks: number;
  iterations: number;
  concurrency: number;
}

/**
 * Obra: the tasks queued in a temp store, one plain folder each (two queued tasks never share one), then driven
 * by a worker (`work()`, as `obra work` does) — or, to tell the engine's cost from the worker's, by `resumeRun`
 * called directly, `concurrency` at a time (what the worker does for each task, without its look at the store).
 */
export async function obraFleet(size: FleetSize, driver: 'worker' | 'direct' = 'worker'): Promise<FleetRow> {
  const { root, storeDir, config, tasks } = prepareFleet(size);
  const agent = fleetAgent(size.iterations);
  gc();
  const memory = memorySampler();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const runIds = await submitTasks(tasks, { storeDir, config, agent });
  const submitted = performance.now();
  const reads = storeReads();
  const results = driver === 'worker' ? (await work({ storeDir, config, concurrency: size.concurrency, untilIdle: true, agent })).results : await drivePool(runIds, size.concurrency, (runId) => resumeRun(runId, { storeDir, agent }));
  const workMs = performance.now() - submitted;
  const cpuUsed = process.cpuUsage(cpu);
  const storeRead = reads.stop();
  const peaks = memory.stop();
  gc();
  const heapAfterGcMb = mb(process.memoryUsage().heapUsed);

  // Each task really did the iterations asked for and ended done: by the worker's results and by the store.
  const byWorker = new Map(results.map((r) => [r.runId, r]));
  const verified = doneInStore(storeDir, runIds, size, (runId) => {
    const r = byWorker.get(runId);
    return r?.status === 'done' && r.iterations.length === size.iterations && r.iterations.every((it, i) => it.decision === (i === size.iterations - 1 ? 'done' : 'proceed'));
  });
  rmSync(root, { recursive: true, force: true });
  const engine = driver === 'worker' ? 'Obra: submitTasks + work()' : 'Obra: submitTasks + resumeRun × N (no worker)';
  return rowOf(engine, size, { submitMs: submitted - started, workMs, cpuUsed, verified, peaks, heapAfterGcMb, reads: storeRead, note: 'store.sync: transition' });
}

/**
 * The fleet's config. The run's own config caps agent calls in flight (agent.max_concurrent_calls, default
 * queue.concurrency = 4): submitted with the worker's concurrency, so the cap is not what is measured.
 */
export const fleetConfig = (size: FleetSize, agent: { max_concurrent_calls?: number } = {}) =>
  configSchema.parse({ task: { max_iterations: size.iterations + 5 }, queue: { concurrency: size.concurrency }, agent });

/** A fleet's temp store and tasks, not yet submitted: one plain folder a task (two queued tasks never share one). */
export function prepareFleet(size: FleetSize) {
  const root = mkdtempSync(join(tmpdir(), 'obra-bench-fleet-'));
  const storeDir = join(root, 'store');
  const config = fleetConfig(size);
  const tasks = runIdsFor(size.tasks).map((runId, i) => {
    const repo = join(root, 'work', `task-${i}`);
    mkdirSync(repo, { recursive: true });
    return { task: TASK_TEXT, repo, runId };
  });
  return { root, storeDir, config, tasks };
}

/** How many of the runs the store has ended done with exactly the iterations asked for (and pass `alsoOk`). */
export function doneInStore(storeDir: string, runIds: string[], size: FleetSize, alsoOk: (runId: string) => boolean = () => true): number {
  const store = RunStore.open(storeDir, { create: false });
  return runIds.filter((runId) => {
    const peek = store.peekRun(runId);
    return alsoOk(runId) && peek.status === 'done' && peek.iterations === size.iterations;
  }).length;
}

/** A fleet's row from what was measured around it. */
export function rowOf(
  engine: string,
  size: FleetSize,
  m: { submitMs: number; workMs: number; cpuUsed: NodeJS.CpuUsage; verified: number; peaks: { heapPeakMb: number; maxRssMb: number }; heapAfterGcMb: number | null; reads: FleetRow['reads']; note: string },
): FleetRow {
  return {
    engine,
    tasks: size.tasks,
    iterations: size.tasks * size.iterations,
    submitMs: m.submitMs,
    workMs: m.workMs,
    cpuMs: (m.cpuUsed.user + m.cpuUsed.system) / 1000,
    verified: m.verified,
    heapPeakMb: m.peaks.heapPeakMb,
    heapAfterGcMb: m.heapAfterGcMb,
    rssPeakMb: m.peaks.maxRssMb,
    reads: m.reads,
    note: m.note,
  };
}

/** Runs `drive` over the ids, `concurrency` at a time (each runner takes the next id when its last one ends). */
async function drivePool(runIds: string[], concurrency: number, drive: (runId: string) => Promise<RunResult>): Promise<RunResult[]> {
  const results: RunResult[] = [];
  let next = 0;
  const runner = async () => {
    for (let i = next++; i < runIds.length; i = next++) results.push(await drive(runIds[i]!));
  };
  await Promise.all(Array.from({ length: concurrency }, runner));
  return results;
}

/**
 * LangGraph.js: the same eight steps as nodes calling the very components Obra's actors call (as in
 * bench/overhead), looping from `persisting` back to `building` until the decision is done; one thread per task
 * on one SqliteSaver (WAL, a checkpoint after every step), `concurrency` invocations in flight at a time.
 */
export async function langgraphFleet(size: FleetSize): Promise<FleetRow> {
  const dir = mkdtempSync(join(tmpdir(), 'obra-bench-fleet-lg-'));
  const config = configSchema.parse({ task: { max_iterations: size.iterations + 5 } });
  const agent = fleetAgent(size.iterations);
  const task: TaskSpec = { text: TASK_TEXT, workdir: dir, checks: [], requiredMarkers: [] };
  const { app, pragma } = langgraphPipeline({ config, agent, task, dir, loop: true, mode: (index) => (index === 1 ? 'create' : 'resume') });

  gc();
  const memory = memorySampler();
  const cpu = process.cpuUsage();
  const started = performance.now();
  let next = 0;
  let verified = 0;
  // `concurrency` runners, each taking the next thread when its last one ends: N in flight at a time.
  const runner = async () => {
    for (let i = next++; i < size.tasks; i = next++) {
      const runId = `task-${i}`;
      const state = await app.invoke(
        { runId, sessionId: `8f0c6f0e-4d7a-4c55-9d59-${String(i).padStart(12, '0')}`, index: 1, history: [], feedback: null, attempts: 0, call: null, validation: null, decision: null, decisions: [] },
        { configurable: { thread_id: runId }, recursionLimit: (config.task.max_iterations + 1) * 10 },
      );
      const ds = state.decisions;
      if (ds.length === size.iterations && ds.every((d, k) => d === (k === size.iterations - 1 ? 'done' : 'proceed'))) verified++;
    }
  };
  await Promise.all(Array.from({ length: size.concurrency }, runner));
  const workMs = performance.now() - started;
  const cpuUsed = process.cpuUsage(cpu);
  const peaks = memory.stop();
  gc();
  const heapAfterGcMb = mb(process.memoryUsage().heapUsed);
  const note = `journal_mode=${pragma('journal_mode')}, synchronous=${pragma('synchronous')}`;
  rmSync(dir, { recursive: true, force: true });
  return rowOf('LangGraph.js + SqliteSaver', size, { submitMs: 0, workMs, cpuUsed, verified, peaks, heapAfterGcMb, reads: null, note });
}
