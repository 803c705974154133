import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ClaudeCodeAgent } from '../../src/agents/claude-code-agent.js';
import { claudeOptionsFromConfig, runTask, type EngineEvent } from '../../src/index.js';
import { CLI, sandbox } from '../helpers/cli.js';
import { config, FAKE_CLAUDE, fakeWorld, isAlive } from './fake-env.js';

/**
 * Calls that hang with no output (anthropics/claude-code #75613, #79610): stream-json prints a line for every step
 * of a working agent, so a call silent for `agent.local.idle_timeout` is killed (its whole process group) and
 * re-issued on the same session, at most `idle_retries` times. The CLI's own API retries are activity, and show.
 */

function world(replies: unknown[], local: Record<string, unknown>) {
  const w = fakeWorld('watchdog');
  const cfg = config({ agent: { local: { idle_retries: 2, ...local } } });
  const agent = w.agent({ FAKE_CLAUDE_REPLIES: JSON.stringify(replies) }, { idleTimeoutMs: cfg.agent.local.idle_timeout * 1000 });
  const events: EngineEvent[] = [];
  const options = { storeDir: `${w.root}/store`, workdir: w.workdir, agent, config: cfg, onEvent: (e: EngineEvent) => events.push(e) };
  return { ...w, options, events };
}

describe('the watchdog for silent calls', () => {
  it('a call silent after system/init is killed after idle_timeout and re-issued on the same session', async () => {
    const w = world([{ hang: true }, 'Added greet(name) and tested it.\nSTATUS: DONE'], { idle_timeout: 1.5 });
    const started = Date.now();
    const result = await runTask({ ...w.options, task: 'Add a greet(name) function' });
    expect(result.status).toBe('done');
    // Killed after the idle time, not after the 900 s call timeout.
    expect(Date.now() - started).toBeLessThan(20_000);
    const [record] = result.iterations;
    expect(record!.attempts).toBe(2);
    expect(record!.states).toEqual(['building', 'prompting', 'awaitingAgent', 'validating', 'scoring', 'deciding', 'persisting']);
    // The same session: the silent call had created it, so the re-issued call resumes it.
    const flags = w.sessionFlags();
    expect(flags).toEqual([flags[0], flags[0]!.replace('create', 'resume')]);
    expect(flags[0]).toMatch(/^create /);
    // The silent call's process group is gone, the child it started included.
    const child = w.calls().find((c) => c.outcome === 'hang-child')!;
    expect(isAlive(child.childPid!)).toBe(false);
    expect(isAlive(child.pid)).toBe(false);
    // Recorded: the note says what happened, the journal has the stalled call's outcome.
    const done = w.events.find((e): e is Extract<EngineEvent, { type: 'iteration-done' }> => e.type === 'iteration-done')!.record;
    expect(done.sessionNotes).toEqual([expect.stringMatching(/^the agent printed nothing for [12]s and was killed \(agent\.local\.idle_timeout\): re-issued on session [0-9a-f-]{36} \(1\/2\)$/)]);
  });

  it('a stream that stops mid-answer is silent too: killed and re-issued', async () => {
    const w = world([{ stall: true }, 'Finished the greet(name) function after the stall.\nSTATUS: DONE'], { idle_timeout: 1.5 });
    const result = await runTask({ ...w.options, task: 'Add a greet(name) function' });
    expect(result.status).toBe('done');
    expect(result.iterations[0]!.attempts).toBe(2);
    expect(w.calls().map((c) => c.outcome)).toEqual(['stall', 'answer']);
  });

  it('silent idle_retries + 1 times in a row: the iteration fails with the reason', async () => {
    const w = world([{ hang: true }], { idle_timeout: 1.5, idle_retries: 1 });
    const result = await runTask({ ...w.options, task: 'Add a greet(name) function' });
    expect(result.status).toBe('failed');
    expect(result.reason).toMatch(/^agent call failed|^the agent printed nothing/);
    expect(result.reason).toMatch(/the agent printed nothing for [12]s and was killed \(agent\.local\.idle_timeout\); that happened on 2 calls in a row \(re-issued 1 time, agent\.local\.idle_retries\)/);
    expect(w.calls().filter((c) => c.outcome === 'hang')).toHaveLength(2);
  });

  it("the CLI's own API retries are activity (not silence), and each shows as a warning", async () => {
    const w = world([{ result: 'Worked through the overload and finished.\nSTATUS: DONE', api_retries: { count: 4, status: 529, delay_ms: 300 } }], { idle_timeout: 0.8 });
    const result = await runTask({ ...w.options, task: 'Add a greet(name) function' });
    expect(result.status).toBe('done');
    expect(result.iterations[0]!.attempts).toBe(1);
    const retries = w.events.filter((e) => e.type === 'agent-progress' && e.progress.kind === 'apiRetry').map((e) => (e as { progress: { attempt: number } }).progress.attempt);
    expect(retries).toEqual([1, 2, 3, 4]);
  });

  it('agent.local.api_timeout is passed to the CLI as API_TIMEOUT_MS', async () => {
    const w = fakeWorld('api-timeout');
    const cfg = config({ agent: { local: { api_timeout: 2.5 } } });
    const agent = new ClaudeCodeAgent({ ...claudeOptionsFromConfig(cfg), command: FAKE_CLAUDE, env: w.env(), locks: w.locks });
    const result = await runTask({ storeDir: `${w.root}/store`, workdir: w.workdir, agent, config: cfg, task: 'Say hello' });
    expect(result.status).toBe('done');
    expect(w.calls()[0]).toMatchObject({ apiTimeoutMs: 2500 });
  });

  it('agent.local.idle_timeout in the config file reaches the agent: `obra run` kills a silent call as stalled', async () => {
    const box = sandbox();
    const configFile = join(box.dir, 'obra.yaml');
    // The call timeout is long: only the idle timeout taken from the config can end the silent call in time. (Not
    // shorter: the watchdog counts from the spawn, and a loaded machine can take a second to start the re-issued call.)
    writeFileSync(configFile, 'agent:\n  local:\n    idle_timeout: 2\n    timeout: 600\n');
    const replies = [{ hang: true }, 'Added greet(name) and tested it.\nSTATUS: DONE'];
    const env = { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), FAKE_CLAUDE_LOG: join(box.dir, 'fake.log') };
    const run = await execa('node', [CLI, 'run', '--task', 'Add a greet(name) function', '--json', '--agent-bin', FAKE_CLAUDE, '--config', configFile], {
      cwd: box.dir,
      env,
      reject: false,
      timeout: 20_000,
    });
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.status).toBe('done');
    expect(result.iterations[0].attempts).toBe(2);
    expect(run.stderr).toMatch(/WARNING the agent printed nothing for 2s and was killed \(agent\.local\.idle_timeout\): re-issued on session [0-9a-f-]{36} \(1\/2\)/);
  });
});
