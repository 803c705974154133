import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { isAlive, until, type FakeLogEntry } from '../agents/fake-env.js';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { gitRepo } from './helpers.js';

/**
 * SIGKILL of the local engine in the middle of an agent call: the call (fake-claude, hanging) and the child it
 * started must not outlive it. Before the reaper they ran on (a process group of their own) until killed by hand.
 */

function hangingCall(log: string): FakeLogEntry | undefined {
  if (!existsSync(log)) return undefined;
  return readFileSync(log, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as FakeLogEntry).find((c) => c.outcome === 'hang-child');
}

async function killMidCall(engine: ReturnType<typeof execa>, log: string): Promise<void> {
  await until(() => hangingCall(log) !== undefined, 30_000, 'the agent call to hang with a child');
  const { pid: cli, childPid: grandchild } = hangingCall(log)!;
  expect(isAlive(cli) && isAlive(grandchild!)).toBe(true);
  engine.kill('SIGKILL');
  expect((await engine).signal).toBe('SIGKILL');
  await until(() => !isAlive(cli) && !isAlive(grandchild!), 2000, `the agent (${cli}) and its child (${grandchild}) to die with the engine`);
}

describe('a local engine SIGKILLed mid-call leaves no agent process behind', () => {
  it('obra work', async () => {
    const box = sandbox();
    const log = join(box.dir, 'fake.log');
    const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_FAIL: 'hang', FAKE_CLAUDE_LOG: log };
    const repo = await gitRepo(join(box.dir, 'repo'));
    const storeDir = join(box.dir, 'store');
    const submitted = await obra(['submit', '--task', 'Write the parser', '--repo', repo, '--db', storeDir], { cwd: box.dir, env });
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    await killMidCall(execa('node', [CLI, 'work', '--db', storeDir], { cwd: box.dir, env, reject: false }), log);
  }, 60_000);

  it('obra run', async () => {
    const box = sandbox();
    const log = join(box.dir, 'fake.log');
    const workdir = join(box.dir, 'work');
    mkdirSync(workdir);
    const env = { ...box.env, FAKE_CLAUDE_FAIL: 'hang', FAKE_CLAUDE_LOG: log };
    const run = execa('node', [CLI, 'run', '--task', 'Write the parser', '--workdir', workdir, '--agent-bin', FAKE_CLAUDE, '--db', join(box.dir, 'store')], { cwd: box.dir, env, reject: false });
    await killMidCall(run, log);
  }, 60_000);
});
