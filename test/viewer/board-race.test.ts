import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { work } from '../../src/index.js';
import { submitBatch } from '../../src/queue/submit.js';
import { startViewerServer, type ViewerServer } from '../../src/viewer/server.js';
import { agentsPerRun, config, gitRepo, scratch } from '../queue/helpers.js';
import { chromiumOrSkip, openChromium } from './browser.js';

/** The board shows a race's attempts side by side in ranking order, each card its place, and the sums per agent. */

const found = chromiumOrSkip('test/viewer/board-race.test.ts');
const s = scratch('obra-board-race-');
const cfg = config({ task: { max_iterations: 1 } });
let raceId = '';
let runIds: string[] = [];
let server: ViewerServer;
let browser: { context: BrowserContext; close: () => Promise<void> };

beforeAll(async () => {
  if (!found.path) return;
  const repo = await gitRepo(join(s.root, 'repo'));
  const queued = await submitBatch([{ task: 'Race it', repo, attempts: 3 }], { config: cfg, storeDir: s.storeDir });
  raceId = queued.races[0]!.raceId;
  runIds = queued.runIds;
  // Attempt 1 passes expensively, 2 cheaply, 3 never finishes (max_iterations).
  const agents = agentsPerRun((runId) =>
    runId === runIds[0] ? { answer: 'All done.\nSTATUS: DONE', costUsd: 0.05 } : runId === runIds[1] ? { answer: 'All done.\nSTATUS: DONE', costUsd: 0.01 } : 'Part of it.\nSTATUS: CONTINUE',
  );
  await work({ storeDir: s.storeDir, config: cfg, concurrency: 3, untilIdle: true, agent: agents.agentOf });
  server = await startViewerServer({ storeDir: s.storeDir, port: 0 });
  browser = await openChromium(found.path);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe.skipIf(!found.path)('a race on the board', () => {
  it('shows the attempts side by side, best first, the winner marked, and each card its rank', async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="true"]');
    const race = page.locator(`.race[data-race="${raceId}"]`);
    expect(await race.locator('h2').textContent()).toBe(`Race ${raceId} — winner ${runIds[1]} (claude)`);
    expect(await race.locator('.attempt').evaluateAll((cards) => cards.map((c) => [c.getAttribute('data-run'), c.getAttribute('data-rank'), c.classList.contains('winner')]))).toEqual([
      [runIds[1], '1', true],
      [runIds[0], '2', false],
      [runIds[2], '3', false],
    ]);
    expect(await race.locator(`[data-run="${runIds[0]}"] .why`).textContent()).toBe('behind attempt 2 (claude): cheaper ($0.0100 against $0.0500)');
    expect(await page.textContent(`.card-link[data-run="${runIds[1]}"] .race-mark`)).toBe('race 2/3 · rank 1 · winner');
    expect(await page.textContent(`.card-link[data-run="${runIds[2]}"] .race-mark`)).toBe('race 3/3 · rank 3');
    expect(await page.textContent('#board-agents [data-agent="claude"]')).toBe('claude: 3 tasks, $0.0601, 0 in (0 cached) / 0 out');
    expect(errors).toEqual([]);
  });
});
