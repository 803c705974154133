import { afterAll, describe, expect, it } from 'vitest';
import { startViewerServer, type ViewerServer } from '../../src/viewer/server.js';
import { chromiumOrSkip, openChromium } from '../viewer/browser.js';
import { buildCase, CORPUS } from './corpus.js';

/** The board warns on the cards of both tasks of a conflicting pair, naming the other task and the files. */

const found = chromiumOrSkip('test/landing/board.test.ts');
let server: ViewerServer | undefined;
let browser: Awaited<ReturnType<typeof openChromium>> | undefined;

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe.skipIf(!found.path)('the board and overlap', () => {
  it('shows the conflict on both cards of the pair', async () => {
    const built = await buildCase(CORPUS.find((c) => c.name === 'same-line')!);
    server = await startViewerServer({ storeDir: built.storeDir, port: 0 });
    browser = await openChromium(found.path!);
    const page = await browser.context.newPage();
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="true"]');
    const warning = (runId: string) => page.locator(`.card-link[data-run="${runId}"] .conflict`).allTextContents();
    const [a, b] = [built.ids.a!, built.ids.b!];
    expect(await warning(a)).toEqual([`⚠ conflicts with run ${b} (obra/${b}) in f.txt`]);
    expect(await warning(b)).toEqual([`⚠ conflicts with run ${a} (obra/${a}) in f.txt`]);
  });
});
