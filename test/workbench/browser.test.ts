import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store.js';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';
import { gitOut, gitRepo } from '../queue/helpers.js';
import { chromiumOrSkip, openChromium } from '../viewer/browser.js';
import { startView } from './helpers.js';

/**
 * The workbench driven by clicks in a headless Chromium, against `obra view`, `obra work` and the fake Claude CLI
 * in a real git repository: queue a task from the form, watch its events arrive on its run page, answer its
 * question and allow the tool it was refused, read its diff, merge it — refused first (a conflict, its file
 * listed on the page), then done — and the repository has the merge.
 */

const found = chromiumOrSkip('test/workbench/browser.test.ts');
/** Turn 1 writes part-1.txt and runs a command no rule allows (the run asks a human); turn 2 runs it and edits the README. */
const REPLIES = [
  { result: 'Wrote part 1; I need to run the script.\nSTATUS: CONTINUE', files: { 'part-1.txt': 'one\n' }, bash: ['printf x > done.txt'] },
  { result: 'Ran it.\nSTATUS: DONE', bash: ['printf x > done.txt'], files: { 'README.md': '# demo, by the agent\n' } },
];

let browser: { context: BrowserContext; close: () => Promise<void> };
let s: Awaited<ReturnType<typeof setup>>;

async function setup() {
  const box = sandbox();
  const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: JSON.stringify(REPLIES), FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '300' };
  const repo = await gitRepo(join(box.dir, 'repo'));
  const storeDir = join(box.dir, 'store');
  RunStore.open(storeDir);
  const view = await startView(['--db', storeDir], { cwd: repo, env });
  return { ...box, env, repo, storeDir, view };
}

beforeAll(async () => {
  if (!found.path) return;
  s = await setup();
  browser = await openChromium(found.path);
});

afterAll(async () => {
  await browser?.close();
  await s?.view.stop();
});

const texts = (page: Page, selector: string) => page.locator(selector).allTextContents();

describe.skipIf(!found.path)('the workbench in a browser', () => {
  it('queues a task from the form, shows its events live, answers and allows, reviews and merges it', async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    // The URL `obra view` printed: the page keeps the token and takes it out of the address bar.
    await page.goto(s.view.printed);
    await page.waitForSelector('body[data-live="true"]');
    expect(page.url()).toBe(`${s.view.base}/`);
    expect(await page.evaluate(() => sessionStorage.getItem(`obra-token:${location.host}`))).toBe(s.view.token);

    // A task the API refuses: its one-line error on the page, nothing queued.
    await page.click('#new-task summary');
    await page.fill('textarea[name=task]', 'Run the script');
    await page.fill('input[name=repo]', join(s.repo, 'nowhere'));
    await page.click('#task-submit');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error')).toBe(`--repo ${join(s.repo, 'nowhere')} is not a folder — pass an existing folder (a git repository gets a worktree per task)`);
    await page.fill('input[name=repo]', s.repo);
    await page.fill('textarea[name=checks]', 'test -f done.txt\ntest -f part-1.txt');
    await page.click('#task-submit');
    await page.waitForSelector('#note:not([hidden])');
    const runId = /^queued (\S+) /.exec((await page.textContent('#note'))!)![1]!;
    const stored = RunStore.open(s.storeDir, { create: false }).peekStatus(runId);
    expect([stored.status, stored.file.task.text, stored.file.task.checks]).toEqual(['queued', 'Run the script', ['test -f done.txt', 'test -f part-1.txt']]);
    // Pushed to the board: the card, with what a queued task can be told.
    await page.waitForSelector(`[data-column="queued"] [data-run="${runId}"]`);
    expect(await texts(page, `[data-run="${runId}"] .actions button`)).toEqual(['Cancel', 'Discard']);

    // Its run page, open before a worker takes the task: the events arrive as the agent works.
    await page.click(`[data-run="${runId}"] .what`);
    await page.waitForSelector('body[data-live="true"]');
    expect(page.url()).toBe(`${s.view.base}/runs/${runId}`);
    expect(await page.locator('#events li').count()).toBe(0);
    const worker = obra(['work', '--until-idle', '--db', s.storeDir], { cwd: s.repo, env: s.env });
    await page.waitForSelector('#events li[data-kind="tool"][data-file]', { timeout: 20_000 });
    expect(await page.getAttribute('#events li[data-kind="tool"][data-file]', 'data-file')).toBe(join(s.storeDir, 'worktrees', runId, 'part-1.txt'));
    await page.waitForSelector('body[data-status="escalated"]', { timeout: 20_000 });
    expect((await worker).exitCode).toBe(3);
    const events = await texts(page, '#events li .body');
    expect(events).toContain('Bash printf x > done.txt');
    // The agent's text as the CLI streamed it (a refused tool use makes the fake say so).
    expect(events).toContain('I could not finish: Claude Code refused Bash (permission not granted). Please grant it.\nSTATUS: CONTINUE');
    expect(events.some((e) => e.startsWith('iteration 1: escalate (permissionDenied)'))).toBe(true);

    // The question, with the refused tool and one click to allow it.
    expect(await page.isVisible('#waiting')).toBe(true);
    expect(await page.textContent('#question')).toBe(`the agent was refused 1 tool use it asked for: Bash: printf x > done.txt — allow it with \`obra answer ${runId} --allow 'Bash(printf x > done.txt)'\`, or answer with what to do instead`);
    expect(await texts(page, '#denials li')).toEqual(['refused: Bash printf x > done.txt Allow Bash(printf x > done.txt)']);
    expect(await texts(page, '#wb-actions button')).toEqual(['Cancel', 'Retry', 'Merge', 'Discard']);
    await page.fill('#answer-text', 'Go ahead, and mention the README.');
    await page.click('#denials button.allow');
    await page.waitForSelector('body[data-status="done"]', { timeout: 30_000 });
    expect(RunStore.open(s.storeDir, { create: false }).peekStatus(runId).file.status).toBe('done');
    const later = await texts(page, '#events li .body');
    expect(later.some((e) => e.startsWith('iteration 2: done (acceptedAsDone)'))).toBe(true);
    expect(later.at(-1)).toMatch(/^run done/);

    // The review: the whole diff, then iteration 1's alone, with its checks' output and the judge's reasons.
    await page.waitForSelector('#diff .d2h-file-wrapper');
    expect((await texts(page, '#diff .d2h-file-wrapper .d2h-file-name')).sort()).toEqual(['README.md', 'done.txt', 'part-1.txt']);
    await page.click('#review-tabs button[data-iteration="1"]');
    await page.waitForSelector('body[data-review="1"]');
    expect(await texts(page, '#diff .d2h-file-wrapper .d2h-file-name')).toEqual(['part-1.txt']);
    expect(await texts(page, '#checks .check-failed')).toEqual(['✗ test -f done.txt (exit 1)']);
    expect((await texts(page, '#judge li'))[0]).toMatch(/^iteration 1: escalate \(permissionDenied\)the agent was refused 1 tool use it asked for: Bash: printf x > done\.txt/);

    // A merge that conflicts is refused, and the page names the file; once main is back, the merge goes in.
    await commitOnMain(s.repo, 'README.md', '# demo, changed on main\n');
    const mainBefore = await gitOut(s.repo, 'rev-parse', 'main');
    await page.click('#wb-actions button[data-action="merge"]');
    await page.waitForSelector('#error:not([hidden])');
    expect(await page.textContent('#error .message')).toMatch(new RegExp(`^cannot merge obra/${runId} into main: it conflicts with main in README\\.md — nothing was changed`));
    expect(await texts(page, '#error ul.conflicts li')).toEqual(['README.md']);
    expect(await gitOut(s.repo, 'rev-parse', 'main')).toBe(mainBefore);
    await gitOut(s.repo, 'reset', '--hard', 'HEAD~1');
    await page.click('#wb-actions button[data-action="merge"]');
    await page.waitForSelector('#note:not([hidden])');
    const merged = await gitOut(s.repo, 'log', '-1', '--format=%H', 'main');
    expect(await page.textContent('#note')).toBe(`merged obra/${runId} into main in ${s.repo} (${merged.slice(0, 12)})`);
    expect(await gitOut(s.repo, 'ls-tree', '--name-only', 'main')).toBe('README.md\ndone.txt\npart-1.txt');
    expect(await gitOut(s.repo, 'show', 'main:README.md')).toBe('# demo, by the agent');
    await waitFor(async () => (await texts(page, '#wb-actions button')).join() === 'Discard', { what: 'the merged run to offer only Discard' });

    // Back on the board: the task's card says it was merged, and the spend charts count what it cost.
    await page.click('h1 a');
    await page.waitForSelector('body[data-live="true"]');
    const cost = RunStore.open(s.storeDir, { create: false }).peekStatus(runId).file.totalCostUsd;
    expect(cost).toBeGreaterThan(0);
    expect(await page.textContent(`[data-run="${runId}"] .status`)).toBe('merged');
    expect(await page.getAttribute(`[data-spend="task"] [data-key="${runId}"]`, 'data-usd')).toBe(cost.toFixed(6));
    expect(await page.getAttribute('[data-spend="agent"] [data-key="claude"]', 'data-usd')).toBe(cost.toFixed(6));
    expect(await page.getAttribute(`[data-spend="day"] [data-key="${stored.file.queue!.submittedAt.slice(0, 10)}"]`, 'data-usd')).toBe(cost.toFixed(6));
    expect(await page.textContent('#spend-total')).toBe(`$${cost.toFixed(4)} in all`);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});

async function commitOnMain(repo: string, file: string, text: string): Promise<void> {
  writeFileSync(join(repo, file), text);
  await gitOut(repo, 'commit', '-qam', `change ${file} on main`);
}
