import { get } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { runTask } from '../../src/index.js';
import { CLI, obra, sandbox } from '../helpers/cli.js';
import { twoIterationRun } from '../inspect/helpers.js';

async function savedRun() {
  const run = twoIterationRun();
  const result = await runTask({ task: 'Add greet(name)', workdir: run.dir, config: run.config, storeDir: run.storeDir, agent: run.agent });
  return { ...run, runId: result.runId };
}

describe('obra view (CLI)', () => {
  it('serves the run page on 127.0.0.1 until Ctrl-C', async () => {
    const run = await savedRun();
    const child = execa('node', [CLI, 'view', run.runId, '--db', run.storeDir, '--port', '0'], { cwd: run.dir, reject: false, timeout: 30_000 });
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /Viewer: (http:\/\/127\.0\.0\.1:\d+\/runs\/\S+) /.exec(stderr);
        if (match) resolve(match[1]!);
      });
      void child.then(() => reject(new Error(`obra view ended early:\n${stderr}`)));
    });
    expect(url).toContain(`/runs/${run.runId}`);
    const page = await fetch(url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-machine="iteration"');
    expect(html).toContain('data-machine="task"');
    expect(html).toContain(run.runId);
    // Another host name (DNS rebinding) is refused.
    const foreign = await new Promise<number>((resolve, reject) => {
      get({ host: '127.0.0.1', port: new URL(url).port, path: '/', headers: { host: 'evil.example' } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(foreign).toBe(403);
    child.kill('SIGINT');
    const done = await child;
    expect(done.exitCode).toBe(0);
  });

  it('a taken port, an unknown run, a missing store: one line each, exit 2', async () => {
    const run = await savedRun();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const taken = await obra(['view', run.runId, '--db', run.storeDir, '--port', String(port)], { cwd: run.dir });
      expect(taken.exitCode).toBe(2);
      expect(taken.stderr).toBe(`obra: port ${port} is already in use, so the viewer cannot start on 127.0.0.1:${port} — pick a free one with --port <n>`);
    } finally {
      blocker.close();
    }
    const unknown = await obra(['view', 'nope', '--db', run.storeDir, '--port', '0'], { cwd: run.dir });
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toBe(`obra: no run "nope" in ${run.storeDir} — \`obra runs\` lists the runs there`);
    const box = sandbox();
    const missing = await obra(['view', '--port', '0'], { cwd: box.dir, env: box.env });
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toBe(`obra: no Obra store at ${join(box.dir, '.obra')} — run or submit a task first (\`obra run\`, \`obra submit\`), or point --db at the right folder`);
  });
});
