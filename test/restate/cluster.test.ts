import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ResultPromise } from 'execa';
import { RestateClient } from '../../src/hosts/restate/client.js';
import { freePorts, startLocalRestate, type LocalRestate } from '../../src/hosts/restate/server.js';
import { obra } from '../helpers/cli.js';
import { agentBin, queueLines, restateAvailable, runOf, sessionOf, fakeCalls, startWorker, submit, until, type Cluster } from './helpers.js';

const CONTINUE = (n: number) => `Step ${n} done; all tests pass.\nSTATUS: CONTINUE`;
const DONE = 'All parts done; all tests pass.\nSTATUS: DONE';

/**
 * A three-node Restate cluster on loopback (one data dir and TOML a node, replication 2, the metadata on all
 * three, provisioned by the first). The workers and the CLI are given the three nodes' URLs; the node they were
 * given first is SIGKILLed while workers drive tasks, and every task still ends, through the next URL.
 */
describe.runIf(restateAvailable('test/restate/cluster.test.ts'))('Restate: a three-node cluster that loses a node', () => {
  const nodes: LocalRestate[] = [];
  const workers: ResultPromise[] = [];

  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await Promise.all(nodes.map((n) => n.stop()));
  });

  it('every task ends done after one node is SIGKILLed mid-run', async () => {
    const root = mkdtempSync(join(tmpdir(), 'obra-restate-cluster-'));
    const ports = await freePorts(9);
    const nodePort = (i: number) => ports[i * 3]!;
    const metadata = `[metadata-client]\naddresses = [${[0, 1, 2].map((i) => `"http://127.0.0.1:${nodePort(i)}"`).join(', ')}]\n`;
    nodes.push(
      ...(await Promise.all(
        [0, 1, 2].map((i) =>
          startLocalRestate({
            dataDir: join(root, `node-${i + 1}`),
            nodeName: `node-${i + 1}`,
            nodePort: nodePort(i),
            adminPort: ports[i * 3 + 1],
            ingressPort: ports[i * 3 + 2],
            toml: [`cluster-name = "obra-test"`, `auto-provision = ${i === 0}`, 'default-replication = 2', metadata].join('\n'),
          }),
        ),
      )),
    );
    const [first] = nodes;
    const urls = { ingressUrl: nodes.map((n) => n.ingressUrl), adminUrl: nodes.map((n) => n.adminUrl) };
    const cluster: Cluster = {
      root,
      server: first!,
      client: new RestateClient(urls),
      // A list, as in obra.yaml (`ingress_url: [a, b, c]`).
      flags: ['--set', `restate.ingress_url=[${urls.ingressUrl.join(', ')}]`, '--set', `restate.admin_url=[${urls.adminUrl.join(', ')}]`],
      log: join(root, 'fake-claude.log'),
    };
    const bin = agentBin(cluster, 'steady', { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: '700', FAKE_CLAUDE_REPLIES: JSON.stringify([CONTINUE(1), CONTINUE(2), DONE]) });
    workers.push(startWorker(cluster, 'w1', ['--concurrency', '4']), startWorker(cluster, 'w2', ['--concurrency', '4']));
    await until('a worker to register', () => cluster.client.registeredUri(), (uri) => uri !== null, 60_000);
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await submit(cluster, `Part ${i}`, bin));

    // Mid-run: the node every worker and command was given first dies.
    await until('the tasks to be under way', () => Promise.all(ids.map((id) => runOf(cluster, id))), (runs) => runs.filter((r) => r.iterations >= 1).length >= 2, 60_000);
    nodes[0]!.process.kill('SIGKILL');

    const lines = await until('every task to end', () => queueLines(cluster), (ls) => ids.every((id) => ['done', 'failed', 'cancelled', 'max_iterations'].includes(ls.find((l) => l.runId === id)?.status ?? '')), 120_000);
    expect(ids.map((id) => lines.find((l) => l.runId === id)!.status)).toEqual(ids.map(() => 'done'));
    expect(ids.map((id) => lines.find((l) => l.runId === id)!.iterations)).toEqual(ids.map(() => 3));
    // No worker lost its tasks for want of the dead node: each task was driven by one worker from start to end
    // (a claim cut by the node's death and sent again to the next one gives the same worker a new epoch).
    for (const id of ids) expect(new Set((await runOf(cluster, id)).workers).size).toBe(1);
    // The CLI goes through the next node too, and says which one does not answer.
    const status = await obra(['status', '--engine', 'restate', ...cluster.flags], { cwd: root });
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stderr).toBe(`obra: note: Restate's node ${first!.ingressUrl} does not answer (ECONNREFUSED); the others do`);
    for (const id of ids) expect(status.stdout).toMatch(new RegExp(`^${id}\\s+done\\s+3\\s`, 'm'));
    // Still one call at a time per session.
    const calls = fakeCalls(cluster).filter((c) => sessionOf(c));
    const bySession = new Map<string, typeof calls>();
    for (const call of calls) bySession.set(sessionOf(call)!, [...(bySession.get(sessionOf(call)!) ?? []), call]);
    for (const [, list] of bySession) {
      list.sort((a, b) => a.startedAt - b.startedAt);
      for (let i = 1; i < list.length; i++) expect(list[i]!.startedAt).toBeGreaterThanOrEqual(list[i - 1]!.at);
    }
  }, 240_000);
});
