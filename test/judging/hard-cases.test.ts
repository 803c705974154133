import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { answerRun, runTask } from '../../src/index.js';
import { config as fakeConfig, fakeWorld } from '../agents/fake-env.js';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { harness } from './helpers.js';

/**
 * The agent's hard cases the DecisionEngine and the task machine must name rightly: an answer without a status
 * line, a run whose checks pass and whose answer says it is finished, an agent that crashes or meets API errors
 * on every call, and an escalation on the last allowed iteration. Plus bad input refused before anything runs.
 */

const TASK = 'Add a greet(name) function to greet.js';

describe('an answer without a STATUS line', () => {
  it('is its own verdict: one plain follow-up in the same session asks for the status line, then the answer is judged', async () => {
    const h = harness([
      { answer: 'Added greet(name) to greet.js and tested it by hand.', turns: 2 },
      { answer: 'I added greet(name) to greet.js and checked it prints "Hello, Ada".\nSTATUS: DONE', turns: 1 },
    ]);
    const result = await runTask({ ...h.options(), task: TASK });
    expect(result.status).toBe('done');
    expect(result.iterations.map((i) => [i.decision, i.decisionRule])).toEqual([
      ['clarify', 'statusMissing'],
      ['done', 'acceptedAsDone'],
    ]);
    expect(result.iterations[0]!.reason).toBe('the answer has no STATUS line, so it does not say whether the task is finished');
    const followUp = h.agent.requests[1]!;
    expect(followUp.mode).toBe('resume');
    expect(followUp.sessionId).toBe(result.iterations[0]!.sessionId);
    expect(followUp.prompt).toContain('## Follow-up question');
    expect(followUp.prompt).toContain('Your last answer did not end with a status line');
    expect(followUp.prompt).not.toContain('## Task');
  });

  it('asked once and still none: read as CONTINUE, and the reason says so', async () => {
    const h = harness([
      { answer: 'Added greet(name) to greet.js and tested it by hand.', turns: 2 },
      { answer: 'Added greet(name) and its documentation to greet.js, then tested both.', turns: 2 },
    ], { task: { max_iterations: 2 } });
    const result = await runTask({ ...h.options(), task: TASK });
    expect(result.iterations.map((i) => i.decisionRule)).toEqual(['statusMissing', 'progressing']);
    expect(result.iterations[1]!.reason).toMatch(/\(no STATUS line again: read as CONTINUE\)$/);
  });

  it('says in words that the task is finished and every check passes: done at once (finishedWithoutStatus)', async () => {
    const h = harness([{ answer: 'Added greet(name) to greet.js and tested it; the task is complete.', turns: 2 }]);
    writeFileSync(join(h.workdir, 'greet.js'), 'export const greet = (name) => `Hello, ${name}`;\n');
    const result = await runTask({ ...h.options(), task: TASK, checks: ['test -f greet.js'] });
    expect(result.status).toBe('done');
    expect(result.iterations.map((i) => [i.decision, i.decisionRule])).toEqual([['done', 'finishedWithoutStatus']]);
  });

  it('the same "done" answer three times, failing twice and then passing its check, ends done, not stuck', async () => {
    const h = harness(() => 'unused');
    const agent = new ScriptedAgent((_request, call) => {
      if (call === 2) writeFileSync(join(h.workdir, 'greet.js'), 'export const greet = (name) => `Hello, ${name}`;\n');
      return { answer: 'Added greet(name) to greet.js and tested it.\nSTATUS: DONE', turns: 2 };
    });
    const result = await runTask({ ...h.options({ agent }), task: TASK, checks: ['test -f greet.js'] });
    expect(result.iterations.map((i) => i.decisionRule)).toEqual(['checksFailing', 'checksFailing', 'acceptedAsDone']);
    expect(result.status).toBe('done');
  });
});

describe('reasons that say what happened', () => {
  const failing = async (fail: string) => {
    const w = fakeWorld('reasons');
    const agent = w.agent({ FAKE_CLAUDE_FAIL: fail });
    return runTask({ storeDir: join(w.root, 'store'), workdir: w.workdir, agent, config: fakeConfig({ decision: { max_retries_per_goal: 5 } }), task: TASK });
  };

  it('an agent that crashes on every call: "the agent crashed 3 times in a row"', async () => {
    const result = await failing('crash');
    expect(result.status).toBe('escalated');
    expect(result.question).toMatch(/^the agent crashed 3 times in a row \(last: .*SIGKILL/);
  });

  it('an API error on every call: "API error 500 on 3 calls in a row"', async () => {
    const result = await failing('api-error');
    expect(result.status).toBe('escalated');
    expect(result.question).toMatch(/^API error 500 on 3 calls in a row \(last: API Error: 500 Internal server error/);
  });

  it('nothing on stdout every time: "the agent printed no usable result 3 times in a row"', async () => {
    const result = await failing('garbage');
    expect(result.question).toMatch(/^the agent printed no usable result 3 times in a row/);
  });
});

describe('the last word is the decision', () => {
  it('an escalation on the last allowed iteration says escalated with its question, and the answer buys one more iteration', async () => {
    const denial = { tool: 'Write', input: '/etc/motd', rule: 'Write' };
    const h = harness([{ answer: 'I need to write /etc/motd to finish.\nSTATUS: CONTINUE', denials: [denial] }], { task: { max_iterations: 1 } });
    const result = await runTask({ ...h.options(), task: TASK });
    expect(result.status).toBe('escalated');
    expect(result.question).toMatch(/^the agent was refused 1 tool use it asked for: Write \/etc\/motd — allow it with `obra answer \S+ --allow Write`/);
    expect(h.trace.guards().at(-1)).toBe('decidedEscalate');

    const fresh = new ScriptedAgent(['Wrote /etc/motd; the task is finished.\nSTATUS: DONE']);
    const done = await answerRun(result.runId, '', { storeDir: h.store, agent: fresh, allow: ['Write'] });
    expect(done.status).toBe('done');
    expect(fresh.requests[0]!.allowedTools).toContain('Write');
    expect(done.iterations.map((i) => i.index)).toEqual([1, 2]);
  });
});

describe('bad input is refused before anything is written (exit 2)', () => {
  it('a --workdir that does not exist', async () => {
    const box = sandbox();
    const run = await obra(['run', '--task', 'x', '--workdir', join(box.dir, 'nope'), '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env: box.env });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toBe(`obra: the working directory ${join(box.dir, 'nope')} does not exist — create it, or pass an existing folder with --workdir`);
    expect(existsSync(join(box.dir, '.obra'))).toBe(false);
  });

  it('a YAML config whose aliases expand without bound (an alias bomb)', async () => {
    const box = sandbox();
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (const [name, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e'], ['g', 'f']]) lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    writeFileSync(join(box.dir, 'obra.yaml'), `${lines.join('\n')}\n`);
    const run = await obra(['run', '--task', 'x', '--agent-bin', FAKE_CLAUDE], { cwd: box.dir, env: box.env });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toMatch(/^obra: \S+obra\.yaml: cannot read the config: Excessive alias count indicates a resource exhaustion attack/);
    expect(existsSync(join(box.dir, '.obra'))).toBe(false);
  });
});
