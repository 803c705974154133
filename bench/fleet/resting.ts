/**
 * Part 2, resting tasks: a store of queued, escalated (waiting for a human) and paused tasks, and what they cost
 * the processes that look at them. A resting task holds nothing in any process — it is its files in the store —
 * so its heap cost is what a process that goes over the store keeps and allocates per task: `obra status`
 * (`taskLines`) and a worker looking for work (`work()`, which reads every run file of the store at each look).
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { RunStore, submitTasks, TaskLineReader, taskLines, work } from '../../src/index.js';
import { gc, mb, median, runIdsFor, storeReads, TASK_TEXT } from './common.js';

export interface RestingStore {
  root: string;
  storeDir: string;
  /** Tasks by status, read back from the store. */
  statuses: Record<string, number>;
  buildMs: number;
}

/**
 * Makes `total` resting tasks, each with a plain folder of its own: `real` of them driven for real by a worker
 * with an in-process agent — half escalated (the agent was refused a tool use: a person must allow it), half
 * paused (a checkpoint after every iteration) — and the rest queued behind one of the escalated ones (`after`),
 * so they wait: a worker would start a queued task that follows nothing.
 */
export async function buildRestingStore(total: number, real: number): Promise<RestingStore> {
  const root = mkdtempSync(join(tmpdir(), 'obra-bench-resting-'));
  const storeDir = join(root, 'store');
  const folder = (i: number) => {
    const dir = join(root, 'work', `task-${i}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const escalating = Math.ceil(real / 2);
  const pausing = real - escalating;
  const queued = total - real;
  const started = performance.now();

  const escalate = new Set<string>();
  const agent = new ScriptedAgent((request) =>
    escalate.has(request.runId)
      ? { answer: 'Split the tokenizer out of the parser; I need to run the linter on it before going on.\nSTATUS: CONTINUE', denials: [{ tool: 'Bash', input: 'npm run lint', rule: 'Bash(npm run lint)' }] }
      : `Step ${request.index}: split one more part of the parser and updated its tests; all tests pass.\nSTATUS: CONTINUE`,
  );
  const config = configSchema.parse({ queue: { concurrency: 50 } });
  const pausedConfig = configSchema.parse({ queue: { concurrency: 50 }, decision: { checkpoint_every: 1 } });
  let n = 0;
  const ids = runIdsFor(total);
  const some = (count: number) => Array.from({ length: count }, () => ({ task: TASK_TEXT, repo: folder(n), runId: ids[n++]! }));
  const escalated = await submitTasks(some(escalating), { storeDir, config, agent });
  for (const runId of escalated) escalate.add(runId);
  await submitTasks(some(pausing), { storeDir, config: pausedConfig, agent });
  await work({ storeDir, config, concurrency: 50, untilIdle: true, agent });
  // In batches: submitTasks asks git about every folder at once.
  for (let done = 0; done < queued; done += 500) {
    const batch = some(Math.min(500, queued - done)).map((t, i) => ({ ...t, after: escalated[(done + i) % escalated.length]! }));
    await submitTasks(batch, { storeDir, config });
  }
  const buildMs = performance.now() - started;

  const store = RunStore.open(storeDir, { create: false });
  const statuses: Record<string, number> = {};
  for (const runId of store.listRunIds()) {
    const status = store.peekRun(runId).status;
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
  return { root, storeDir, statuses, buildMs };
}

export interface RestingHeap {
  tasks: number;
  /** `taskLines` (obra status): its time, the heap after a full GC before it and while its lines are held, and
   * the highest heap seen while it read the store (garbage not yet collected included). */
  linesMs: number;
  /** `obra status --watch` and the board: a later look, which reads only the runs whose files changed. */
  linesAgainMs: number;
  linesBaseMb: number;
  linesHeldMb: number;
  linesPeakMb: number;
  /** A worker with nothing it may start, looking at the store every `pollMs`: its looks, time and CPU per look. */
  workerScans: number;
  workerScanMs: number;
  /** CPU of its first look (it reads every run file) and of each later one (it reads only what changed). */
  workerCpuMsFirstScan: number;
  workerCpuMsPerScan: number;
  /** Its heap after a full GC between looks (median), and the highest heap seen during its looks. */
  workerIdleMb: number;
  workerPeakMb: number;
  /** Tasks the worker started (must be 0: they all rest). */
  started: number;
}

/** Measures, in this (fresh) process, what going over the store costs the status command and a worker. */
export async function measureRestingHeap(storeDir: string, options: { pollMs?: number; looks?: number } = {}): Promise<RestingHeap> {
  const pollMs = options.pollMs ?? 500;
  const looks = options.looks ?? 8;
  const heap = () => process.memoryUsage().heapUsed;
  // Warm-up: modules loaded and code compiled, so only what the store adds is measured.
  taskLines(storeDir);

  // obra status: heap sampled on every 100th run it reads, so the peak of the pass is seen.
  let peak = 0;
  const sampleEvery100 = (peeks: number) => {
    if (peeks % 100 === 0) peak = Math.max(peak, heap());
  };
  gc();
  const linesBaseMb = mb(heap());
  let reads = storeReads(sampleEvery100);
  const t0 = performance.now();
  let lines: unknown[] | null = taskLines(storeDir);
  const linesMs = performance.now() - t0;
  reads.stop();
  const linesPeakMb = mb(Math.max(peak, heap()));
  gc();
  const linesHeldMb = mb(heap());
  const tasks = lines.length;
  lines = null;
  // A reader that keeps the lines (--watch, the board): its second look, once the first has read every run.
  let reader: TaskLineReader | null = new TaskLineReader(storeDir);
  reader.lines();
  const t1 = performance.now();
  reader.lines();
  const linesAgainMs = performance.now() - t1;
  reader = null;

  // A worker that finds nothing to start. An agent that must never be called: nothing in this store may start.
  const agent = new ScriptedAgent(() => {
    throw new Error('a resting task was started');
  });
  const runWorker = async (between: () => void, polls = looks) => {
    const controller = new AbortController();
    const worker = work({ storeDir, concurrency: 50, signal: controller.signal, pollMs, agent });
    for (let i = 0; i < polls; i++) {
      await new Promise((r) => setTimeout(r, pollMs));
      between();
    }
    controller.abort();
    return (await worker).results.length;
  };
  // Its CPU per look, with nothing else in the process (no forced GC): a worker that looks twice and one that
  // looks `looks` times; the difference is what its later looks cost, and the rest is its first.
  const cpuOf = async (polls: number) => {
    gc();
    const counting = storeReads();
    const cpu = process.cpuUsage();
    const started = await runWorker(() => {}, polls);
    const used = process.cpuUsage(cpu);
    return { ms: (used.user + used.system) / 1000, counted: counting.stop(), started };
  };
  const short = await cpuOf(1);
  const long = await cpuOf(looks);
  const counted = long.counted;
  const perLaterScan = (long.ms - short.ms) / Math.max(1, long.counted.scans - short.counted.scans);
  let started = short.started + long.started;
  // Its heap: the peak during its looks, and after a full GC between them.
  peak = 0;
  const idle: number[] = [];
  reads = storeReads(sampleEvery100);
  started += await runWorker(() => {
    peak = Math.max(peak, heap());
    gc();
    idle.push(heap());
  });
  reads.stop();
  return {
    tasks,
    linesMs,
    linesAgainMs,
    linesBaseMb,
    linesHeldMb,
    linesPeakMb,
    workerScans: counted.scans,
    workerScanMs: counted.peekMs / Math.max(1, counted.scans),
    workerCpuMsFirstScan: short.ms - perLaterScan * Math.max(0, short.counted.scans - 1),
    workerCpuMsPerScan: perLaterScan,
    workerIdleMb: mb(median(idle)),
    workerPeakMb: mb(peak),
    started,
  };
}
