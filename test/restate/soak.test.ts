import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { describe, expect, it } from 'vitest';
import { RestateClient } from '../../src/hosts/restate/client.js';
import { freePorts, startLocalRestate, type LocalRestate } from '../../src/hosts/restate/server.js';
import { continuationPrompt } from '../../src/engine/effects.js';
import { agentProcessesOf, agentsLeftAfter, seeded } from '../durability/soak-helpers.js';
import { CLI, obra } from '../helpers/cli.js';
import { agentBin, bareRepository, restateAvailable, submit, until, type Cluster } from './helpers.js';

/**
 * Restate's soak: six moving tasks of three iterations on two workers, each with a HOME and a work dir of its own
 * (two machines), whose processes alone are SIGKILLed at random moments (as an OOM kill would) and started again,
 * and the server SIGKILLed once and started again on its data. Every task ends done, with one commit per
 * iteration on its remote branch, no prompt twice in any conversation, a replay that verifies, and no agent
 * process alive after its worker.
 */
const TASKS = 6;
const CHAOS_MS = 20_000;

describe.runIf(restateAvailable('test/restate/soak.test.ts'))('soak: Restate workers and server killed at random', () => {
  it('ends every task done, one commit and one prompt per iteration, no agent outliving its worker', { timeout: 300_000 }, async () => {
    const random = seeded(Number(process.env.OBRA_SOAK_SEED ?? Date.now() % 100_000));
    const root = mkdtempSync(join(tmpdir(), 'obra-restate-soak-'));
    const [ingressPort, adminPort, nodePort] = await freePorts(3);
    const serve = () => startLocalRestate({ dataDir: join(root, 'restate'), identity: true, ingressPort, adminPort, nodePort });
    let server: LocalRestate = await serve();
    const cluster: Cluster = {
      root,
      server,
      client: new RestateClient(server),
      flags: ['--set', `restate.ingress_url=${server.ingressUrl}`, '--set', `restate.admin_url=${server.adminUrl}`, '--set', `restate.identity_keys=[${server.identityKey}]`],
      log: join(root, 'fake-claude.log'),
    };
    const workers = new Map<string, ResultPromise>();
    const home = (name: string) => join(root, `home-${name}`);
    const start = (name: string) => {
      mkdirSync(home(name), { recursive: true });
      const worker = execa('node', [CLI, 'worker', '--name', name, '--set', 'restate.lease_seconds=2', '--work-dir', join(root, `work-${name}`), ...cluster.flags], {
        cwd: root,
        env: { HOME: home(name), CLAUDE_CONFIG_DIR: join(home(name), '.claude'), FAKE_CLAUDE_LOG: cluster.log, NO_COLOR: '1' },
        extendEnv: true,
        reject: false,
      });
      workers.set(name, worker);
    };
    try {
      start('a');
      start('b');
      await until('a worker to register', () => cluster.client.registeredUri(), (uri) => uri !== null);
      const replies = [1, 2, 3].map((turn) => ({ result: `Wrote part ${turn}.\nSTATUS: ${turn === 3 ? 'DONE' : 'CONTINUE'}`, files: { [`part-${turn}.txt`]: `part ${turn}\n` }, latency_ms: 400 + 200 * turn }));
      const bin = agentBin(cluster, 'soak', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_REPLIES: JSON.stringify(replies) });
      const remote = await bareRepository(root);
      const runIds: string[] = [];
      for (let i = 1; i <= TASKS; i++) runIds.push(await submit(cluster, `Write the three parts of module ${i}`, bin, ['--repo-url', remote]));

      // Chaos: a worker killed alone every few seconds (and started again), the server once, midway.
      const chaosEnd = Date.now() + CHAOS_MS;
      let serverKilled = false;
      while (Date.now() < chaosEnd) {
        await new Promise((resolve) => setTimeout(resolve, 2_000 + random() * 3_000));
        if (!serverKilled && Date.now() > chaosEnd - CHAOS_MS / 2) {
          serverKilled = true;
          server.process.kill('SIGKILL');
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          server = await serve();
          continue;
        }
        const name = random() < 0.5 ? 'a' : 'b';
        workers.get(name)!.kill('SIGKILL');
        await workers.get(name)!.catch(() => {});
        // Its agents die with it: nothing it started goes on.
        expect(await agentsLeftAfter(home(name), 5_000), `agents of worker ${name} alive after its kill`).toEqual([]);
        start(name);
      }
      expect(serverKilled).toBe(true);

      for (const runId of runIds) {
        const run = await until(`run ${runId} to end`, () => cluster.client.task<{ status: string }>(runId, 'get'), (r) => ['done', 'failed', 'cancelled', 'max_iterations', 'escalated', 'blocked'].includes(r.status), 150_000);
        expect(run.status, runId).toBe('done');
      }
      for (const runId of runIds) {
        const kept = await cluster.client.task<{ iterations: { index: number }[] }>(runId, 'everything');
        const indexes = kept.iterations.map((r) => r.index);
        expect(indexes, runId).toEqual(indexes.map((_, i) => i + 1));
        const trailers = await execa('git', ['-C', remote, 'log', '--format=%(trailers:key=Obra-Iteration,valueonly)', `main..obra/${runId}`]);
        expect(trailers.stdout.split('\n').filter(Boolean), runId).toEqual(indexes.map((i) => `${runId}/${i}`).reverse());
        const replay = await obra(['replay', runId, '--engine', 'restate', ...cluster.flags], { cwd: root });
        expect(replay.exitCode, `${runId}: ${replay.stderr}`).toBe(0);
      }
      // Every conversation, on every machine, holds each of its prompts once.
      for (const name of ['a', 'b']) {
        const projects = join(home(name), '.claude', 'projects');
        if (!existsSync(projects)) continue;
        for (const project of readdirSync(projects)) {
          for (const file of readdirSync(join(projects, project)).filter((f) => f.endsWith('.jsonl'))) {
            const prompts = readFileSync(join(projects, project, file), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; message: { content: string } }).filter((e) => e.type === 'user').map((e) => e.message.content).filter((p) => p !== continuationPrompt());
            expect(new Set(prompts).size, `${name}: ${file}`).toBe(prompts.length);
          }
        }
      }
    } finally {
      for (const worker of workers.values()) worker.kill('SIGKILL');
      await Promise.all([...workers.values()].map((w) => w.catch(() => {})));
      await server.stop();
    }
    for (const name of ['a', 'b']) expect(agentProcessesOf(home(name))).toEqual([]);
  });
});
