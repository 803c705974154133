import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright-core';
import { submitTask, submitTasks, work } from '../../src/index.js';
import { startViewerServer, type ViewerServer } from '../../src/viewer/server.js';
import { agentsPerRun, config, scratch } from '../queue/helpers.js';
import { chromiumOrSkip, openChromium } from './browser.js';

/** `obra view`'s board in a headless Chromium: the columns, the cards, the link to a run, and live updates. */

const found = chromiumOrSkip('test/viewer/board.test.ts');
const s = scratch('obra-board-');
const cfg = config({ task: { max_iterations: 1 } });
const ids: Record<string, string> = {};
let server: ViewerServer;
let browser: { context: BrowserContext; close: () => Promise<void> };

const denial = { tool: 'Write', input: '/etc/motd', rule: 'Write(/etc/motd)' };

beforeAll(async () => {
  if (!found.path) return;
  const [done, waiting, failing, blocked] = await submitTasks(
    [
      { task: 'Finish at once', repo: s.folder() },
      { task: 'Needs a permission', repo: s.folder() },
      { task: 'Never finishes', repo: s.folder() },
      { task: 'Follows the one that never finishes', repo: s.folder(), after: '@3' },
    ],
    { config: cfg, storeDir: s.storeDir },
  );
  Object.assign(ids, { done, waiting, failing, blocked });
  const agents = agentsPerRun((runId) =>
    runId === waiting ? { answer: 'I need to write /etc/motd.\nSTATUS: CONTINUE', denials: [denial] } : runId === failing ? 'Part of it.\nSTATUS: CONTINUE' : 'All done.\nSTATUS: DONE',
  );
  await work({ storeDir: s.storeDir, config: cfg, concurrency: 4, untilIdle: true, agent: agents.agentOf });
  ids.queued = (await submitTask({ task: 'Queued <b>not bold</b>', repo: s.folder(), priority: 4, config: cfg, storeDir: s.storeDir })).runId;
  server = await startViewerServer({ storeDir: s.storeDir, port: 0 });
  browser = await openChromium(found.path);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe.skipIf(!found.path)('the board', () => {
  it('puts every task in its column, links each card to its run, and follows the runs as they move', async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    const requested: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('request', (request) => requested.push(request.url()));
    await page.goto(`${server.url}?every=100`);
    await page.waitForSelector('body[data-ready="true"]');

    const column = (key: string) => page.locator(`[data-column="${key}"] .card-link`).evaluateAll((cards) => cards.map((c) => c.getAttribute('data-run')));
    expect(await page.locator('.column h2 > span:first-child').allTextContents()).toEqual(['Queued', 'Running', 'Waiting for a human', 'Done', 'Failed and blocked']);
    expect(await column('queued')).toEqual([ids.queued]);
    expect(await column('running')).toEqual([]);
    expect(await column('waiting')).toEqual([ids.waiting]);
    expect(await column('done')).toEqual([ids.done]);
    expect((await column('failed')).sort()).toEqual([ids.failing, ids.blocked].sort());
    // A card says what the task waits for, in words; a task's text is text, never HTML.
    expect(await page.textContent(`[data-run="${ids.waiting}"] .waiting`)).toMatch(/^waiting for a human: /);
    // Each card offers what its state allows; a question is answered on the run page.
    expect(await page.locator(`[data-run="${ids.waiting}"] .actions > *`).allTextContents()).toEqual(['Answer…', 'Cancel', 'Retry']);
    expect(await page.getAttribute(`[data-run="${ids.waiting}"] .answer-link`, 'href')).toBe(`/runs/${ids.waiting}#workbench`);
    expect(await page.locator(`[data-run="${ids.done}"] .actions > *`).allTextContents()).toEqual([]);
    expect(await page.textContent(`[data-run="${ids.queued}"] .what`)).toBe('Queued <b>not bold</b>');
    expect(await page.textContent(`[data-run="${ids.blocked}"] .status`)).toBe('blocked');
    expect(await page.textContent(`[data-run="${ids.blocked}"] .why`)).toBe(`the run it follows, ${ids.failing}, ended max_iterations`);
    expect(await page.textContent('[data-column="failed"] .count')).toBe('2');

    // The queued task is driven now: its card moves to Done without a reload.
    const agents = agentsPerRun(() => 'All done.\nSTATUS: DONE', { latencyMs: 400 });
    const working = work({ storeDir: s.storeDir, config: cfg, concurrency: 1, untilIdle: true, agent: agents.agentOf });
    await page.waitForSelector(`[data-column="running"] [data-run="${ids.queued}"]`, { timeout: 10_000 });
    await working;
    await page.waitForSelector(`[data-column="done"] [data-run="${ids.queued}"]`, { timeout: 10_000 });
    expect(await column('queued')).toEqual([]);

    await page.click(`[data-run="${ids.done}"]`);
    await page.waitForSelector('body[data-ready="true"]');
    expect(page.url()).toBe(`${server.runUrl(ids.done!)}#step=1`);
    expect(await page.textContent('#run-task')).toBe('Finish at once');
    for (const url of requested) expect(url.startsWith(server.url.slice(0, -1))).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);

  it('pages a long column: its first cards, its count, and the rest on a click', async () => {
    const page = await browser.context.newPage();
    await page.goto(`${server.url}?per_column=1`);
    await page.waitForSelector('body[data-live="true"]');
    const failed = () => page.locator('[data-column="failed"] .card-link').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-run')));
    expect(await failed()).toHaveLength(1);
    expect(await page.textContent('[data-column="failed"] .count')).toBe('2');
    expect(await page.textContent('[data-column="failed"] button.more')).toBe('show 1 more of 1');
    await page.click('[data-column="failed"] button.more');
    await page.waitForFunction(() => document.querySelectorAll('[data-column="failed"] .card-link').length === 2);
    expect((await failed()).sort()).toEqual([ids.failing, ids.blocked].sort());
    expect(await page.locator('[data-column="failed"] button.more').count()).toBe(0);
    await page.close();
  });
});
