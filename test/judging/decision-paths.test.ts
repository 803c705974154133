import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import type { Agent, AgentCallRequest } from '../../src/agents/agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { DECISIONS } from '../../src/core/types.js';
import { answerRun, resumeRun, runTask } from '../../src/index.js';
import { harness } from './helpers.js';

/**
 * Every decision path through the task machine, driven by the real engine (runner, store, iteration machine)
 * with the in-process ScriptedAgent. Each test asserts the task machine's states (including the transient
 * `checkingBudgets`) with the named guards that routed them, and the evidence recorded on disk.
 */

const ACTIONS = DECISIONS.filter((d) => d !== 'fail');

describe('decision paths through the task machine', () => {
  it('done: one accepted iteration, routed by decidedDone, with all the evidence in the record and the --json view', async () => {
    const h = harness([{ answer: 'Added greet(name) to greet.js and tested it by hand.\nSTATUS: DONE', turns: 3 }]);
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function to greet.js' });

    expect(result.status).toBe('done');
    expect(h.trace.states()).toEqual(['done']);
    expect(h.trace.guards()).toEqual(['decidedDone']);
    const [record] = h.records(result.runId);
    expect(record!.decision).toBe('done');
    expect(record!.decisionRule).toBe('acceptedAsDone');
    expect(record!.validation).toMatchObject({ ok: true, codes: [], claimsDone: true });
    expect(Object.keys(record!.qualityBreakdown).sort()).toEqual(['code_quality', 'requirements', 'syntax', 'testing']);
    expect(record!.quality).toBeGreaterThanOrEqual(0.7);
    expect(record!.confidenceExplanation.map((l) => l.split(' ')[0])).toEqual(['validation', 'quality', 'history', 'agent']);

    const view = result.iterations[0]!;
    expect(view).toMatchObject({ decision: 'done', decisionRule: 'acceptedAsDone', checks: [], validation: { ok: true, reasons: [], codes: [] } });
    expect(view.qualityBreakdown).toEqual(record!.qualityBreakdown);
    expect(view.confidenceExplanation).toEqual(record!.confidenceExplanation);
    expect(ACTIONS).toContain(view.decision);
  });

  it('proceed: work goes on in the same session until the agent is done (decidedProceed, then decidedDone)', async () => {
    const h = harness([
      { answer: 'Added greet(name) to greet.js.\nNext: its documentation.\nSTATUS: CONTINUE', turns: 2 },
      { answer: 'Documented greet(name) in the README; the function is complete.\nSTATUS: DONE', turns: 2 },
    ]);
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function to greet.js' });

    expect(result.status).toBe('done');
    expect(h.trace.states()).toEqual(['checkingBudgets', 'running', 'done']);
    expect(h.trace.guards()).toEqual(['decidedProceed', 'decidedDone']);
    expect(result.iterations.map((i) => [i.decision, i.decisionRule])).toEqual([
      ['proceed', 'progressing'],
      ['done', 'acceptedAsDone'],
    ]);
    expect(h.agent.requests.map((r) => r.mode)).toEqual(['create', 'resume']);
    expect(h.agent.requests[1]!.prompt).toContain('Iteration 1: proceed');
  });

  it('retry: a "done" the check contradicts is retried with the check output as feedback, then passes', async () => {
    const h = harness(() => 'unused');
    const agent = new ScriptedAgent((_request, call) => {
      // The agent's "work": the first attempt writes the wrong text, the second the right one.
      writeFileSync(join(h.workdir, 'greeting.txt'), call === 0 ? 'hello world\n' : 'Hello, world\n');
      return { answer: call === 0 ? 'Wrote greeting.txt.\nSTATUS: DONE' : 'Fixed greeting.txt to the exact text.\nSTATUS: DONE', turns: 2 };
    });
    const check = 'grep -x "Hello, world" greeting.txt || { echo "greeting.txt holds: $(cat greeting.txt)"; exit 1; }';
    const result = await runTask({ ...h.options({ agent }), task: 'Write greeting.txt containing "Hello, world"', checks: [check] });

    expect(result.status).toBe('done');
    expect(h.trace.states()).toEqual(['checkingBudgets', 'running', 'done']);
    expect(h.trace.guards()).toEqual(['decidedRetry', 'decidedDone']);
    const [first, second] = h.records(result.runId);
    expect(first).toMatchObject({ decision: 'retry', decisionRule: 'checksFailing' });
    expect(first!.checks).toHaveLength(1);
    expect(first!.checks[0]).toMatchObject({ command: check, exitCode: 1, timedOut: false });
    expect(first!.checks[0]!.outputTail).toContain('greeting.txt holds: hello world');
    expect(first!.feedback).toContain('You said the task is done, but the acceptance checks say otherwise');
    // The feedback went into the next prompt: the command and what it printed.
    expect(agent.requests[1]!.prompt).toContain('Feedback to address first');
    expect(agent.requests[1]!.prompt).toContain('greeting.txt holds: hello world');
    expect(second).toMatchObject({ decision: 'done', decisionRule: 'acceptedAsDone' });
    expect(second!.checks[0]!.exitCode).toBe(0);
    expect(result.iterations[0]!.checks).toEqual([{ command: check, exitCode: 1, durationMs: first!.checks[0]!.durationMs }]);
  });

  it('retry after a broken answer (is_error) carries the validator reasons into the next prompt', async () => {
    const h = harness([
      { answer: 'API Error: 500 {"type":"error","error":{"type":"api_error","message":"Internal server error"}}', isError: true },
      { answer: 'Added greet(name) to greet.js and verified it.\nSTATUS: DONE', turns: 2 },
    ]);
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function to greet.js' });

    expect(result.iterations.map((i) => [i.decision, i.decisionRule])).toEqual([
      ['retry', 'validationFailed'],
      ['done', 'acceptedAsDone'],
    ]);
    expect(result.iterations[0]!.validation).toMatchObject({ ok: false, codes: ['is_error'] });
    expect(h.agent.requests[1]!.prompt).toContain('the CLI reported an error');
    expect(h.trace.guards()).toEqual(['decidedRetry', 'decidedDone']);
  });

  it('clarify: an unclear answer gets a follow-up question in the same session, even with session_strategy fresh', async () => {
    const unclear = 'Tried the greet change but hit an error, then another error; cannot tell if it failed.\nSTATUS: CONTINUE';
    const h = harness(
      [
        { answer: unclear, turns: 2 },
        { answer: 'Changed greet.js: added greet(name). Verified with node -e. Left: the README.\nSTATUS: CONTINUE', turns: 2 },
        { answer: 'Documented greet(name) in the README; the greet function is complete.\nSTATUS: DONE', turns: 2 },
      ],
      { agent: { local: { session_strategy: 'fresh' } } },
    );
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function to greet.js' });

    expect(result.status).toBe('done');
    expect(result.iterations.map((i) => i.decision)).toEqual(['clarify', 'proceed', 'done']);
    expect(result.iterations[0]!.decisionRule).toBe('unclear');
    expect(result.iterations[0]!.quality).toBeLessThan(0.7);
    expect(result.iterations[0]!.quality).toBeGreaterThanOrEqual(0.5);
    expect(h.trace.guards()).toEqual(['decidedClarify', 'decidedProceed', 'decidedDone']);
    const [first, followUp, third] = h.agent.requests;
    // The follow-up resumes the session of the unclear answer; after it, "fresh" starts a new session again.
    expect(followUp!.mode).toBe('resume');
    expect(followUp!.sessionId).toBe(result.iterations[0]!.sessionId);
    expect(followUp!.prompt).toContain('Follow-up question');
    expect(followUp!.prompt).toContain('state precisely what you changed');
    expect(followUp!.prompt).not.toContain('## Task');
    expect(first!.mode).toBe('create');
    expect(third!.mode).toBe('create');
    expect(third!.sessionId).toBeNull();
  });

  it('confidence takes part: the same good answer is accepted at min_confidence 0.5 and questioned at 0.95', async () => {
    const answer = { answer: 'Added greet(name) to greet.js and tested it.\nSTATUS: DONE', turns: 2 };
    const relaxed = harness([answer]);
    const strict = harness([answer, answer], { decision: { min_confidence: 0.95 }, task: { max_iterations: 1 } });
    const a = await runTask({ ...relaxed.options(), task: 'Add a greet(name) function to greet.js' });
    const b = await runTask({ ...strict.options(), task: 'Add a greet(name) function to greet.js' });
    expect(a.iterations[0]!.decision).toBe('done');
    expect(b.iterations[0]!.decision).toBe('clarify');
    expect(b.iterations[0]!.reason).toMatch(/confidence 0\.\d+ < min_confidence 0\.95/);
    expect(a.iterations[0]!.confidence).toBe(b.iterations[0]!.confidence);
  });

  it('escalate → awaitingHuman (saved) → a human answer, read back from disk by a fresh agent, reaches the next prompt → done', async () => {
    const question = 'Which database should I migrate?';
    const h = harness([question, question, question]);
    const escalated = await runTask({ ...h.options(), task: 'Migrate the database to the new schema' });

    expect(escalated.status).toBe('escalated');
    expect(escalated.iterations.map((i) => [i.decision, i.decisionRule])).toEqual([
      ['retry', 'validationFailed'],
      ['retry', 'validationFailed'],
      ['escalate', 'stuck'],
    ]);
    expect(escalated.question).toBe('the agent gave the same answer 3 times in a row');
    expect(h.trace.guards()).toEqual(['decidedRetry', 'decidedRetry', 'decidedEscalate']);
    expect(h.trace.states().at(-1)).toBe('awaitingHuman');
    expect(h.runFile(escalated.runId)).toMatchObject({ status: 'escalated', reason: 'the agent gave the same answer 3 times in a row' });
    expect(h.journal(escalated.runId).at(-1)).toMatchObject({ task: 'awaitingHuman' });

    // "After a restart": nothing shared with the first drive but the store on disk.
    const fresh = new ScriptedAgent([{ answer: 'Migrated the users table to the new schema as asked; the migration ran.\nSTATUS: DONE', turns: 3 }]);
    const after = harness(fresh);
    const done = await answerRun(escalated.runId, 'Use the users table in Postgres', { storeDir: h.store, agent: fresh, inspect: after.trace.inspect });

    expect(done.status).toBe('done');
    expect(fresh.requests).toHaveLength(1);
    expect(fresh.requests[0]!.prompt).toContain('A human reviewed the last iteration and answered: Use the users table in Postgres');
    expect(after.trace.steps.map((s) => [s.event, s.value])).toEqual([
      ['HUMAN_ANSWER', 'running'],
      ['xstate.done.actor.iteration', 'done'],
    ]);
    expect(h.records(escalated.runId).map((r) => r.index)).toEqual([1, 2, 3, 4]);
    expect(h.records(escalated.runId)[3]!.prompt).toContain('Use the users table in Postgres');
  });

  it('checkpoint: every N iterations the run persists and pauses for review; resume continues with the kept feedback', async () => {
    const h = harness(
      [
        { answer: 'Added greet(name) to greet.js.\nSTATUS: CONTINUE', turns: 2 },
        { answer: 'API Error: 529 overloaded', isError: true },
        { answer: 'Finished greet(name) and documented it; the greet function is complete.\nSTATUS: DONE', turns: 2 },
      ],
      { decision: { checkpoint_every: 2 } },
    );
    const paused = await runTask({ ...h.options(), task: 'Add a greet(name) function to greet.js' });

    expect(paused.status).toBe('paused');
    expect(paused.reason).toMatch(/^checkpoint every 2 iteration\(s\): paused for review after iteration 2 \(then: retry, validationFailed/);
    expect(h.trace.guards()).toEqual(['decidedProceed', 'decidedCheckpoint']);
    expect(h.trace.states().slice(-2)).toEqual(['checkingBudgets', 'paused']);
    const second = h.records(paused.runId)[1]!;
    expect(second).toMatchObject({ decision: 'checkpoint', decisionRule: 'checkpointDue' });
    expect(second.feedback).toContain('the CLI reported an error');

    const after = harness(h.agent);
    const done = await resumeRun(paused.runId, { storeDir: h.store, agent: h.agent, inspect: after.trace.inspect });
    expect(done.status).toBe('done');
    // A restored run is woken with RESUMED; in `paused` that means: go on.
    expect(after.trace.steps.map((s) => [s.event, s.value])).toEqual([
      ['RESUMED', 'running'],
      ['xstate.done.actor.iteration', 'done'],
    ]);
    // The retry's feedback survived the pause and reached iteration 3's prompt.
    expect(h.agent.requests[2]!.prompt).toContain('the CLI reported an error');
  });
});

describe('budgets end the run after persisting, with a clear status and reason', () => {
  const steps = (n: number, extra: Record<string, unknown> = {}) =>
    Array.from({ length: n }, (_, i) => ({ answer: `Finished step ${i + 1} of the greet work.\nSTATUS: CONTINUE`, turns: 2, costUsd: 0.01, ...extra }));

  it('max_cost_usd: sums total_cost_usd and stops once it is reached', async () => {
    const h = harness(steps(5), { budget: { max_cost_usd: 0.025 } });
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function' });

    expect(result.status).toBe('budget_exceeded');
    expect(result.reason).toBe('cost budget of $0.025 reached ($0.0300 spent in 3 iteration(s))');
    expect(h.trace.guards()).toEqual(['decidedProceed', 'decidedProceed', 'overCostBudget']);
    expect(h.trace.states().slice(-2)).toEqual(['checkingBudgets', 'budgetExceeded']);
    expect(h.records(result.runId).map((r) => r.costUsd)).toEqual([0.01, 0.01, 0.01]);
    expect(h.runFile(result.runId)).toMatchObject({ status: 'budget_exceeded', iterations: 3 });
    expect(h.journal(result.runId).at(-1)).toMatchObject({ task: 'budgetExceeded', snapshot: { status: 'done', output: { status: 'budget_exceeded' } } });
  });

  it('max_turns: sums num_turns', async () => {
    const h = harness(steps(5, { turns: 2 }), { budget: { max_turns: 5 } });
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function' });
    expect(result.status).toBe('budget_exceeded');
    expect(result.reason).toBe('turn budget of 5 reached (6 agent turns in 3 iteration(s))');
    expect(h.trace.guards().at(-1)).toBe('overTurnBudget');
    expect(h.records(result.runId)).toHaveLength(3);
  });

  it('max_iterations: the run ends as max_iterations, naming the limit', async () => {
    const h = harness(steps(5), { task: { max_iterations: 2 } });
    const result = await runTask({ ...h.options(), task: 'Add a greet(name) function' });
    expect(result.status).toBe('max_iterations');
    expect(result.reason).toBe('stopped after max_iterations (2) without the task being done');
    expect(h.trace.guards()).toEqual(['decidedProceed', 'reachedMaxIterations']);
  });

  it('a budget wins over the decision: an escalation that crosses the cost budget ends the run instead of waiting', async () => {
    const question = { answer: 'Which database should I migrate?', costUsd: 0.02 };
    const h = harness([question, question, question], { budget: { max_cost_usd: 0.05 } });
    const result = await runTask({ ...h.options(), task: 'Migrate the database' });
    expect(h.records(result.runId).at(-1)!.decision).toBe('escalate');
    expect(result.status).toBe('budget_exceeded');
    expect(h.trace.guards().at(-1)).toBe('overCostBudget');
  });

  it('max_wall_seconds: an iteration still running when the time is up is stopped (its agent call aborted) on the simulated clock', async () => {
    const clock = new SimulatedClock();
    clock.set(1_000_000);
    let aborted = false;
    const slowAgent: Agent = {
      name: 'slow',
      call: (request: AgentCallRequest) =>
        new Promise((_resolve, reject) => {
          request.signal?.addEventListener('abort', () => {
            aborted = true;
            reject(new Error('aborted'));
          });
          // The agent "works" for 45 simulated seconds; the budget is 30.
          setImmediate(() => clock.increment(45_000));
        }),
    };
    const h = harness(slowAgent, { budget: { max_wall_seconds: 30 } });
    const result = await runTask({ ...h.options({ clock }), task: 'Add a greet(name) function' });

    expect(result.status).toBe('budget_exceeded');
    expect(result.reason).toBe('time budget of 30s reached during iteration 1, which was stopped (0 iteration(s) finished)');
    expect(aborted).toBe(true);
    expect(h.trace.steps.at(-1)).toMatchObject({ value: 'budgetExceeded', guards: ['hasTimeBudget'] });
    expect(h.journal(result.runId).at(-1)).toMatchObject({ task: 'budgetExceeded' });
    expect(existsSync(join(h.store, 'runs', result.runId, 'iterations.jsonl'))).toBe(false);
  });

  it('max_wall_seconds counts only work: time between iterations is summed from each stretch in `running`', async () => {
    const clock = new SimulatedClock();
    clock.set(5_000_000);
    // Each call takes 4 simulated seconds; with 10 s of budget, the third call is cut at 10 s.
    const inner = new ScriptedAgent(steps(5));
    const agent: Agent = {
      name: 'timed',
      call: async (request) => {
        clock.increment(4_000);
        return inner.call(request);
      },
    };
    const h = harness(agent, { budget: { max_wall_seconds: 10 } });
    const result = await runTask({ ...h.options({ clock }), task: 'Add a greet(name) function' });
    expect(result.status).toBe('budget_exceeded');
    expect(result.reason).toBe('time budget of 10s reached during iteration 3, which was stopped (2 iteration(s) finished)');
    expect(h.records(result.runId)).toHaveLength(2);
    const last = h.journal(result.runId).at(-1);
    expect(last.snapshot.context.activeMs).toBe(10_000);
  });
});
