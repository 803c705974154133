import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
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

/** Every engine a test started, killed after it should the test fail first; and the agent processes seen. */
const started: { engines: ReturnType<typeof execa>[]; pids: number[] } = { engines: [], pids: [] };
afterEach(() => {
  for (const engine of started.engines.splice(0)) engine.kill('SIGKILL');
  for (const pid of started.pids.splice(0)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
});

async function killMidCall(engine: ReturnType<typeof execa>, log: string): Promise<void> {
  started.engines.push(engine);
  await until(() => hangingCall(log) !== undefined, 30_000, 'the agent call to hang with a child');
  const { pid: cli, childPid: grandchild } = hangingCall(log)!;
  started.pids.push(cli, grandchild!);
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

  it('obra run killed during a check: the check (its shell and what it started) goes too', async () => {
    const box = sandbox();
    const workdir = join(box.dir, 'work');
    mkdirSync(workdir);
    const marker = `obra-check-${process.pid}-${Date.now()}`;
    const env = { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(['Wrote the parser.\nSTATUS: DONE']) };
    const check = `node -e 'setInterval(() => {}, 1000)' ${marker}`;
    const run = execa('node', [CLI, 'run', '--task', 'Write the parser', '--workdir', workdir, '--agent-bin', FAKE_CLAUDE, '--check', check, '--db', join(box.dir, 'store')], { cwd: box.dir, env, reject: false });
    started.engines.push(run);
    const running = () => processesEndingWith(marker);
    await until(() => running().length > 0, 30_000, 'the check to run');
    const pids = running();
    started.pids.push(...pids);
    expect(pids.length).toBeGreaterThanOrEqual(1);
    run.kill('SIGKILL');
    expect((await run).signal).toBe('SIGKILL');
    await until(() => !pids.some(isAlive), 2000, `the check's processes ${pids.join(', ')} to die with obra run`);
  }, 60_000);
});

/** The live processes whose command line ends with `text` (the check's shell and node; not obra run nor the agent, whose arguments only hold it). */
function processesEndingWith(text: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
    .filter((name) => {
      try {
        return readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0$/, '').endsWith(text) && isAlive(Number(name));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The reaper of the Obra process `owner`: the node child whose argv carries its owner tag. */
function reaperOf(owner: number): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(`OBRA_AGENT_OWNER=${owner}-`)) return Number(name);
    } catch {
      // ended meanwhile
    }
  }
  return undefined;
}

describe('a call that outlived its obra work (the reaper was killed too, as a kill of everything would)', () => {
  it('is killed by the next obra work before it resumes the session, with a warning in its output and the run log', async () => {
    const box = sandbox();
    const log = join(box.dir, 'fake.log');
    // The first call hangs; the one the next worker makes answers.
    const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: JSON.stringify([{ hang: true }, 'Wrote the parser.\nSTATUS: DONE']), FAKE_CLAUDE_LOG: log };
    const repo = await gitRepo(join(box.dir, 'repo'));
    const storeDir = join(box.dir, 'store');
    const submitted = await obra(['submit', '--task', 'Write the parser', '--repo', repo, '--db', storeDir], { cwd: box.dir, env });
    expect(submitted.exitCode, submitted.stderr).toBe(0);
    const id = submitted.stdout.trim();

    const first = execa('node', [CLI, 'work', '--db', storeDir], { cwd: box.dir, env, reject: false });
    started.engines.push(first);
    await until(() => hangingCall(log) !== undefined, 30_000, 'the agent call to hang with a child');
    const { pid: cli, childPid: grandchild, argv } = hangingCall(log)!;
    const sessionId = argv[argv.indexOf('--session-id') + 1];
    const reaper = reaperOf(first.pid!);
    expect(reaper).toBeGreaterThan(0);
    process.kill(reaper!, 'SIGKILL');
    await until(() => !isAlive(reaper!), 2000, 'the reaper to die');
    first.kill('SIGKILL');
    await first;
    expect(isAlive(cli) && isAlive(grandchild!)).toBe(true); // nothing left to kill them on Obra's death

    try {
      const again = await obra(['work', '--db', storeDir, '--until-idle'], { cwd: box.dir, env });
      expect(again.exitCode, again.stderr).toBe(0);
      const warning = `session ${sessionId} still had a call running (process group ${cli}) from Obra process ${first.pid}, which is gone: killed it before this call`;
      expect(again.stderr).toContain(`[${id}] WARNING ${warning}`);
      expect(isAlive(cli) || isAlive(grandchild!)).toBe(false);
      const runLog = readFileSync(join(storeDir, 'runs', id, 'run.log'), 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as { event?: string; msg: string; pgid?: number });
      expect(runLog.filter((l) => l.event === 'earlier-call-stopped')).toMatchObject([{ msg: warning, pgid: cli }]);
      // The journal keeps it with the call that followed.
      expect(readFileSync(join(storeDir, 'runs', id, 'journal.jsonl'), 'utf8')).toContain(`"stoppedEarlierCall":{"pgid":${cli},"ownerPid":${first.pid}`);
    } finally {
      for (const pid of [cli, grandchild!]) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  }, 90_000);
});
