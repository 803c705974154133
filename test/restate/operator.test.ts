import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { isAlive } from '../../src/core/process.js';
import { portHolder } from '../../src/hosts/restate/port-holder.js';
import { freePorts } from '../../src/hosts/restate/server.js';
import { CLI, obra, sandbox } from '../helpers/cli.js';
import { agentBin, clusterPerSuite, fakeCalls, restateAvailable, runOf, startWorker, submit, until, workerReady } from './helpers.js';

/**
 * What an operator relies on: `obra restate up` refuses ports it cannot have and never leaves its server behind;
 * a worker says at once when its URLs are wrong or when it would listen beyond loopback unprotected; a command
 * that finds no worker serving says so within seconds and leaves nothing pending in Restate.
 */

/** A plain TCP listener in a process of its own (node), as any other program holding a port. */
async function holdPort(port: number): Promise<{ holder: ResultPromise }> {
  const holder = execa('node', ['-e', `require('net').createServer().listen(${port}, '127.0.0.1', () => console.log('listening'))`], { reject: false });
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  return { holder }; // (not the process itself: a returned promise would be awaited to its end)
}

const started: ResultPromise[] = [];
const serverPids: number[] = [];
afterEach(() => {
  for (const p of started.splice(0)) p.kill('SIGKILL');
  for (const pid of serverPids.splice(0)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
});

describe('obra restate up: ports', () => {
  it('refuses a port held by another process, naming the port, the holder and the flag (exit 2)', async () => {
    const { dir, env } = sandbox();
    const [ingress, admin] = (await freePorts(2)) as [number, number];
    const { holder } = await holdPort(ingress);
    started.push(holder);
    const up = await obra(['restate', 'up', '--port', String(ingress), '--admin-port', String(admin)], { cwd: dir, env });
    expect(up.stdout).toBe('');
    expect(up.stderr).toBe(`obra: port ${ingress} is taken (by pid ${holder.pid} node) — stop it or use --port`);
    expect(up.exitCode).toBe(2);

    // The admin port likewise (and the other ports are free ones, with 0).
    const adminTaken = await obra(['restate', 'up', '--port', '0', '--admin-port', String(ingress)], { cwd: dir, env });
    expect(adminTaken.stderr).toBe(`obra: port ${ingress} is taken (by pid ${holder.pid} node) — stop it or use --admin-port`);
    expect(adminTaken.exitCode).toBe(2);
  });

  it('rejects a port that is no port', async () => {
    const { dir, env } = sandbox();
    const up = await obra(['restate', 'up', '--port', '70000'], { cwd: dir, env });
    expect(up.stderr).toBe('obra: --port: "70000" is not a port number from 0 to 65535 (0 picks a free one)');
    expect(up.exitCode).toBe(2);
  });
});

describe.runIf(restateAvailable('test/restate/operator.test.ts (restate up)'))('obra restate up: install, free ports, and a server that dies with it', () => {
  it('without the server and without --install (no terminal): one line that says how', async () => {
    const { dir, env } = sandbox();
    const up = await obra(['restate', 'up', '--port', '0', '--admin-port', '0'], { cwd: dir, env: { ...env, OBRA_RESTATE_SERVER: join(dir, 'no-such-server') } });
    expect(up.stderr).toMatch(/^obra: the Restate server is not installed — run `obra restate up --install` \(npm installs @restatedev\/restate-server@1\.7\.12 into .*\/\.cache\/restate-server\/1\.7\.12\), or set OBRA_RESTATE_SERVER to its binary$/);
    expect(up.exitCode).toBe(2);
  });

  it.runIf(existsSync('/usr/bin/script'))('on a terminal it asks first; "n" leaves it uninstalled, with the same line', async () => {
    const { dir, env } = sandbox();
    // script(1) gives the command a terminal; the answer is typed into it.
    const asked = await execa('script', ['-qec', `node ${CLI} restate up --port 0 --admin-port 0`, '/dev/null'], { cwd: dir, env: { ...env, OBRA_RESTATE_SERVER: join(dir, 'no-such-server') }, input: 'n\n', reject: false, timeout: 30_000 });
    expect(asked.stdout).toMatch(/The Restate server 1\.7\.12 is not installed\. Install it into .*\/\.cache\/restate-server\/1\.7\.12 now \(npm, about 216 MB\)\? \[y\/N\] /);
    expect(asked.stdout).toMatch(/obra: the Restate server is not installed — run `obra restate up --install`/);
    expect(asked.exitCode).toBe(2);
  });

  it('--install takes the server from the install script\'s cache; ports 0 are free ones, printed; SIGKILL of obra restate up kills its server', async () => {
    const { dir, env } = sandbox();
    // OBRA_RESTATE_SERVER names nothing: the server is "missing", and --install finds the cached one.
    const up = execa('node', [CLI, 'restate', 'up', '--port', '0', '--admin-port', '0'].concat('--install'), { cwd: dir, env: { ...env, OBRA_RESTATE_SERVER: join(dir, 'no-such-server') }, reject: false });
    started.push(up);
    let said = '';
    up.stdout!.on('data', (chunk: Buffer) => (said += chunk.toString()));
    let errors = '';
    up.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    await until('Restate to be up', async () => said, (text) => text.includes('Ctrl-C stops the server'), 60_000);
    expect(errors).toMatch(/^obra: installing the Restate server 1\.7\.12 into .*\.cache\/restate-server\/1\.7\.12 \(npm, about 216 MB\)\.\.\.\nobra: it was installed already \(.*\/bin\/restate-server\)\n$/);
    const ingress = Number(/ingress {2}http:\/\/127\.0\.0\.1:(\d+)/.exec(said)?.[1]);
    const admin = Number(/admin {4}http:\/\/127\.0\.0\.1:(\d+)/.exec(said)?.[1]);
    expect(ingress).toBeGreaterThan(0);
    expect(admin).toBeGreaterThan(0);
    // Its own server holds both ports (the answers came from it).
    const server = portHolder(ingress)!;
    expect(server.name).toBe('restate-server');
    expect(portHolder(admin)?.pid).toBe(server.pid);
    serverPids.push(server.pid);

    up.kill('SIGKILL');
    await up;
    await until('its server to be gone', async () => isAlive(server.pid), (alive) => !alive, 5_000);
  }, 90_000);
});

describe('obra worker: refuses to listen beyond loopback unprotected', () => {
  it('--bind 0.0.0.0 without identity keys: one line, exit 2, nothing registered; --insecure goes on', async () => {
    const { dir, env } = sandbox();
    const [unused] = (await freePorts(1)) as [number];
    const flags = ['--set', `restate.ingress_url=http://127.0.0.1:${unused}`, '--set', `restate.admin_url=http://127.0.0.1:${unused}`];
    const worker = await obra(['worker', '--bind', '0.0.0.0', ...flags], { cwd: dir, env });
    expect(worker.stderr).toBe(
      'obra: --bind 0.0.0.0 lets anyone who reaches this machine call the worker, and it has no key of the server to check calls against — set restate.identity_keys to the key `obra restate up` prints, or pass --insecure to accept unsigned calls',
    );
    expect(worker.exitCode).toBe(2);
    // With --insecure it goes on (to the URL check, here: nothing listens there).
    const insecure = await obra(['worker', '--bind', '0.0.0.0', '--insecure', ...flags], { cwd: dir, env });
    expect(insecure.stderr).toBe(`obra: cannot reach Restate's admin API at http://127.0.0.1:${unused} (ECONNREFUSED) — start it with \`obra restate up\`, or set restate.ingress_url / restate.admin_url`);
  });

  it('a command whose Restate node does not answer says so (not that a worker is missing), naming every node', async () => {
    const { dir, env } = sandbox();
    const [a, b] = (await freePorts(2)) as [number, number];
    const nodes = `[http://127.0.0.1:${a}, http://127.0.0.1:${b}]`;
    const status = await obra(['status', '--engine', 'restate', '--set', `restate.ingress_url=${nodes}`, '--set', `restate.admin_url=${nodes}`], { cwd: dir, env });
    expect(status.stderr).toBe(`obra: cannot reach Restate's admin API at http://127.0.0.1:${a}, http://127.0.0.1:${b} (ECONNREFUSED) — start it with \`obra restate up\`, or set restate.ingress_url / restate.admin_url`);
    expect(status.exitCode).toBe(2);
  });
});

describe.runIf(restateAvailable('test/restate/operator.test.ts (worker URLs, no worker)'))('obra worker and the CLI against a server', () => {
  const suite = clusterPerSuite('obra-restate-operator-');

  it('a worker checks its URLs before registering anything: wrong ingress, wrong admin, unreachable admin (no hint about keys)', async () => {
    const { cluster } = suite();
    const [unused] = (await freePorts(1)) as [number];
    const run = (ingress: string, admin: string) =>
      execa('node', [CLI, 'worker', '--set', `restate.ingress_url=${ingress}`, '--set', `restate.admin_url=${admin}`, '--set', `restate.identity_keys=[${cluster.server.identityKey}]`], { cwd: cluster.root, reject: false, timeout: 30_000 });
    const { ingressUrl, adminUrl } = cluster.server;

    const wrongIngress = await run(adminUrl, adminUrl);
    expect(wrongIngress.stderr).toBe(`obra: restate.ingress_url ${adminUrl} answers, but not as Restate's ingress (GET /restate/health: HTTP 404) — point it at the ingress port of a Restate server (8080 by default)`);
    expect(wrongIngress.exitCode).toBe(2);

    const wrongAdmin = await run(ingressUrl, ingressUrl);
    expect(wrongAdmin.stderr).toBe(`obra: restate.admin_url ${ingressUrl} answers, but not as Restate's admin API (GET /version: HTTP 400) — point it at the admin port of a Restate server (9070 by default)`);
    expect(wrongAdmin.exitCode).toBe(2);

    const deadIngress = await run(`http://127.0.0.1:${unused}`, adminUrl);
    expect(deadIngress.stderr).toBe(`obra: cannot reach Restate's ingress at http://127.0.0.1:${unused} (ECONNREFUSED) — start it with \`obra restate up\`, or set restate.ingress_url / restate.admin_url`);
    expect(deadIngress.exitCode).toBe(2);

    const deadAdmin = await run(ingressUrl, `http://127.0.0.1:${unused}`);
    expect(deadAdmin.stderr).toBe(`obra: cannot reach Restate's admin API at http://127.0.0.1:${unused} (ECONNREFUSED) — start it with \`obra restate up\`, or set restate.ingress_url / restate.admin_url`);
    expect(deadAdmin.exitCode).toBe(2);

    // None of them registered itself.
    expect(await cluster.client.registeredUri()).toBeNull();
  }, 120_000);

  it("a worker runs this machine's agent (OBRA_CLAUDE_BIN), not the path the task was submitted with", async () => {
    const { cluster, workers } = suite();
    const submitted = agentBin(cluster, 'submitted', { FAKE_CLAUDE_REPLIES: JSON.stringify(['STATUS: DONE']) });
    const ownLog = join(cluster.root, 'own-claude.log');
    const own = agentBin(cluster, 'own', { FAKE_CLAUDE_LOG: ownLog, FAKE_CLAUDE_REPLIES: JSON.stringify(['All done; all tests pass.\nSTATUS: DONE']) });
    // The worker's own claude (OBRA_CLAUDE_BIN) logs elsewhere than the one the task was submitted with.
    const home = join(cluster.root, 'home-own');
    const mine = execa('node', [CLI, 'worker', '--name', 'own', ...cluster.flags], { cwd: cluster.root, env: { HOME: home, CLAUDE_CONFIG_DIR: join(home, '.claude'), FAKE_CLAUDE_LOG: cluster.log, OBRA_CLAUDE_BIN: own, NO_COLOR: '1' }, reject: false, all: true });
    workers.push(mine);
    await workerReady(mine);
    const runId = await submit(cluster, 'Write the changelog', submitted);
    const run = await until('the run to end', () => runOf(cluster, runId), (r) => ['done', 'failed', 'escalated', 'max_iterations'].includes(r.status), 60_000);
    expect(run.status).toBe('done');
    expect(existsSync(ownLog) ? readFileSync(ownLog, 'utf8').trim().split('\n').length : 0).toBe(1);
    expect(fakeCalls(cluster)).toEqual([]);
    mine.kill('SIGTERM');
    await mine;
  }, 120_000);

  it('with the server up and its worker dead, status and cancel say so within seconds, and the cancel is not applied later', async () => {
    const { cluster, workers } = suite();
    const question = 'Which database should I migrate, Postgres or MySQL?';
    const asking = agentBin(cluster, 'asking', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_REPLIES: JSON.stringify([question, question, question, 'Migrated to Postgres; all tests pass.\nSTATUS: DONE']) });
    const first = startWorker(cluster, 'doomed');
    workers.push(first);
    await workerReady(first);
    const registered = (await cluster.client.registeredUri())!;
    const runId = await submit(cluster, 'Migrate the database', asking);
    await until('the task to ask', () => runOf(cluster, runId), (r) => r.status === 'escalated');
    first.kill('SIGKILL');
    await first;

    const noWorker = `obra: Restate is up, but no worker serves Obra's services: the worker registered at ${registered} does not answer — start \`obra worker\` (it registers itself), then try again`;
    for (const command of [['status'], ['cancel', runId]]) {
      const startedAt = Date.now();
      const result = await obra([...command, '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
      expect(result.stderr, command[0]).toBe(noWorker);
      expect(result.exitCode, command[0]).toBe(1);
      expect(Date.now() - startedAt, command[0]).toBeLessThan(8_000);
    }

    // A cancel sent anyway (as when the worker dies after the check) waits in Restate: the CLI takes it back.
    const key = `test-cancel-${runId}`;
    const sent = await cluster.client.task(runId, 'send', { type: 'CANCEL', reason: 'late' }, { idempotencyKey: key, timeoutMs: 2_000 }).then(
      () => 'answered',
      (error: Error) => error.message,
    );
    expect(sent).toMatch(/^cannot reach Restate's ingress at .* \(ETIMEDOUT\)/);
    expect(await cluster.client.withdraw(key)).toBe(true);

    // A new worker: the answer goes through, and the task ends done (neither cancel is applied later).
    const second = startWorker(cluster, 'after');
    workers.push(second);
    await workerReady(second);
    const answered = await obra(['answer', runId, 'Postgres', '--engine', 'restate', ...cluster.flags], { cwd: cluster.root });
    expect(answered.exitCode, answered.stderr).toBe(0);
    const run = await until('the run to end', () => runOf(cluster, runId), (r) => ['done', 'cancelled', 'failed'].includes(r.status), 60_000);
    expect(run.status).toBe('done');
  }, 150_000);
});
