import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { createIterationMachine, type IterationInput, type ScoreOutput, type ScoreInput, type ValidateInput, type DecideInput } from '../../machines/iteration.machine.js';
import type { AgentCallRecord, AgentOutcome, DecisionReport, IterationRecord, RetryPolicy, ValidationVerdict } from '../../src/core/types.js';

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 5, initialDelayMs: 2000, backoff: 1.5, maxDelayMs: 60_000, jitter: 'none', onExhausted: 'fail' };

export function answer(text: string, sessionId = 's-1'): AgentOutcome {
  return {
    kind: 'answer',
    result: { type: 'result', subtype: 'success', is_error: false, result: text, session_id: sessionId, duration_ms: 1, num_turns: 1, total_cost_usd: 0.001 },
  };
}

export const busy: AgentOutcome = { kind: 'sessionBusy', message: 'Error: Session ID s-1 is already in use.' };

export function callRecord(outcome: AgentOutcome, input: { sessionId: string | null; mode: AgentCallRecord['mode'] }, at: number): AgentCallRecord {
  return { outcome, argv: ['fake'], sessionId: input.sessionId ?? 'new-session', mode: input.mode, exitCode: 0, signal: null, stdout: '', stderr: '', startedAt: at, durationMs: 0, finishedAt: at };
}

/**
 * Runs one iteration machine on a SimulatedClock with scripted agent outcomes. Every actor is trivial except
 * the agent, so the test sees exactly the machine's own behaviour: states, attempts, delays.
 */
export function iterationHarness(outcomes: AgentOutcome[], overrides: Partial<IterationInput> = {}, decision: DecisionReport['decision'] = 'proceed') {
  const clock = new SimulatedClock();
  const calls: { at: number; sessionId: string | null; mode: string }[] = [];
  const machine = createIterationMachine(() => clock.now()).provide({
    actors: {
      buildContext: fromPromise(async () => 'context'),
      generatePrompt: fromPromise(async () => 'prompt'),
      callAgent: fromPromise(async ({ input }) => {
        calls.push({ at: clock.now(), sessionId: input.sessionId, mode: input.mode });
        const outcome = outcomes[Math.min(calls.length - 1, outcomes.length - 1)]!;
        return callRecord(outcome, input, clock.now());
      }),
      validateResponse: fromPromise<ValidationVerdict, ValidateInput>(async () => ({ ok: true, reasons: [], codes: [], answer: 'ok', claimsDone: false })),
      scoreResponse: fromPromise<ScoreOutput, ScoreInput>(async () => ({
        quality: { score: 0.9, breakdown: {}, checks: [], warnings: [], notes: [] },
        confidence: { score: 0.9, explanation: [] },
      })),
      decide: fromPromise<DecisionReport, DecideInput>(async () => ({ decision, rule: 'test', reason: 'scripted', feedback: null })),
      persistIteration: fromPromise<void, IterationRecord>(async () => {}),
    },
  });
  const input: IterationInput = {
    runId: 'r',
    index: 1,
    task: { text: 't', workdir: '/tmp', checks: [], requiredMarkers: [] },
    sessionId: 's-1',
    sessionStarted: true,
    sessionStrategy: 'resume',
    history: [],
    feedback: null,
    retry: DEFAULT_RETRY,
    ...overrides,
  };
  const actor = createActor(machine, { input, clock });
  const visited: string[] = [];
  actor.subscribe((snapshot) => {
    if (visited.at(-1) !== snapshot.value) visited.push(String(snapshot.value));
  });
  const done = new Promise<IterationRecord>((resolve, reject) => {
    actor.subscribe({ complete: () => resolve(actor.getSnapshot().output!), error: reject });
  });
  return { actor, clock, calls, visited, done, machine };
}

/** Lets pending promise callbacks (the scripted actors) run. */
export const flush = async (times = 5) => {
  for (let i = 0; i < times; i++) await new Promise((r) => setImmediate(r));
};
