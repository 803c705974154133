import { existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { CLI, FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { listen, valuesOf } from './helpers.js';

describe('obra run --inspect', () => {
  it('serves the run to a WebSocket client: --inspect-wait starts the run once the client is connected', async () => {
    const box = sandbox();
    const replies = ['Wrote the module.\nSTATUS: CONTINUE', { busy: true }, 'Wrote its tests; they pass.\nSTATUS: DONE'];
    const child = execa('node', [CLI, 'run', '--task', 'Write a module', '--agent-bin', FAKE_CLAUDE, '--inspect-wait', '--port', '0', '--json'], {
      cwd: box.dir,
      env: { ...box.env, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), OBRA_AGENT__LOCAL__RETRY_INITIAL_DELAY: '0.05' },
      reject: false,
      timeout: 60_000,
    });
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /Inspector: http:\/\/(127\.0\.0\.1:\d+)\/[^\n]*\nWaiting for the inspector page to connect/.exec(stderr);
        if (match) resolve(`ws://${match[1]}`);
      });
      void child.then(() => reject(new Error(`the CLI ended before printing the inspector URL:\n${stderr}`)));
    });
    const client = listen(url);
    await client.opened;
    const run = await child;
    await client.closed;
    expect(run.exitCode, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { iterations: { states: string[] }[] };

    const actors = client.messages.filter((m) => m.type === '@xstate.actor');
    const task = actors.find((a) => a.name === 'task')!;
    const iterations = actors.filter((a) => a.name === 'iteration');
    expect(iterations).toHaveLength(2);
    // The client connected before the run started, so it saw every state of every iteration live.
    expect(iterations.map((a) => valuesOf(client.messages, a.sessionId))).toEqual(result.iterations.map((i) => [...i.states, 'complete']));
    expect(valuesOf(client.messages, task.sessionId)).toEqual(['running', 'done']);
  });

  it('a taken port: one line naming --port, exit 2, nothing run', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const port = (blocker.address() as { port: number }).port;
    const box = sandbox();
    try {
      const run = await obra(['run', '--task', 'Write a module', '--agent-bin', FAKE_CLAUDE, '--inspect', '--port', String(port)], { cwd: box.dir, env: box.env });
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toBe(`obra: port ${port} is already in use, so the inspector cannot start on 127.0.0.1:${port} — pick a free one with --port <n>`);
      const runs = join(box.dir, '.obra', 'runs');
      expect(existsSync(runs) ? readdirSync(runs) : []).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  it('rejects a port that is not a number', async () => {
    const box = sandbox();
    const run = await obra(['run', '--task', 'x', '--inspect', '--port', 'eighty'], { cwd: box.dir, env: box.env });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toBe('obra: --port: "eighty" is not a port number from 0 to 65535 (0 picks a free one)');
  });
});
