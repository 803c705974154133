import { request } from 'node:http';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunStore } from '../../src/store/run-store.js';
import { FAKE_CLAUDE, obra, sandbox } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait-for.js';
import { gitOut, gitRepo } from '../queue/helpers.js';
import { api, receiver, startView } from './helpers.js';

/**
 * `obra view`'s API, against the built CLI and the fake Claude CLI in a real git repository: submit, work, diff,
 * merge, discard, answer (with a permission), retry — the CLI's own functions and errors, as JSON.
 */

/** Turn 1 writes part-1.txt and goes on; turn 2 is done. */
const REPLIES = [
  { result: 'Added the first part.\nSTATUS: CONTINUE', files: { 'part-1.txt': 'one\n' } },
  { result: 'Finished.\nSTATUS: DONE', files: { 'part-2.txt': 'two\n' } },
];

async function setup(replies: unknown[] = REPLIES, viewArgs: string[] = []) {
  const box = sandbox();
  const env = { ...box.env, OBRA_CLAUDE_BIN: FAKE_CLAUDE, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), FAKE_CLAUDE_REPLY_BY: 'turn' };
  const repo = await gitRepo(join(box.dir, 'repo'));
  const storeDir = join(box.dir, 'store');
  // The store must exist before `obra view` serves it.
  RunStore.open(storeDir);
  const view = await startView(['--db', storeDir, ...viewArgs], { cwd: repo, env });
  return { ...box, env, repo, storeDir, view };
}

const runIds = (storeDir: string) => RunStore.open(storeDir, { create: false }).listRunIds().sort();

describe('the HTTP API of obra view', () => {
  it('submits a task, shows its diff, merges and discards it, with the CLI\'s errors as JSON', async () => {
    const s = await setup();
    try {
      const { base, token } = s.view;
      // The token is the store's, made once, readable by its owner only.
      expect(readFileSync(join(s.storeDir, 'token'), 'utf8').trim()).toBe(token);
      expect(statSync(join(s.storeDir, 'token')).mode & 0o777).toBe(0o600);
      expect(s.view.printed).toBe(`${base}/?token=${token}`);

      const bad = await api(base, token, 'POST', '/api/tasks', { task: 'x', colour: 'red' });
      expect(bad).toEqual({ status: 400, json: { error: 'the task is not valid: unknown field "colour" (the fields are task, checks, repo, base, priority, after, run_id, agent, agents, attempts)' } });
      expect(await api(base, token, 'POST', '/api/tasks', { checks: [] })).toEqual({ status: 400, json: { error: 'the task is not valid: task: missing — say what the agent should do' } });
      expect((await api(base, token, 'POST', '/api/tasks', { task: 'x', repo: 'nowhere' })).json.error).toBe(`--repo ${join(s.repo, 'nowhere')} is not a folder — pass an existing folder (a git repository gets a worktree per task)`);
      expect(runIds(s.storeDir)).toEqual([]);

      const submitted = await api(base, token, 'POST', '/api/tasks', { task: 'Write the two parts', checks: ['test -f part-2.txt'], repo: '.', priority: 2 });
      expect(submitted.status).toBe(201);
      const runId = submitted.json.runId as string;
      expect(runIds(s.storeDir)).toEqual([runId]);
      expect(await gitOut(s.repo, 'rev-parse', '--verify', `obra/${runId}`)).toBe(await gitOut(s.repo, 'rev-parse', 'HEAD'));
      // Not ended yet: the merge is refused and nothing changes.
      expect(await api(base, token, 'POST', `/api/runs/${runId}/merge`)).toEqual({ status: 409, json: { error: `run ${runId} is queued: merge it once it has ended (or pause it first); nothing was changed` } });

      const worked = await obra(['work', '--until-idle', '--db', s.storeDir], { cwd: s.repo, env: s.env });
      expect(worked.exitCode, worked.stderr).toBe(0);

      const diff = await api(base, token, 'GET', `/api/runs/${runId}/diff`);
      expect(diff.status).toBe(200);
      expect(diff.json.diff).toContain('+++ b/part-1.txt');
      expect(diff.json.diff).toContain('+++ b/part-2.txt');
      // The same text as `obra diff`.
      expect(`${diff.json.diff}\n`).toBe((await obra(['diff', runId, '--db', s.storeDir], { cwd: s.repo, env: s.env })).stdout + '\n');

      const merged = await api(base, token, 'POST', `/api/runs/${runId}/merge`);
      expect(merged.status).toBe(200);
      expect(merged.json.message).toBe(`merged obra/${runId} into main in ${s.repo} (${(merged.json.commit as string).slice(0, 12)})`);
      expect(await gitOut(s.repo, 'log', '-1', '--format=%H', 'main')).toBe(merged.json.commit);
      expect(await gitOut(s.repo, 'ls-tree', '--name-only', 'main')).toBe('README.md\npart-1.txt\npart-2.txt');
      expect((await api(base, token, 'POST', `/api/runs/${runId}/merge`)).json.already).toBe(true);

      expect(await api(base, token, 'POST', `/api/runs/${runId}/discard`)).toEqual({ status: 200, json: { runId, message: `removed the worktree ${join(s.storeDir, 'worktrees', runId)} and the branch obra/${runId}` } });
      expect(await api(base, token, 'GET', `/api/runs/${runId}/diff`)).toEqual({ status: 400, json: { error: `run ${runId}'s worktree and branch were discarded` } });
      expect(await api(base, token, 'POST', '/api/runs/nope/cancel')).toEqual({ status: 404, json: { error: `no run "nope" in ${s.storeDir} — \`obra runs\` lists the runs there` } });
      expect(await api(base, token, 'POST', `/api/runs/${runId}/retry`)).toEqual({ status: 400, json: { error: `run ${runId} is done: only a task that failed, was blocked or cancelled, or waits for a human can be retried` } });
    } finally {
      await s.view.stop();
    }
  });

  it('takes an agent kind, or a race of agents, as a tasks file does: a race answers its id and its attempts', async () => {
    const s = await setup();
    try {
      const { base, token } = s.view;
      const store = () => RunStore.open(s.storeDir, { create: false });
      const codex = await api(base, token, 'POST', '/api/tasks', { task: 'One agent', repo: s.repo, agent: 'codex' });
      expect(codex.status).toBe(201);
      expect(store().peekStatus(codex.json.runId as string).file.agent.kind).toBe('codex');
      const race = await api(base, token, 'POST', '/api/tasks', { task: 'Raced', repo: s.repo, agents: ['claude', 'gemini'], attempts: 1 });
      expect(race.status).toBe(201);
      const { raceId, runIds: attempts } = race.json as { raceId: string; runIds: string[] };
      expect(race.json.runId).toBe(raceId);
      expect(attempts).toEqual([`${raceId}-1`, `${raceId}-2`]);
      expect(attempts.map((id) => [store().peekStatus(id).file.agent.kind, store().peekStatus(id).file.queue?.race])).toEqual([
        ['claude', { id: raceId, attempt: 1, of: 2 }],
        ['gemini', { id: raceId, attempt: 2, of: 2 }],
      ]);
      expect((await api(base, token, 'POST', '/api/tasks', { task: 'x', agent: 'codex', agents: ['claude', 'codex'] })).json.error).toBe('the task is not valid: give either agent or agents, not both');
      expect((await api(base, token, 'POST', '/api/tasks', { task: 'x', agents: ['cursor'] })).json.error).toMatch(/^the task is not valid: agents\.0: expected one of claude, codex, gemini, qwen, opencode/);
    } finally {
      await s.view.stop();
    }
  });

  it('answers a task waiting for a permission (allow), drives it on to done in the server, and retries a failed one', async () => {
    // Turn 1 runs a command no rule allows (the run asks a human); turn 2 runs it again and is done.
    const hook = await receiver(() => 200);
    const s = await setup(
      [
        { result: 'I need to run the script.\nSTATUS: CONTINUE', bash: ['printf x > done.txt'] },
        { result: 'Ran it.\nSTATUS: DONE', bash: ['printf x > done.txt'] },
      ],
      ['--set', `notify.webhooks=["${hook.url}"]`, '--set', 'notify.desktop=false'],
    );
    try {
      const { base, token } = s.view;
      const { runId } = (await api(base, token, 'POST', '/api/tasks', { task: 'Run the script', checks: ['test -f done.txt'], repo: s.repo })).json as { runId: string };
      const worked = await obra(['work', '--until-idle', '--db', s.storeDir], { cwd: s.repo, env: s.env });
      expect(worked.exitCode, worked.stderr).toBe(3);
      const status = () => RunStore.open(s.storeDir, { create: false }).peekStatus(runId).status;
      expect(status()).toBe('escalated');

      expect(await api(base, token, 'POST', `/api/runs/${runId}/answer`, { answer: '' })).toEqual({
        status: 400,
        json: { error: 'the answer is empty — write what the agent should do next, or grant what it was refused with --allow "<rule>"' },
      });
      expect(await api(base, token, 'POST', `/api/runs/${runId}/answer`, { allow: 'Bash' })).toEqual({ status: 400, json: { error: '"allow" must be a list of permission rules, e.g. ["Write"]' } });
      const answered = await api(base, token, 'POST', `/api/runs/${runId}/answer`, { answer: 'Go ahead.', allow: ['Bash(printf x > done.txt)'] });
      expect(answered).toEqual({ status: 202, json: { runId, status: 'running', message: `answered run ${runId}; it goes on` } });
      await waitFor(() => status() === 'done', { what: 'the answered run to be done', timeoutMs: 30_000 });
      // The server that drove it on tells of its end, as `obra work` does.
      await waitFor(() => hook.bodies.length > 0, { what: 'the done notice' });
      expect(hook.bodies.map((b) => [b.event, b.runId, b.task])).toEqual([['done', runId, 'Run the script']]);
      expect(await api(base, token, 'POST', `/api/runs/${runId}/answer`, { answer: 'again' })).toEqual({ status: 400, json: { error: `run ${runId} is not waiting for an answer (its status is done)` } });

      // A task that fails is queued again as a new run with the same task and checks.
      const failing = (await api(base, token, 'POST', '/api/tasks', { task: 'Never passes', checks: ['false'], repo: s.repo })).json.runId as string;
      await obra(['work', '--until-idle', '--db', s.storeDir, '--set', 'task.max_iterations=1'], { cwd: s.repo, env: s.env });
      const retried = await api(base, token, 'POST', `/api/runs/${failing}/retry`);
      expect(retried.status).toBe(201);
      expect(retried.json).toEqual({ runId: retried.json.runId, retried: failing, message: `queued ${failing}'s task again as ${retried.json.runId}` });
      const again = RunStore.open(s.storeDir, { create: false }).peekStatus(retried.json.runId as string);
      expect(again.status).toBe('queued');
      expect(again.file.task.text).toBe('Never passes');
      expect(again.file.task.checks).toEqual(['false']);
      // `obra retry` is the same function.
      const cli = await obra(['retry', failing, '--db', s.storeDir], { cwd: s.repo, env: s.env });
      expect(cli.exitCode, cli.stderr).toBe(0);
      const third = cli.stdout.trim();
      expect(cli.stderr).toBe(`queued ${failing}'s task again as ${third}; \`obra work\` drives it`);
      expect(runIds(s.storeDir)).toEqual([runId, failing, retried.json.runId as string, third].sort());
      expect((await obra(['retry', runId, '--db', s.storeDir], { cwd: s.repo, env: s.env })).stderr).toBe(
        `obra: run ${runId} is done: only a task that failed, was blocked or cancelled, or waits for a human can be retried`,
      );
    } finally {
      await s.view.stop();
      await hook.close();
    }
  });

  it('with merge.resolve: agent, a conflicting merge queues its resolution (202), and merging again waits for it (409)', async () => {
    // Every call writes the same file differently: the second task's merge conflicts.
    const config = join(sandbox().dir, 'obra.yaml');
    writeFileSync(config, 'merge:\n  resolve: agent\n');
    const s = await setup([{ result: 'Wrote it.\nSTATUS: DONE', files: { 'part-1.txt': 'call {{n}}\n' } }], ['--config', config]);
    try {
      const { base, token } = s.view;
      const [a, b] = await Promise.all(['One', 'Two'].map(async (task) => (await api(base, token, 'POST', '/api/tasks', { task, repo: '.' })).json.runId as string));
      const worked = await obra(['work', '--until-idle', '--db', s.storeDir], { cwd: s.repo, env: s.env });
      expect(worked.exitCode, worked.stderr).toBe(0);
      expect((await api(base, token, 'POST', `/api/runs/${a}/merge`)).status).toBe(200);
      const queued = await api(base, token, 'POST', `/api/runs/${b}/merge`);
      expect(queued.status).toBe(202);
      const resolution = queued.json.resolution as { runId: string; files: string[]; already: boolean };
      expect(queued.json).toMatchObject({ runId: b, commit: null, resolvedBy: resolution.runId, resolution: { files: ['part-1.txt'], already: false } });
      expect(runIds(s.storeDir)).toEqual([a, b, resolution.runId].sort());
      const again = await api(base, token, 'POST', `/api/runs/${b}/merge`);
      expect(again).toEqual({ status: 409, json: { error: `the conflict of obra/${b} with main is being resolved by run ${resolution.runId} (queued) — \`obra merge ${b}\` lands it once that run is done; nothing was changed` } });
    } finally {
      await s.view.stop();
    }
  });
});

describe('pause, resume and cancel through the API', () => {
  it('pauses a task obra work drives, resumes it in the server to done, cancels a queued one, refuses a finished one', async () => {
    const s = await setup();
    try {
      const { base, token } = s.view;
      const env = { ...s.env, FAKE_CLAUDE_LATENCY_MS: '1500' };
      const runId = (await api(base, token, 'POST', '/api/tasks', { task: 'Write the two parts', checks: ['test -f part-2.txt'], repo: s.repo })).json.runId as string;
      const status = (id: string) => RunStore.open(s.storeDir, { create: false }).peekStatus(id).status;
      const worker = obra(['work', '--until-idle', '--db', s.storeDir], { cwd: s.repo, env });
      await waitFor(() => status(runId) === 'running', { what: 'obra work to start the task' });
      const paused = await api(base, token, 'POST', `/api/runs/${runId}/pause`, { reason: 'lunch' });
      expect(paused.status).toBe(200);
      expect(paused.json.message).toBe(`pause requested: run ${runId} pauses when its current iteration is persisted`);
      expect((await worker).exitCode).toBe(7);
      expect(status(runId)).toBe('paused');
      expect(RunStore.open(s.storeDir, { create: false }).peekStatus(runId).file.reason).toMatch(/^paused by request after iteration 1/);

      expect(await api(base, token, 'POST', `/api/runs/${runId}/resume`)).toEqual({ status: 202, json: { runId, status: 'running', message: `resumed run ${runId}` } });
      await waitFor(() => status(runId) === 'done', { what: 'the resumed task to be done', timeoutMs: 30_000 });
      expect(await gitOut(s.repo, 'ls-tree', '--name-only', `obra/${runId}`)).toBe('README.md\npart-1.txt\npart-2.txt');
      expect(await api(base, token, 'POST', `/api/runs/${runId}/resume`)).toEqual({ status: 400, json: { error: `run ${runId} is done: only a paused or interrupted run can be resumed` } });
      expect(await api(base, token, 'POST', `/api/runs/${runId}/cancel`)).toEqual({ status: 400, json: { error: `run ${runId} has already finished (its status is done); there is nothing to cancel` } });

      const queued = (await api(base, token, 'POST', '/api/tasks', { task: 'Never started', repo: s.repo })).json.runId as string;
      expect(await api(base, token, 'POST', `/api/runs/${queued}/cancel`, { reason: 'not needed' })).toEqual({ status: 200, json: { runId: queued, status: 'cancelled', message: `run ${queued} is cancelled` } });
      expect(status(queued)).toBe('cancelled');
    } finally {
      await s.view.stop();
    }
  });
});

/** A request with a Host header of our choosing (fetch sets its own). */
function rawRequest(base: string, options: { method: string; path: string; headers: Record<string, string>; body?: string }) {
  const url = new URL(base);
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: options.method, path: options.path, headers: options.headers }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe('the API refuses', () => {
  it('no token, a wrong token, another origin, a foreign Host, a write by GET: nothing changes', async () => {
    const s = await setup();
    try {
      const { base, token } = s.view;
      const task = { task: 'Should never be queued', repo: s.repo };
      expect(await api(base, null, 'POST', '/api/tasks', task)).toEqual({
        status: 401,
        json: { error: "Unauthorized: send the store's token as Authorization: Bearer <token> (it is in the URL `obra view` prints)" },
      });
      expect(await api(base, 'f'.repeat(64), 'POST', '/api/tasks', task)).toEqual({ status: 401, json: { error: 'Unauthorized: wrong token — use the one in the URL `obra view` prints' } });
      expect(await api(base, null, 'POST', '/api/tasks', task, { authorization: token })).toEqual({ status: 401, json: { error: 'Unauthorized: the Authorization header must be "Bearer <token>"' } });
      // A page elsewhere that got hold of the token still may not post from there.
      expect(await api(base, token, 'POST', '/api/tasks', task, { origin: 'http://evil.example' })).toEqual({
        status: 403,
        json: { error: 'Forbidden: a request from http://evil.example may not change anything here — use the API from the viewer\'s own pages or without a browser' },
      });
      const port = new URL(base).port;
      const rebound = await rawRequest(base, { method: 'POST', path: '/api/tasks', headers: { host: `evil.example:${port}`, authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(task) });
      expect(rebound).toEqual({ status: 403, body: '{"error":"Forbidden: open the viewer through 127.0.0.1 or localhost"}\n' });
      // GET changes nothing: an action's path is POST only.
      expect(await api(base, token, 'GET', '/api/tasks')).toEqual({ status: 405, json: { error: '/api/tasks takes POST only' } });
      expect(runIds(s.storeDir)).toEqual([]);
      expect(await gitOut(s.repo, 'branch', '--format=%(refname:short)')).toBe('main');
      // The same request with the token, from no other origin, is taken.
      expect((await api(base, token, 'POST', '/api/tasks', task, { origin: base })).status).toBe(201);
      expect(runIds(s.storeDir)).toHaveLength(1);
    } finally {
      await s.view.stop();
    }
  });

  it('--bind 0.0.0.0 warns, and asks for the token even to read', async () => {
    const box = sandbox();
    const storeDir = join(box.dir, 'store');
    RunStore.open(storeDir);
    const view = await startView(['--db', storeDir, '--bind', '0.0.0.0'], { cwd: box.dir, env: box.env });
    try {
      expect(view.stderr()).toMatch(/^obra: WARNING the viewer listens on 0\.0\.0\.0, beyond this machine: anyone who reaches port \d+ can try it — every request needs the token/);
      const base = view.base.replace('0.0.0.0', '127.0.0.1');
      expect((await fetch(`${base}/api/board`)).status).toBe(401);
      expect((await fetch(`${base}/api/board`, { headers: { authorization: `Bearer ${view.token}` } })).status).toBe(200);
      // The printed URL lets the page in and leaves it a cookie for its own reads.
      const page = await fetch(`${base}/?token=${view.token}`);
      expect(page.status).toBe(200);
      const cookie = page.headers.get('set-cookie')!;
      expect(cookie).toBe(`obra_token=${view.token}; HttpOnly; SameSite=Strict; Path=/`);
      expect((await fetch(`${base}/api/board`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(200);
      expect(await api(base, null, 'POST', '/api/tasks', { task: 'x' }, { cookie: cookie.split(';')[0]! })).toEqual({
        status: 401,
        json: { error: "Unauthorized: send the store's token as Authorization: Bearer <token> (it is in the URL `obra view` prints)" },
      });
    } finally {
      await view.stop();
    }
  });
});
