/** Helpers shared by the parts of bench/fleet: options, the instant agent, memory sampling, tables. */
import { cpus, totalmem } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { newRunId } from '../../src/hosts/files/local.js';
import { RunStore } from '../../src/store/run-store.js';

setFlagsFromString('--expose-gc');
/** A full GC, without having to start node with --expose-gc (tsx runs us). */
export const gc = runInNewContext('gc') as () => void;

export interface Options {
  /** Part 1: tasks, iterations each, tasks at a time, interleaved rounds (the median is reported). */
  tasks: number;
  iterations: number;
  concurrency: number;
  rounds: number;
  /** Part 2: resting tasks in all, and how many of them are escalated and paused by real runs (half each). */
  resting: number;
  realResting: number;
  /** Part 3: tasks, iterations each, tasks at a time, the fake CLI's latency per call. */
  procs: number;
  procIterations: number;
  procConcurrency: number;
  latencyMs: number;
  /** Which parts to run (1, 2, 3). */
  only: number[];
}

const DEFAULTS: Options = {
  tasks: 1000,
  iterations: 5,
  concurrency: 50,
  rounds: 3,
  resting: 5000,
  realResting: 2000,
  procs: 32,
  procIterations: 3,
  procConcurrency: 8,
  latencyMs: 2000,
  only: [1, 2, 3],
};

/** `--tasks 200` (or FLEET_TASKS=200), `--real-resting 500` (FLEET_REAL_RESTING), `--only 1,3`, ... */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): Options {
  const options = { ...DEFAULTS, only: [...DEFAULTS.only] };
  for (const key of Object.keys(DEFAULTS) as (keyof Options)[]) {
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    const at = argv.indexOf(flag);
    const raw = at >= 0 ? argv[at + 1] : env[`FLEET_${flag.slice(2).replaceAll('-', '_').toUpperCase()}`];
    if (raw === undefined) continue;
    if (key === 'only') options.only = raw.split(',').map(Number);
    else {
      const value = Number(raw);
      if (!Number.isInteger(value) || value < 1) throw new Error(`${flag} must be a whole number of at least 1, got ${raw}`);
      options[key] = value;
    }
  }
  options.realResting = Math.min(options.realResting, options.resting);
  return options;
}

export const TASK_TEXT = 'Refactor the parser module: split tokenizer and AST builder, keep the public API, add tests';

/**
 * An in-process agent that answers at once: CONTINUE on calls 1..n-1 of a task and DONE on the n-th, keyed on
 * the iteration index of the request (so every task does exactly n iterations, whatever the interleaving).
 * Each answer names its step: the same answer three times would be "stuck".
 */
export function fleetAgent(iterations: number): ScriptedAgent {
  const agent = new ScriptedAgent((request) =>
    request.index < iterations
      ? `Step ${request.index}: split one more part of the parser and updated its tests; all tests pass.\nSTATUS: CONTINUE`
      : `Step ${request.index}: the tokenizer and the AST builder are split, the public API is kept and tests are added; all tests pass.\nSTATUS: DONE`,
  );
  // The scripted agent keeps every request for tests; a benchmark must not count that as engine memory.
  const call = agent.call.bind(agent);
  agent.call = async (request) => {
    agent.requests.length = 0;
    return call(request);
  };
  return agent;
}

export const mb = (bytes: number) => bytes / 1024 / 1024;

/**
 * The highest heap and RSS seen while work runs, sampled every `everyMs` (no GC forced: garbage not yet
 * collected counts, as it does for the machine). The peak RSS of the whole process comes from the kernel.
 */
export function memorySampler(everyMs = 20) {
  let heapPeak = 0;
  let rssPeak = 0;
  const sample = () => {
    const m = process.memoryUsage();
    heapPeak = Math.max(heapPeak, m.heapUsed);
    rssPeak = Math.max(rssPeak, m.rss);
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { heapPeakMb: mb(heapPeak), rssPeakMb: mb(rssPeak), maxRssMb: process.resourceUsage().maxRSS / 1024 };
    },
  };
}

export function machineLine(): string {
  const cores = cpus();
  return `Machine: ${cores[0]?.model.trim() ?? '?'}, ${cores.length} cores, ${(totalmem() / 1024 ** 3).toFixed(1)} GB RAM, Node ${process.version}, ${process.platform}`;
}

/** A markdown table, columns padded (the style of the other benches). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export const met = (ok: boolean) => (ok ? 'met' : 'NOT met');

export interface StoreReads {
  /** Listings of the store's runs (one per look at the queue). */
  scans: number;
  /** Run files read for a run's status (`peekRun`, `peekStatus`), and the time they took. */
  peeks: number;
  peekMs: number;
}

/**
 * Counts what this process reads of the store from now until `stop()`: a worker looks at the runs of the store
 * when it looks for work. A wrapper around RunStore's methods, in this process only (src is not changed); it costs
 * two clock reads a call.
 */
export function storeReads(onPeek?: (peeks: number) => void): { stop: () => StoreReads } {
  const proto = RunStore.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const counts: StoreReads = { scans: 0, peeks: 0, peekMs: 0 };
  const originals = new Map<string, (...args: unknown[]) => unknown>();
  const wrap = (name: string, wrapper: (original: (...args: unknown[]) => unknown) => (...args: unknown[]) => unknown) => {
    const original = proto[name];
    if (typeof original !== 'function') return;
    originals.set(name, original);
    proto[name] = wrapper(original);
  };
  wrap('listRunIds', (original) => function (this: unknown, ...args) {
    counts.scans++;
    return original.apply(this, args);
  });
  // One of them may call the other: only the outermost call counts.
  let depth = 0;
  const timed = (original: (...args: unknown[]) => unknown) => function (this: unknown, ...args: unknown[]) {
    if (depth > 0) return original.apply(this, args);
    depth++;
    const t0 = performance.now();
    try {
      return original.apply(this, args);
    } finally {
      depth--;
      counts.peekMs += performance.now() - t0;
      counts.peeks++;
      onPeek?.(counts.peeks);
    }
  };
  wrap('peekRun', timed);
  wrap('peekStatus', timed);
  return {
    stop() {
      for (const [name, original] of originals) proto[name] = original;
      return counts;
    },
  };
}

/**
 * Run ids for a batch of `count` tasks, unique in the batch. Not left to submitTasks: newRunId() is the second plus
 * 24 random bits, so 1,000 ids made in one second collide now and then (about 3% of such batches), and a batch is
 * not checked against itself (the second createRun then fails half-way through the batch).
 */
export function runIdsFor(count: number, prefix = newRunId()): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(5, '0')}`);
}
