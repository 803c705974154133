import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { handleApi, type ApiContext } from '../../src/viewer/api.js';
import type { BackgroundDrives } from '../../src/workbench/drives.js';
import { buildCase, CORPUS, git } from './corpus.js';

/** `POST /api/merge-queue`: the queue from the HTTP API of `obra view` — the landings, a conflict as a value (409), bad bodies (400). */

describe('POST /api/merge-queue', () => {
  it('lands the tasks named, answers a conflict with 409 and the conflict itself, and refuses a bad body', async () => {
    const built = await buildCase(CORPUS.find((c) => c.name === 'same-line')!);
    const ctx: ApiContext = { storeDir: built.storeDir, config: configSchema.parse({}), cwd: built.root, drives: {} as BackgroundDrives };
    const post = (body: unknown) => handleApi('POST', '/api/merge-queue', async () => body, ctx);
    const [a, b] = [built.ids.a!, built.ids.b!];

    expect(await post({})).toEqual({ status: 400, body: { error: 'give either "runIds" or "all": true' } });
    expect(await post({ runIds: [a], strategy: 'octopus' })).toEqual({ status: 400, body: { error: '"strategy" must be one of merge, rebase, squash' } });
    expect(await handleApi('GET', '/api/merge-queue', async () => ({}), ctx)).toEqual({ status: 405, body: { error: '/api/merge-queue takes POST only' } });

    const landed = await post({ runIds: [a], strategy: 'squash' });
    const main = await git(built.repo, 'rev-parse', 'main');
    expect(landed).toEqual({ status: 200, body: { landed: [expect.objectContaining({ runId: a, outcome: 'landed', commit: main, into: 'main' })], resumedFrom: null } });

    const conflict = await post({ all: true });
    expect(conflict!.status).toBe(409);
    expect(conflict!.body).toMatchObject({
      error: expect.stringMatching(new RegExp(`^${b} \\(obra/${b}\\) conflicts with main in f.txt \\(merge\\)`)),
      conflict: { runId: b, branch: `obra/${b}`, into: 'main', baseCommit: main, strategy: 'merge', files: ['f.txt'], repo: built.repo },
    });
    expect(await git(built.repo, 'rev-parse', 'main')).toBe(main);
  });
});
