import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { runTask } from '../../src/index.js';
import type { RunResult } from '../../src/engine/run-result.js';
import type { ViewerRun } from '../../src/viewer/run-data.js';
import { startViewerServer, type ViewerServer } from '../../src/viewer/server.js';
import { twoIterationRun } from '../inspect/helpers.js';
import { chromiumOrSkip, openChromium } from './browser.js';
import { decodePng, shareOfColour } from './png.js';

/** The fill of the current state (`.node.current rect` in the viewer's CSS). */
const HIGHLIGHT: [number, number, number] = [0xfb, 0xbf, 0x24];

// Skipped with a line on stderr when there is no Chromium, except in CI (see browser.ts).
const found = chromiumOrSkip('test/viewer/viewer.test.ts');

let server: ViewerServer;
let browser: { context: BrowserContext; close: () => Promise<void> };
let result: RunResult;
let data: ViewerRun;
const errors: string[] = [];

beforeAll(async () => {
  if (!found.path) return;
  const run = twoIterationRun();
  result = await runTask({ task: 'Add greet(name)', workdir: run.dir, config: run.config, storeDir: run.storeDir, agent: run.agent });
  server = await startViewerServer({ storeDir: run.storeDir, port: 0 });
  data = (await (await fetch(`${server.url}api/runs/${result.runId}`)).json()) as ViewerRun;
  browser = await openChromium(found.path);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

async function openRun(step: number): Promise<Page> {
  const page = await browser.context.newPage();
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${server.runUrl(result.runId)}#step=${step}`);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

const current = (page: Page, machine: string) => page.locator(`svg.chart[data-machine="${machine}"] .node.current`);
const nodeRect = (page: Page, machine: string, state: string) => page.locator(`svg.chart[data-machine="${machine}"] .node[data-state="${state}"] rect`).first();

describe.skipIf(!found.path)(`obra view in headless Chromium (${found.path ?? `skipped: ${found.skip}`})`, () => {
  it('serves steps that follow the run: every state of both iterations, then the finished task', () => {
    expect(data.run.runId).toBe(result.runId);
    const byIteration = (index: number) => data.steps.filter((s) => s.actor === 'iteration' && s.iteration?.index === index).map((s) => s.iteration!.state);
    expect(byIteration(1)).toEqual(result.iterations[0]!.states);
    expect(byIteration(2)).toEqual(result.iterations[1]!.states);
    expect(data.steps.at(-1)!.task.state).toBe('done');
    const waiting = data.steps.find((s) => s.iteration?.state === 'retryingSessionLock')!;
    expect(waiting.iteration!.retryDelaysMs).toEqual([20]);
    expect(waiting.iteration!.outcome).toBe('sessionBusy');
  });

  it('highlights the current state, and stepping moves the highlight (checked on screenshots)', async () => {
    // The first step after which the iteration is in another state (the journal also has task-only lines).
    const next = data.steps.findIndex((s, i) => i > 0 && s.iteration?.state !== data.steps[i - 1]!.iteration?.state);
    const [from, to] = [data.steps[next - 1]!.iteration!.state, data.steps[next]!.iteration!.state];
    expect([from, to]).toEqual(['building', 'prompting']);
    const page = await openRun(next);
    await expect.poll(() => current(page, 'iteration').getAttribute('data-state')).toBe('building');
    const before = decodePng(await page.screenshot());
    const building = (await nodeRect(page, 'iteration', 'building').boundingBox())!;
    const prompting = (await nodeRect(page, 'iteration', 'prompting').boundingBox())!;
    // The current state's box is filled with the highlight colour; the next one is not.
    expect(shareOfColour(before, building, HIGHLIGHT)).toBeGreaterThan(0.5);
    expect(shareOfColour(before, prompting, HIGHLIGHT)).toBe(0);

    await page.click('#next');
    await expect.poll(() => current(page, 'iteration').getAttribute('data-state')).toBe('prompting');
    const after = decodePng(await page.screenshot());
    expect(shareOfColour(after, prompting, HIGHLIGHT)).toBeGreaterThan(0.5);
    expect(shareOfColour(after, building, HIGHLIGHT)).toBe(0);
    // The highlighted element itself moved down the chart, to the next state.
    const moved = (await current(page, 'iteration').locator('rect').first().boundingBox())!;
    expect(moved.y).toBeGreaterThan(building.y);
    // (its box is the prompting box; the highlight's thicker border makes it a pixel larger)
    expect(moved.x + moved.width / 2).toBeCloseTo(prompting.x + prompting.width / 2, 0);
    expect(moved.y + moved.height / 2).toBeCloseTo(prompting.y + prompting.height / 2, 0);
    expect(await page.textContent('#position')).toMatch(new RegExp(`^step ${next + 1} / ${data.steps.length}`));
    await page.close();
  });

  it('steps through the whole run with the keyboard: both charts, the events, backoff, scores, decision and answer', async () => {
    const page = await openRun(1);
    for (const [i, step] of data.steps.entries()) {
      if (i > 0) await page.keyboard.press('ArrowRight');
      await expect.poll(() => page.textContent('#position')).toMatch(new RegExp(`^step ${i + 1} / ${data.steps.length}`));
      expect(await current(page, 'task').getAttribute('data-state')).toBe(step.task.state);
      expect(await current(page, 'iteration').getAttribute('data-state')).toBe(step.iteration!.state);
      expect(await page.textContent('#step-details')).toContain(step.eventLabel);
      if (step.iteration?.state === 'retryingSessionLock') {
        // The backoff wait, and the busy session that caused it.
        expect(await page.textContent('#iteration-details')).toContain('0.02 s');
        expect(await page.textContent('#iteration-details')).toContain('sessionBusy');
        // The edges just taken are marked: from the call, through the transient router, into the wait.
        const taken = page.locator('svg.chart[data-machine="iteration"] .edge.taken');
        expect(await taken.evaluateAll((edges) => edges.map((e) => `${e.getAttribute('data-from')}→${e.getAttribute('data-to')}`))).toEqual([
          'awaitingAgent→routingOutcome',
          'routingOutcome→retryingSessionLock',
        ]);
      }
    }
    // The last step: the task is done, the last iteration's scores, decision and the agent's answer are shown.
    const last = result.iterations[1]!;
    const details = (await page.textContent('#iteration-details'))!;
    expect(details).toContain(`${last.decision} (${last.decisionRule})`);
    expect(details).toContain(last.quality!.toFixed(2));
    expect(details).toContain(last.confidence!.toFixed(2));
    expect(await page.textContent('#answer')).toBe('Documented greet(name) in README.md and checked the example.\nSTATUS: DONE');
    expect(await current(page, 'task').getAttribute('data-state')).toBe('done');
    await page.close();
  });

  it('lists the runs without a run id, and loads nothing from outside the machine', async () => {
    const page = await browser.context.newPage();
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    await page.goto(server.url);
    await page.click(`a[href="/runs/${result.runId}"]`);
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.textContent('#run-task')).toBe('Add greet(name)');
    for (const url of requested) expect(url.startsWith(server.url.slice(0, -1))).toBe(true);
    expect(errors).toEqual([]);
    await page.close();
  });
});
