/**
 * Makes docs/board.png: queues seven tasks in a scratch store, drives them four at a time with scripted agents
 * (one ends done, one asks for a permission, one runs out of iterations and blocks the task after it, one is
 * still running, two wait in the queue), serves the store with the viewer and photographs the board in headless Chromium.
 * `npx tsx docs/board-screenshot.ts [--out file]`
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ScriptedAgent } from '../src/agents/scripted-agent.js';
import { configSchema } from '../src/config/schema.js';
import { submitTask, submitTasks, work } from '../src/index.js';
import { startViewerServer } from '../src/viewer/server.js';
import { findChromium } from '../test/viewer/browser.js';

const args = process.argv.slice(2);
const out = args.includes('--out') ? args[args.indexOf('--out') + 1]! : new URL('./board.png', import.meta.url).pathname;
let executablePath: string | null = null;
try {
  executablePath = findChromium();
} catch (error) {
  console.error((error as Error).message);
}
if (!executablePath) {
  console.error('no Chromium found: set CHROMIUM_PATH, or install one (apt-get install -y chromium)');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'obra-board-'));
const storeDir = join(dir, 'store');
const folder = (name: string) => {
  mkdirSync(join(dir, name));
  return join(dir, name);
};
const config = configSchema.parse({ task: { max_iterations: 2 } });
const [, asks, stuck, , running] = await submitTasks(
  [
    { task: 'Add input validation to the signup form, with tests', repo: folder('signup') },
    { task: 'Rotate the TLS certificates in deploy/', repo: folder('deploy') },
    { task: 'Make the flaky integration test deterministic', repo: folder('itest'), priority: 1 },
    { task: 'Document how the integration tests are run', repo: folder('docs'), after: '@3' },
    { task: 'Port the CLI parser to commander', repo: folder('cli') },
  ],
  { config, storeDir },
);
const agentOf = (runId: string) =>
  new ScriptedAgent(
    runId === asks
      ? [{ answer: 'I need to write /etc/ssl/deploy.pem to rotate it.\nSTATUS: CONTINUE', denials: [{ tool: 'Write', input: '/etc/ssl/deploy.pem', rule: 'Write(/etc/ssl/deploy.pem)' }] }]
      : runId === stuck
        ? ['Retried the test with a fixed seed; it still fails one run in five.\nSTATUS: CONTINUE']
        : runId === running
          ? ['Moved the flags to commander; the help text is next.\nSTATUS: CONTINUE', 'Done.\nSTATUS: DONE']
          : ['Validated email and password length; 6 tests added, all pass.\nSTATUS: DONE'],
    { latencyMs: runId === running ? 60_000 : 50 },
  );
const stop = new AbortController();
const working = work({ storeDir, config, concurrency: 4, agent: agentOf, signal: stop.signal });
// Two more wait in the queue: one for the running task to be done, one for a free worker.
await submitTask({ task: 'Upgrade the ORM to v6 and fix the deprecations', repo: folder('orm'), config, storeDir, after: running });
await submitTask({ task: 'Add a dark theme to the settings page', repo: folder('theme'), priority: -1, config, storeDir });

const server = await startViewerServer({ storeDir, port: 0 });
const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
try {
  // Once the first four have settled, with the fifth still in its agent call.
  await new Promise((r) => setTimeout(r, 1500));
  const page = await browser.newPage({ viewport: { width: 1500, height: 760 }, deviceScaleFactor: 1 });
  page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="true"]');
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.close();
  stop.abort();
  await working;
}
