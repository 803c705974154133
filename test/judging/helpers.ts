import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import type { Agent } from '../../src/agents/agent.js';
import { ScriptedAgent, type ReplyScript } from '../../src/agents/scripted-agent.js';
import { configSchema, type ConfigInput, type ObraConfig } from '../../src/config/schema.js';
import type { AgentCallRecord, CheckResult, IterationRecord, TaskSpec, ValidationVerdict } from '../../src/core/types.js';
import type { EngineEvent, EngineOptions } from '../../src/index.js';
import { RunStore } from '../../src/store/run-store.js';

export const tempDir = (prefix = 'obra-judging-') => mkdtempSync(join(tmpdir(), prefix));
export const readJsonLines = <T = any>(path: string): T[] =>
  readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as T);

export const config = (input: ConfigInput = {}): ObraConfig => configSchema.parse(input);

/** One step of the task machine: the state it reached and the guards of the transitions that took it there. */
export interface TaskStep {
  value: string;
  guards: string[];
  event: string;
}

/**
 * Watches a run through XState's inspection API: every microstep of the task machine (so transient states
 * like `checkingBudgets` show up), with the named guards that chose each transition.
 */
export function taskTrace() {
  const steps: TaskStep[] = [];
  const inspect = (event: InspectionEvent) => {
    if (event.type !== '@xstate.microstep') return;
    const ref = event.actorRef as AnyActorRef;
    // The runner stops the actor when the run comes to rest; that is not a step of the task.
    if (ref.sessionId !== event.rootId || event.event.type === 'xstate.stop') return;
    const value = (event.snapshot as unknown as { value: unknown }).value;
    steps.push({
      value: typeof value === 'string' ? value : JSON.stringify(value),
      guards: event._transitions.map((t) => (t.guard && typeof t.guard === 'object' && 'type' in t.guard ? String(t.guard.type) : typeof t.guard === 'string' ? t.guard : '')).filter(Boolean),
      event: event.event.type,
    });
  };
  return { steps, inspect, states: () => steps.map((s) => s.value), guards: () => steps.flatMap((s) => s.guards) };
}

/** Everything a test needs to drive a run with the in-process agent and read it back. */
export function harness(script: ReplyScript | Agent, configInput: ConfigInput = {}) {
  const store = tempDir('obra-store-');
  const workdir = tempDir('obra-work-');
  const agent = typeof script === 'object' && !Array.isArray(script) && 'call' in script ? (script as Agent) : new ScriptedAgent(script as ReplyScript);
  const events: EngineEvent[] = [];
  const trace = taskTrace();
  const options = (extra: Partial<EngineOptions> = {}): EngineOptions & { workdir: string } => ({
    storeDir: store,
    workdir,
    agent,
    config: config(configInput),
    onEvent: (e) => events.push(e),
    inspect: trace.inspect,
    ...extra,
  });
  const records = (runId: string) => readJsonLines<IterationRecord>(join(store, 'runs', runId, 'iterations.jsonl'));
  /** The journal, decoded by the store (its lines on disk are compacted). */
  const journal = (runId: string): any[] => {
    const handle = RunStore.open(store, { create: false }).openRun(runId);
    try {
      return handle.readJournal();
    } finally {
      handle.close();
    }
  };
  const runFile = (runId: string) => JSON.parse(readFileSync(join(store, 'runs', runId, 'run.json'), 'utf8'));
  return { store, workdir, agent: agent as ScriptedAgent, events, trace, options, records, journal, runFile };
}

/** A finished agent call with an answer, for unit tests of the judging components. */
export function answerCall(text: string, extra: Partial<{ is_error: boolean; subtype: string; num_turns: number; stop_reason: string | null; api_error_status: number | null; total_cost_usd: number }> = {}): AgentCallRecord {
  return {
    outcome: {
      kind: 'answer',
      result: {
        type: 'result',
        subtype: extra.subtype ?? 'success',
        is_error: extra.is_error ?? false,
        result: text,
        session_id: 's-1',
        duration_ms: 10,
        num_turns: extra.num_turns ?? 3,
        total_cost_usd: extra.total_cost_usd ?? 0.01,
        api_error_status: extra.api_error_status ?? null,
        stop_reason: extra.stop_reason === undefined ? 'end_turn' : extra.stop_reason,
      },
    },
    argv: ['test'],
    sessionId: 's-1',
    mode: 'resume',
    exitCode: 0,
    signal: null,
    stdout: '',
    stderr: '',
    startedAt: 0,
    durationMs: 10,
    finishedAt: 10,
  };
}

export const task = (extra: Partial<TaskSpec> = {}): TaskSpec => ({ text: 'Add a greet(name) function to greet.js', workdir: '/tmp', checks: [], requiredMarkers: [], ...extra });

export const check = (command: string, exitCode: number | null, outputTail = ''): CheckResult => ({ command, exitCode, durationMs: 5, timedOut: exitCode === null, outputTail });

export const verdict = (extra: Partial<ValidationVerdict> = {}): ValidationVerdict => ({ ok: true, reasons: [], codes: [], answer: 'Added greet(name) to greet.js and tested it.\nSTATUS: CONTINUE', claimsDone: false, ...extra });
