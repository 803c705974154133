import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { runTask } from '../../src/index.js';
import { CLI } from '../helpers/cli.js';
import { listen, twoIterationRun, valuesOf } from './helpers.js';

describe('obra replay <runId> --inspect', () => {
  it('waits for a page, then feeds it the saved run at --speed and exits', async () => {
    const run = twoIterationRun();
    const result = await runTask({ task: 'Add greet(name)', workdir: run.dir, config: run.config, storeDir: run.storeDir, agent: run.agent });
    const child = execa('node', [CLI, 'replay', result.runId, '--inspect', '--port', '0', '--speed', '50', '--db', run.storeDir], { cwd: run.dir, reject: false, timeout: 30_000 });
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /Inspector: http:\/\/(127\.0\.0\.1:\d+)\/[^\n]*\nWaiting for the inspector page/.exec(stderr);
        if (match) resolve(`ws://${match[1]}`);
      });
      void child.then(() => reject(new Error(`obra replay ended before waiting for a page:\n${stderr}`)));
    });
    const page = listen(url);
    await page.opened;
    const done = await child;
    await page.closed;
    expect(done.exitCode, done.stderr).toBe(0);
    expect(done.stderr).toMatch(/Replayed (\d+) of \1 transitions of run /);
    const iterations = page.messages.filter((m) => m.type === '@xstate.actor' && m.name === 'iteration');
    expect(iterations.map((a) => valuesOf(page.messages, a.sessionId))).toEqual(result.iterations.map((i) => [...i.states, 'complete']));
  });
});
