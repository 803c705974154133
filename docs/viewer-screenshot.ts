/**
 * Makes docs/viewer.png: runs a small task in process (a scripted agent whose session is busy once, so the
 * run backs off), serves it with the viewer and photographs the page in headless Chromium at a step where
 * the iteration waits out its backoff. `npx tsx docs/viewer-screenshot.ts [--step N] [--out file]`
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { ScriptedAgent } from '../src/agents/scripted-agent.js';
import { configSchema } from '../src/config/schema.js';
import { runTask } from '../src/index.js';
import { RunStore } from '../src/store/run-store.js';
import { viewerRun } from '../src/viewer/run-data.js';
import { startViewerServer } from '../src/viewer/server.js';
import { findChromium } from '../test/viewer/browser.js';

const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

// The same discovery as the viewer tests (CHROMIUM_PATH, PATH, /usr/bin/chromium), before any work is done.
function chromiumOrExit(): string {
  try {
    const path = findChromium();
    if (path) return path;
    console.error('no Chromium found: set CHROMIUM_PATH, or install one (apt-get install -y chromium)');
  } catch (error) {
    console.error((error as Error).message);
  }
  process.exit(1);
}
const executablePath = chromiumOrExit();

const dir = mkdtempSync(join(tmpdir(), 'obra-screenshot-'));
const storeDir = join(dir, 'store');
const busy = { outcome: { kind: 'sessionBusy' as const, message: 'Error: Session ID 5b0c… is already in use.' } };
const result = await runTask({
  task: 'Add a greet(name) function to greet.js, document it in README.md and cover it with a test',
  workdir: dir,
  storeDir,
  config: configSchema.parse({ agent: { local: { retry_initial_delay: 0.4 } } }),
  agent: new ScriptedAgent(
    [
      'Created greet.js exporting greet(name), which returns "Hello, <name>!".\nAdded greet.test.js with two cases (a name, an empty name).\nNext: document it in README.md.\nSTATUS: CONTINUE',
      busy,
      busy,
      'Documented greet(name) in README.md with a usage example, and ran the tests: 2 passed.\nThe example in the README matches the code.\nSTATUS: DONE',
    ],
    { latencyMs: 120 },
  ),
});
// The step where iteration 2 waits out its second backoff (unless --step says otherwise).
const handle = RunStore.open(storeDir).openRun(result.runId);
const steps = viewerRun(handle, result.status).steps;
handle.close();
const waiting = steps.findIndex((s) => s.iteration?.state === 'retryingSessionLock' && s.iteration.retryDelaysMs.length === 2);
const server = await startViewerServer({ storeDir, port: 0 });
// A fresh profile in the scratch folder (Playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
  executablePath,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1600, height: 1040 },
  deviceScaleFactor: 1,
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
  await page.goto(`${server.runUrl(result.runId)}#step=${option('--step') ?? String(waiting + 1)}`);
  await page.waitForSelector('body[data-ready="true"]');
  const out = option('--out') ?? new URL('./viewer.png', import.meta.url).pathname;
  await page.screenshot({ path: out, fullPage: false });
  console.log(`wrote ${out} (run ${result.runId}, ${result.status})`);
} finally {
  await browser.close();
  await server.close();
}
