/**
 * bench/overhead — the engine's own cost per iteration (issue 6, item 7).
 *
 * The same eight-step pipeline (build context, prompt, agent call, backoff when busy, validate, score, decide,
 * persist), with the same components and an in-process agent that answers at once, driven:
 *   - by Obra: XState statecharts, every transition journaled (group commit, and fdatasync per transition);
 *   - by LangGraph.js: a StateGraph of the same eight nodes with its SQLite checkpointer as shipped
 *     (a checkpoint after every step).
 * Then Obra over 10,000 iterations, sampling RSS, to show memory stays flat.
 *
 *   npm run bench:overhead            (ITERATIONS=1000 LONG_ITERATIONS=10000 by default)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Annotation, END, START, StateGraph } from '@langchain/langgraph';
import { SqliteSaver } from '@langchain/langgraph-checkpoint-sqlite';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema, type ObraConfig } from '../../src/config/schema.js';
import type { AgentCallRecord, DecisionReport, IterationSummary, TaskSpec, ValidationVerdict } from '../../src/core/types.js';
import { iterationActors } from '../../src/engine/implementations.js';
import { buildMachines, runTask } from '../../src/engine/runner.js';
import { retryPolicyFromConfig } from '../../src/agents/retry-policy.js';
import { createActor } from 'xstate';
import type { Durability } from '../../src/store/transition-recorder.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ITERATIONS = Number(process.env.ITERATIONS ?? 1000);
const LONG_ITERATIONS = Number(process.env.LONG_ITERATIONS ?? 10_000);
const TASK_TEXT = 'Refactor the parser module: split tokenizer and AST builder, keep the public API, add tests';

/** An agent that answers at once; different answers each time (the same one repeated would be "stuck"). */
function instantAgent(): ScriptedAgent {
  const agent = new ScriptedAgent((request) => `Step ${request.index}: split one more part of the parser and updated its tests; all tests pass.\nSTATUS: CONTINUE`);
  // The scripted agent keeps every request for tests; a benchmark must not count that as engine memory.
  const call = agent.call.bind(agent);
  agent.call = async (request) => {
    agent.requests.length = 0;
    return call(request);
  };
  return agent;
}

const configFor = (iterations: number): ObraConfig => configSchema.parse({ task: { max_iterations: iterations } });
const mb = (bytes: number) => bytes / 1024 / 1024;

interface Row {
  engine: string;
  iterations: number;
  ms: number;
  heapMb: number;
  rssMb: number;
  syncsPerIteration: number | null;
  note: string;
}

async function obra(iterations: number, durability: Durability, sample?: (iteration: number) => void): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'obra-bench-overhead-'));
  let syncs = 0;
  gc();
  const started = performance.now();
  const result = await runTask({
    task: TASK_TEXT,
    workdir: dir,
    storeDir: join(dir, '.obra'),
    agent: instantAgent(),
    config: configFor(iterations),
    durability,
    onJournalCommit: (stats) => {
      if (stats.synced) syncs += 1;
    },
    onEvent: (event) => event.type === 'iteration-done' && sample?.(event.record.index),
  });
  const ms = performance.now() - started;
  const memory = process.memoryUsage();
  if (result.status !== 'max_iterations' || result.iterations.length !== iterations) throw new Error(`Obra run ended ${result.status} after ${result.iterations.length}`);
  rmSync(dir, { recursive: true, force: true });
  // The iteration records (iterations.jsonl) ride on the journal's fdatasync: these are all of them.
  return { engine: `Obra (${durability === 'effect' ? 'group commit' : 'fsync per transition'})`, iterations, ms, heapMb: mb(memory.heapUsed), rssMb: mb(memory.rss), syncsPerIteration: syncs / iterations, note: durability };
}

/** The floor: Obra's statecharts and components with no journal and no inspection at all. */
async function bare(iterations: number): Promise<Row> {
  const config = configFor(iterations);
  const machine = buildMachines({ config, agent: instantAgent(), now: Date.now, saveIteration: () => {} });
  const input = {
    runId: 'bare',
    task: { text: TASK_TEXT, workdir: tmpdir(), checks: [], requiredMarkers: [] },
    sessionId: '8f0c6f0e-4d7a-4c55-9d59-1a2b3c4d5e6f',
    sessionStrategy: 'resume' as const,
    retry: retryPolicyFromConfig(config.agent.local),
    budgets: { maxIterations: iterations, maxCostUsd: null, maxTurns: null, maxWallMs: null },
    historyWindow: config.context.history_window,
  };
  gc();
  const started = performance.now();
  const actor = createActor(machine, { input });
  await new Promise<void>((resolve) => {
    actor.subscribe({ complete: () => resolve() });
    actor.start();
  });
  const ms = performance.now() - started;
  const memory = process.memoryUsage();
  return { engine: 'Obra without persistence (the floor)', iterations, ms, heapMb: mb(memory.heapUsed), rssMb: mb(memory.rss), syncsPerIteration: 0, note: 'none' };
}

/** The same pipeline as a LangGraph.js StateGraph, each node calling the very component Obra's actor calls. */
async function langgraph(iterations: number): Promise<Row & { synchronous: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'obra-bench-langgraph-'));
  const config = configFor(iterations);
  const agent = instantAgent();
  const actors = iterationActors({ config, agent, saveIteration: () => {} }) as unknown as Record<string, { config: (args: { input: unknown; signal: AbortSignal }) => Promise<unknown> }>;
  const step = <T>(name: string, input: unknown) => actors[name]!.config({ input, signal: new AbortController().signal }) as Promise<T>;
  const task: TaskSpec = { text: TASK_TEXT, workdir: dir, checks: [], requiredMarkers: [] };
  const sessionId = '8f0c6f0e-4d7a-4c55-9d59-1a2b3c4d5e6f';

  const State = Annotation.Root({
    index: Annotation<number>,
    history: Annotation<IterationSummary[]>,
    feedback: Annotation<string | null>,
    context: Annotation<string>,
    prompt: Annotation<string>,
    attempts: Annotation<number>,
    call: Annotation<AgentCallRecord | null>,
    validation: Annotation<ValidationVerdict | null>,
    quality: Annotation<unknown>,
    confidence: Annotation<unknown>,
    decision: Annotation<DecisionReport | null>,
  });
  type S = typeof State.State;
  const graph = new StateGraph(State)
    .addNode('building', async (s: S) => ({ context: await step<string>('buildContext', { task, index: s.index, history: s.history, feedback: s.feedback }) }))
    .addNode('prompting', async (s: S) => ({ prompt: await step<string>('generatePrompt', { task, index: s.index, context: s.context }) }))
    .addNode('awaitingAgent', async (s: S) => ({
      attempts: s.attempts + 1,
      call: await step<AgentCallRecord>('callAgent', { runId: 'lg', index: s.index, attempt: s.attempts + 1, prompt: s.prompt, sessionId, mode: 'resume', workdir: dir }),
    }))
    .addNode('retryingSessionLock', async () => ({}))
    .addNode('validating', async (s: S) => ({ validation: await step<ValidationVerdict>('validateResponse', { task, call: s.call }) }))
    .addNode('scoring', async (s: S) => {
      const scored = await step<{ quality: unknown; confidence: unknown }>('scoreResponse', { task, index: s.index, call: s.call, validation: s.validation, history: s.history });
      return { quality: scored.quality, confidence: scored.confidence };
    })
    .addNode('deciding', async (s: S) => ({
      decision: await step<DecisionReport>('decide', { task, index: s.index, validation: s.validation, quality: s.quality, confidence: s.confidence, history: s.history }),
    }))
    .addNode('persisting', async (s: S) => {
      const summary = { index: s.index, decision: s.decision!.decision, quality: 0, confidence: 0, answerExcerpt: (s.validation?.answer ?? '').slice(0, 400), feedback: s.decision!.feedback, failingChecks: [], validationCodes: s.validation?.codes ?? [] } as unknown as IterationSummary;
      return { index: s.index + 1, attempts: 0, history: [...s.history, summary].slice(-config.context.history_window), feedback: s.decision!.feedback };
    })
    .addEdge(START, 'building')
    .addEdge('building', 'prompting')
    .addEdge('prompting', 'awaitingAgent')
    .addConditionalEdges('awaitingAgent', (s: S) => (s.call?.outcome.kind === 'sessionBusy' ? 'retryingSessionLock' : 'validating'), ['retryingSessionLock', 'validating'])
    .addEdge('retryingSessionLock', 'awaitingAgent')
    .addEdge('validating', 'scoring')
    .addEdge('scoring', 'deciding')
    .addEdge('deciding', 'persisting')
    .addEdge('persisting', END);
  const checkpointer = SqliteSaver.fromConnString(join(dir, 'checkpoints.db'));
  const app = graph.compile({ checkpointer });
  const thread = { configurable: { thread_id: 'bench' } };
  gc();
  const started = performance.now();
  let state: Partial<S> = { index: 1, history: [], feedback: null, attempts: 0, call: null, validation: null, decision: null };
  for (let i = 0; i < iterations; i++) {
    state = await app.invoke(i === 0 ? state : { index: state.index! }, thread);
  }
  const ms = performance.now() - started;
  const memory = process.memoryUsage();
  const synchronous = String((checkpointer as unknown as { db: { pragma(p: string, o: object): unknown } }).db.pragma('synchronous', { simple: true }));
  const journalMode = String((checkpointer as unknown as { db: { pragma(p: string, o: object): unknown } }).db.pragma('journal_mode', { simple: true }));
  if (state.index !== iterations + 1) throw new Error(`LangGraph run ended at index ${state.index}`);
  rmSync(dir, { recursive: true, force: true });
  return {
    engine: 'LangGraph.js + SqliteSaver',
    iterations,
    ms,
    heapMb: mb(memory.heapUsed),
    rssMb: mb(memory.rss),
    syncsPerIteration: null,
    note: `journal_mode=${journalMode}, synchronous=${synchronous}`,
    synchronous,
  };
}

function table(rows: Row[], reference: Row): string {
  const header = ['engine', 'iterations', 'iterations/s', 'ms/iteration', 'fdatasync/iteration', 'heap MB', 'RSS MB', 'vs LangGraph.js'];
  const body = rows.map((r) => [
    r.engine,
    String(r.iterations),
    (r.iterations / (r.ms / 1000)).toFixed(0),
    (r.ms / r.iterations).toFixed(3),
    r.syncsPerIteration === null ? r.note : r.syncsPerIteration.toFixed(1),
    r.heapMb.toFixed(1),
    r.rssMb.toFixed(1),
    `${(r.ms / r.iterations / (reference.ms / reference.iterations)).toFixed(2)}×`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

async function main() {
  console.log(`bench/overhead: ${ITERATIONS} iterations, instant in-process agent, Node ${process.version}, ${new Date().toISOString()}\n`);
  // Warm up both (JIT, module loading) so the measured runs compare engines, not start-up.
  await obra(50, 'effect');
  await langgraph(20);
  // Interleaved and repeated: the machine's fsync latency drifts; each figure is the median of three runs.
  const runs: Record<string, Row[]> = { effect: [], transition: [], langgraph: [], bare: [] };
  for (let round = 0; round < 3; round++) {
    runs.effect!.push(await obra(ITERATIONS, 'effect'));
    runs.langgraph!.push(await langgraph(ITERATIONS));
    runs.transition!.push(await obra(ITERATIONS, 'transition'));
    runs.bare!.push(await bare(ITERATIONS));
  }
  const medianRow = (rows: Row[]) => [...rows].sort((a, b) => a.ms - b.ms)[1]!;
  const effect = medianRow(runs.effect!);
  const transition = medianRow(runs.transition!);
  const lg = medianRow(runs.langgraph!);
  const floor = medianRow(runs.bare!);
  console.log(table([effect, transition, lg, floor], lg));
  console.log(`\nOf Obra's ${(effect.ms / effect.iterations).toFixed(3)} ms, ${(floor.ms / floor.iterations).toFixed(3)} ms are its statecharts and components with no journal at all.`);
  console.log(`\nObra (group commit) costs ${(effect.ms / effect.iterations).toFixed(3)} ms per iteration: ${((effect.ms / effect.iterations) / (lg.ms / lg.iterations)).toFixed(2)}× LangGraph.js's ${(lg.ms / lg.iterations).toFixed(3)} ms (target ≤ 1.6 ms).`);

  // Memory over a long run, in a fresh process with nothing else loaded (LangGraph's modules would count).
  const child = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--memory'], { stdio: 'inherit', env: process.env });
  if (child.status !== 0) throw new Error(`the memory run failed (${child.status})`);
}

/** RSS and heap after a full GC every tenth of LONG_ITERATIONS iterations of one run. */
async function memory() {
  const samples: { iteration: number; rssMb: number; heapMb: number }[] = [];
  const every = Math.max(1, Math.floor(LONG_ITERATIONS / 10));
  const started = performance.now();
  await obra(LONG_ITERATIONS, 'effect', (iteration) => {
    if (iteration % every !== 0) return;
    gc();
    const memory = process.memoryUsage();
    samples.push({ iteration, rssMb: mb(memory.rss), heapMb: mb(memory.heapUsed) });
  });
  console.log(`\nMemory over ${LONG_ITERATIONS} iterations (Obra, group commit, a process of its own; after a full GC; ${((performance.now() - started) / LONG_ITERATIONS).toFixed(3)} ms/iteration):`);
  console.log(samples.map((s) => `  iteration ${String(s.iteration).padStart(6)}: RSS ${s.rssMb.toFixed(1)} MB, heap ${s.heapMb.toFixed(1)} MB`).join('\n'));
  const firstHalf = samples.slice(1, Math.ceil(samples.length / 2));
  const secondHalf = samples.slice(Math.ceil(samples.length / 2));
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  console.log(`  from the first half to the second: heap ${(avg(secondHalf.map((s) => s.heapMb)) - avg(firstHalf.map((s) => s.heapMb))).toFixed(2)} MB, RSS ${(avg(secondHalf.map((s) => s.rssMb)) - avg(firstHalf.map((s) => s.rssMb))).toFixed(2)} MB`);
}

if (process.argv.includes('--memory')) await memory();
else await main();
