import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

it("a Node script can import { runTask } from 'obra', pass its own agent, and get the run result", async () => {
  const store = mkdtempSync(join(tmpdir(), 'obra-lib-'));
  const run = await execa('node', [join(ROOT, 'examples/library.mjs'), store], { cwd: ROOT, reject: false });
  expect(run.exitCode, run.stderr).toBe(0);
  expect(JSON.parse(run.stdout)).toEqual({
    status: 'done',
    iterations: [
      { index: 1, decision: 'proceed', states: 7 },
      { index: 2, decision: 'done', states: 7 },
    ],
  });
  expect(run.stderr).toBe('iteration 1: proceed\niteration 2: done');
  const [runId, ...others] = readdirSync(join(store, 'runs'));
  expect(others).toEqual([]);
  expect(JSON.parse(readFileSync(join(store, 'runs', runId!, 'run.json'), 'utf8')).status).toBe('done');
});
