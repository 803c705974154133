/**
 * Part 1's row for more cores: the same fleet driven by several worker processes on one store (`obra work` started
 * twice), the concurrency split between them — what a user does to put a second core to work. The queue is
 * submitted here; each worker warms up on a store of its own, says it is ready, and starts on the shared store
 * when told to, so the wall time counts the driving only. A run is driven by whichever worker takes its lock:
 * the runs they report add up to the fleet, each exactly once.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { rmSync } from 'node:fs';
import { submitTasks, work } from '../../src/index.js';
import { fleetAgent, gc, memorySampler } from './common.js';
import { doneInStore, fleetConfig, obraFleet, prepareFleet, rowOf, type FleetRow, type FleetSize } from './scale.js';

/** What one worker process measured of its own drive. */
export interface WorkerShare {
  runs: number;
  workMs: number;
  cpuMs: number;
  heapPeakMb: number;
  rssPeakMb: number;
}

/**
 * Inside a worker process: warm up, say `ready`, wait for a line on stdin, then drive the shared store with its
 * share of the concurrency. The cap on agent calls in flight (shared by every worker on the store) stays the
 * fleet's concurrency, as with one worker.
 */
export async function workerShare(size: FleetSize, concurrency: number, storeDir: string, warm: FleetSize): Promise<WorkerShare> {
  await obraFleet(warm);
  gc();
  process.stdout.write('ready\n');
  await new Promise<void>((go) => process.stdin.once('data', () => go()));
  process.stdin.pause();
  const memory = memorySampler();
  const cpu = process.cpuUsage();
  const started = performance.now();
  const { results } = await work({ storeDir, config: fleetConfig(size, { max_concurrent_calls: size.concurrency }), concurrency, untilIdle: true, agent: fleetAgent(size.iterations) });
  const workMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const peaks = memory.stop();
  return { runs: results.length, workMs, cpuMs: (used.user + used.system) / 1000, heapPeakMb: peaks.heapPeakMb, rssPeakMb: peaks.maxRssMb };
}

/**
 * Submits the fleet, then drives it with `workers` processes (started by `spawnWorker`, each with its share of
 * the concurrency) that start together; the wall time runs from the go to the last one's exit.
 */
export async function workersFleet(
  size: FleetSize,
  workers: number,
  spawnWorker: (concurrency: number, storeDir: string) => { command: string; args: string[] },
): Promise<FleetRow> {
  const { root, storeDir, config, tasks } = prepareFleet(size);
  try {
    const submitStarted = performance.now();
    const runIds = await submitTasks(tasks, { storeDir, config, agent: fleetAgent(size.iterations) });
    const submitMs = performance.now() - submitStarted;
    const share = Math.ceil(size.concurrency / workers);
    const children = Array.from({ length: workers }, () => {
      const { command, args } = spawnWorker(share, storeDir);
      const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
      const lines = createInterface({ input: child.stdout });
      const ready = new Promise<void>((resolve, reject) => {
        lines.once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(`a worker said ${line}`))));
        child.once('exit', (code) => reject(new Error(`a worker exited (${code}) before it was ready`)));
      });
      const done = new Promise<WorkerShare>((resolve, reject) => {
        let last = '';
        lines.on('line', (line) => (last = line));
        child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(last) as WorkerShare) : reject(new Error(`a worker exited ${code}`))));
      });
      return { child, ready, done };
    });
    await Promise.all(children.map((c) => c.ready));
    const started = performance.now();
    for (const { child } of children) child.stdin.end('go\n');
    const shares = await Promise.all(children.map((c) => c.done));
    const workMs = performance.now() - started;
    const drove = shares.reduce((n, s) => n + s.runs, 0);
    // Each run driven once, by one of them: the shares add up to the fleet, and every run ended done.
    const verified = drove === size.tasks ? doneInStore(storeDir, runIds, size) : 0;
    const cpuMs = shares.reduce((n, s) => n + s.cpuMs, 0);
    const sum = (key: 'heapPeakMb' | 'rssPeakMb') => shares.reduce((n, s) => n + s[key], 0);
    return rowOf(`Obra: submitTasks + ${workers} × work() processes`, size, {
      submitMs,
      workMs,
      cpuUsed: { user: cpuMs * 1000, system: 0 },
      verified,
      peaks: { heapPeakMb: sum('heapPeakMb'), maxRssMb: sum('rssPeakMb') },
      heapAfterGcMb: null,
      reads: null,
      note: `runs per worker ${shares.map((s) => s.runs).join(' + ')}, their drives ${shares.map((s) => (s.workMs / 1000).toFixed(1)).join(' s, ')} s`,
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
