import { randomUUID } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { FAKE_CLAUDE, fakeWorld, isAlive, until } from './fake-env.js';

const AGENT_PROCESS = join(ROOT, 'dist/src/agents/agent-process.js');
const REAPER = join(ROOT, 'dist/src/agents/reaper.js');

/**
 * A plain node process standing in for `obra work` / `obra worker`: it starts `agents` agent processes through
 * spawnAgentProcess (one after another, `gapMs` apart), prints `{ agent, reaper }` for each, and lives on until
 * it is killed.
 */
function parent(world: ReturnType<typeof fakeWorld>, command: string, options: { agents?: number; killReaperBetween?: boolean } = {}) {
  const args = ['-p', '--output-format', 'stream-json', '--verbose', '--session-id'];
  const code = `
    import { spawnAgentProcess } from ${JSON.stringify(AGENT_PROCESS)};
    import { processReaper } from ${JSON.stringify(REAPER)};
    import { randomUUID } from 'node:crypto';
    for (let i = 0; i < ${options.agents ?? 1}; i++) {
      if (i > 0 && ${Boolean(options.killReaperBetween)}) {
        const old = processReaper.pid;
        process.kill(old, 'SIGKILL');
        while (processReaper.pid === old) await new Promise((r) => setTimeout(r, 5));
      }
      const agent = spawnAgentProcess(${JSON.stringify(command)}, [...${JSON.stringify(args)}, randomUUID()], { cwd: ${JSON.stringify(world.workdir)}, input: 'Hang', env: ${JSON.stringify(world.env({ FAKE_CLAUDE_FAIL: 'hang' }))}, reject: false });
      console.log(JSON.stringify({ agent: agent.pid, reaper: processReaper.pid }));
    }
    setInterval(() => {}, 1000);`;
  const child = execa('node', ['--input-type=module', '-e', code], { reject: false, buffer: true, lines: true });
  parents.push(child);
  return child;
}

/** Every parent a test started: killed after it (its reaper then kills its agents), should the test fail first. */
const parents: ReturnType<typeof execa>[] = [];
afterEach(() => {
  for (const child of parents.splice(0)) child.kill('SIGKILL');
});

/** The `{ agent, reaper }` lines the parent printed so far. */
async function printed(child: ReturnType<typeof parent>, count: number): Promise<{ agent: number; reaper: number }[]> {
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await until(() => out.split('\n').filter(Boolean).length >= count, 15_000, `the parent to start ${count} agent(s)`);
  return out.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { agent: number; reaper: number });
}

/** The pids of the hanging CLIs and of the child each started (fake-claude logs them once it hangs). */
async function hangingTree(world: ReturnType<typeof fakeWorld>, count: number): Promise<number[]> {
  await until(() => world.calls().filter((c) => c.outcome === 'hang-child').length >= count, 15_000, 'the agents to hang with a child each');
  return world.calls().flatMap((c) => (c.outcome === 'hang-child' ? [c.pid, c.childPid!] : []));
}

describe('an agent process dies with the process that started it', () => {
  it('SIGKILL of the parent mid-call: the CLI and the child it started are gone within two seconds, and so is the reaper', async () => {
    const world = fakeWorld('reaper');
    const obra = parent(world, FAKE_CLAUDE);
    const { agent, reaper } = (await printed(obra, 1))[0]!;
    const tree = await hangingTree(world, 1);
    expect(tree[0]).toBe(agent);
    expect(tree.every(isAlive) && isAlive(reaper)).toBe(true);

    obra.kill('SIGKILL');
    expect((await obra).signal).toBe('SIGKILL');
    await until(() => !tree.some(isAlive), 2000, `the orphaned agent processes ${tree.join(', ')} to be killed`);
    await until(() => !isAlive(reaper), 2000, 'the reaper to exit');
  });

  it('a process the agent moved out of its process group (setsid) goes too: it carries the owner tag', async () => {
    const world = fakeWorld('reaper');
    // A CLI whose tool starts a daemon in a session of its own, out of reach of a process-group kill.
    const escaper = join(world.root, 'escaping-claude');
    writeFileSync(
      escaper,
      `#!/usr/bin/env node
const { spawn } = require('node:child_process');
const daemon = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' });
require('node:fs').appendFileSync(${JSON.stringify(join(world.root, 'fake-claude.log'))}, JSON.stringify({ pid: process.pid, outcome: 'hang-child', childPid: daemon.pid, argv: [] }) + '\\n');
setInterval(() => {}, 1000);
`,
    );
    chmodSync(escaper, 0o755);
    const obra = parent(world, escaper);
    await printed(obra, 1);
    const [cli, daemon] = await hangingTree(world, 1);
    expect(Number((await execa('ps', ['-o', 'pgid=', '-p', String(daemon)])).stdout.trim())).toBe(daemon); // a group of its own

    obra.kill('SIGKILL');
    await obra;
    await until(() => !isAlive(cli!) && !isAlive(daemon!), 2000, 'the CLI and the daemon that left its group to be killed');
  });

  it('a reaper that died is replaced at the next call, and the new one also guards the calls started before', async () => {
    const world = fakeWorld('reaper');
    const obra = parent(world, FAKE_CLAUDE, { agents: 2, killReaperBetween: true });
    const lines = await printed(obra, 2);
    expect(lines[1]!.reaper).not.toBe(lines[0]!.reaper);
    const tree = await hangingTree(world, 2);
    expect(tree).toHaveLength(4);

    obra.kill('SIGKILL');
    await obra;
    await until(() => !tree.some(isAlive), 2000, `the agent processes of both calls (${tree.join(', ')}) to be killed`);
  });

  it('a parent whose call ended exits by itself (the reaper does not keep it alive), and its reaper exits with it', async () => {
    const world = fakeWorld('reaper');
    const code = `
      import { spawnAgentProcess } from ${JSON.stringify(AGENT_PROCESS)};
      import { processReaper } from ${JSON.stringify(REAPER)};
      const sessionId = ${JSON.stringify(randomUUID())};
      const r = await spawnAgentProcess(${JSON.stringify(FAKE_CLAUDE)}, ['-p', '--output-format', 'json', '--session-id', sessionId], { cwd: ${JSON.stringify(world.workdir)}, input: 'Hi', env: ${JSON.stringify(world.env())}, reject: false });
      // The reaper must not keep its parent alive once the work is done: this process exits by itself.
      console.log(JSON.stringify({ exitCode: r.exitCode, reaper: processReaper.pid }));`;
    const run = await execa('node', ['--input-type=module', '-e', code], { reject: false, timeout: 20_000 });
    expect(run.exitCode, run.stderr).toBe(0);
    const { exitCode, reaper } = JSON.parse(run.stdout) as { exitCode: number; reaper: number };
    expect(exitCode).toBe(0);
    await until(() => !isAlive(reaper), 2000, 'the reaper to exit with its parent');
  });

  it('no reaper is started by loading Obra nor by an in-process agent: only at the first agent process', async () => {
    const world = fakeWorld('reaper');
    const code = `
      import { ScriptedAgent } from ${JSON.stringify(join(ROOT, 'dist/src/index.js'))};
      import { ClaudeCodeAgent } from ${JSON.stringify(join(ROOT, 'dist/src/agents/claude-code-agent.js'))};
      import { processReaper } from ${JSON.stringify(REAPER)};
      const seen = [processReaper.pid];
      await new ScriptedAgent(['Done.\\nSTATUS: DONE']).call({ runId: 'r', index: 1, attempt: 1, prompt: 'Hi', sessionId: null, mode: 'create', workdir: ${JSON.stringify(world.workdir)} });
      seen.push(processReaper.pid);
      await new ClaudeCodeAgent({ command: ${JSON.stringify(FAKE_CLAUDE)}, timeoutMs: 20000, env: ${JSON.stringify(world.env())} }).call({ runId: 'r', index: 1, attempt: 1, prompt: 'Hi', sessionId: null, mode: 'create', workdir: ${JSON.stringify(world.workdir)} });
      seen.push(typeof processReaper.pid);
      console.log(JSON.stringify(seen));`;
    const run = await execa('node', ['--input-type=module', '-e', code], { reject: false, timeout: 20_000, env: { OBRA_SESSION_LOCK_DIR: join(world.root, 'locks') } });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([null, null, 'number']);
  });
});
