/**
 * bench/restate — Obra on Restate (a real single-node server on loopback, started here), in three parts:
 *   1. engine cost per iteration: the same tasks, an in-process agent that answers at once, one at a time,
 *      on Restate (a worker in this process) and on local files (runTask), rounds interleaved; printed side by
 *      side with the ratio, and the engine's share of an iteration whose agent call takes 10 s;
 *   2. scale-out the way users run it: 64 tasks × 3 iterations through fixtures/fake-claude, whose calls wait
 *      6 s (they do not burn CPU), each `obra worker` process capped at 8 tasks in flight: wall time with 1, 2
 *      and 4 workers, speed-up ÷ workers, and the CPU a call costs the workers, the agents and the server;
 *   3. storage, with a 200 KB transcript: the bytes a worker sends to Restate per iteration (2 KB and 200 KB
 *      transcripts, measured on the wire by a proxy in front of the ingress), the calls an idle `obra worker`
 *      makes in 20 s, and the growth of the server's data dir per 100 iterations.
 *
 *   npm run bench:restate                         (needs the server: node scripts/install-restate-server.mjs)
 *   npm run bench:restate -- --tasks 20 --iterations 5 --rounds 3 --fleet 64 --latency 6000 --idle 20 --only 1,2,3
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { transcriptPath } from '../../src/agents/claude-code-agent.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { callsMade, RestateClient } from '../../src/hosts/restate/client.js';
import type { QueueLine } from '../../src/hosts/restate/model.js';
import { startLocalRestate, type LocalRestate } from '../../src/hosts/restate/server.js';
import { submitToRestate } from '../../src/hosts/restate/submit.js';
import { startRestateWorker } from '../../src/hosts/restate/worker.js';
import { runTask } from '../../src/index.js';
import { machineLine, median, met, table } from '../fleet/common.js';
import { startIngressMeter, type MeteredCall } from './ingress-meter.js';

const arg = (name: string, fallback: number) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? Number(process.argv[at + 1]) : fallback;
};
const only = (process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1]! : '1,2,3').split(',').map(Number);
const ROOT = join(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const FAKE_CLAUDE = join(ROOT, 'fixtures/fake-claude');

const agentFor = (iterations: number) =>
  new ScriptedAgent((request) =>
    request.index < iterations ? `Step ${request.index}: split one more part; all tests pass.\nSTATUS: CONTINUE` : `Step ${request.index}: all parts split; all tests pass.\nSTATUS: DONE`,
  );

/** Polls `probe` every `everyMs` (part 2 polls the queue's list, which costs the server: not too often). */
async function until(probe: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Part 1, Restate: `tasks` tasks one after another, driven by a worker in this process. */
async function restateRound(server: LocalRestate, root: string, tasks: number, iterations: number): Promise<number> {
  const config = configSchema.parse({ task: { max_iterations: iterations + 2 } });
  const client = new RestateClient(server);
  const controller = new AbortController();
  // The worker's own news says when a task settled (polling the task would add its interval to every task).
  const ended = new Map<string, string>();
  const waiting = new Map<string, (status: string) => void>();
  const onEvent = (runId: string, event: { type: string; status?: string }) => {
    if (event.type !== 'settled') return;
    ended.set(runId, event.status ?? '');
    waiting.get(runId)?.(event.status ?? '');
  };
  const worker = await startRestateWorker({ ...server, concurrency: 1, pollMs: 20, agent: () => agentFor(iterations), signal: controller.signal, onEvent });
  const started = performance.now();
  for (let i = 0; i < tasks; i++) {
    const dir = join(root, `r-${Date.now()}-${i}`);
    mkdirSync(dir);
    const runIds = await submitToRestate([{ task: 'Split the parser', repo: dir }], { ...server, config });
    const runId = runIds[0]!;
    const status = ended.get(runId) ?? (await new Promise<string>((resolve) => waiting.set(runId, resolve)));
    if (status !== 'done') throw new Error(`run ${runId} ended ${status} on Restate (${(await client.task<{ reason: string }>(runId, 'get')).reason})`);
  }
  const ms = performance.now() - started;
  controller.abort();
  await worker.done;
  return ms / (tasks * iterations);
}

/** Part 1, local files: the same tasks through runTask. */
async function localRound(root: string, tasks: number, iterations: number): Promise<number> {
  const config = configSchema.parse({ task: { max_iterations: iterations + 2 } });
  const storeDir = join(root, `store-${Date.now()}`);
  const started = performance.now();
  for (let i = 0; i < tasks; i++) {
    const dir = join(root, `l-${Date.now()}-${i}`);
    mkdirSync(dir);
    const result = await runTask({ task: 'Split the parser', workdir: dir, storeDir, config, agent: agentFor(iterations) });
    if (result.status !== 'done') throw new Error(`local run ended ${result.status}`);
  }
  return (performance.now() - started) / (tasks * iterations);
}

/** A process's CPU so far, in ms: its own, and its children's that it has waited for (/proc/<pid>/stat; Linux). */
function cpuOf(pid: number | undefined): { own: number; children: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ms = (i: number) => (Number(fields[i]) * 1000) / TICKS_PER_SECOND;
    // Fields 14-17 of the file (utime, stime, cutime, cstime) are 11-14 after the command name.
    return { own: ms(11) + ms(12), children: ms(13) + ms(14) };
  } catch {
    return { own: NaN, children: NaN };
  }
}
const TICKS_PER_SECOND = 100;

interface ScaleOutRun {
  wallMs: number;
  done: number;
  /** CPU ms per agent call: the workers' own, the agent processes' (fake-claude), the Restate server's. */
  cpu: { workers: number; agents: number; server: number };
}

/** Part 2: `workers` obra worker processes, `fleet` tasks of 3 iterations through fake-claude. */
async function scaleOut(workers: number, fleet: number, latencyMs: number): Promise<ScaleOutRun> {
  const root = mkdtempSync(join(tmpdir(), 'obra-bench-restate-scale-'));
  const server = await startLocalRestate({ dataDir: join(root, 'restate') });
  const flags = ['--set', `restate.ingress_url=${server.ingressUrl}`, '--set', `restate.admin_url=${server.adminUrl}`];
  const env = { FAKE_CLAUDE_REPLY_BY: 'turn', FAKE_CLAUDE_LATENCY_MS: String(latencyMs), FAKE_CLAUDE_REPLIES: JSON.stringify(['Step 1 done; tests pass.\nSTATUS: CONTINUE', 'Step 2 done; tests pass.\nSTATUS: CONTINUE', 'All done; tests pass.\nSTATUS: DONE']) };
  const procs: ResultPromise[] = [];
  try {
    for (let w = 0; w < workers; w++) {
      const home = join(root, `home-${w}`);
      mkdirSync(home);
      procs.push(execa('node', [CLI, 'worker', '--name', `w${w + 1}`, '--concurrency', '8', '--quiet', ...flags], { cwd: root, env: { ...env, HOME: home, CLAUDE_CONFIG_DIR: join(home, '.claude') }, reject: false }));
    }
    const client = new RestateClient(server);
    await until(async () => (await client.registeredUri()) !== null, 30_000, 'a worker to register');
    const config = configSchema.parse({ agent: { local: { command: FAKE_CLAUDE } }, task: { max_iterations: 5 } });
    const tasks = Array.from({ length: fleet }, (_, i) => {
      const dir = join(root, `task-${i}`);
      mkdirSync(dir);
      return { task: `Part ${i}`, repo: dir };
    });
    const serverBefore = cpuOf(server.process.pid).own;
    const workersBefore = procs.map((p) => cpuOf(p.pid));
    const started = performance.now();
    const ids = await submitToRestate(tasks, { ...server, config });
    let done = 0;
    await until(
      async () => {
        const lines = await client.queue<QueueLine[]>('list');
        done = ids.filter((id) => lines.find((l) => l.runId === id)?.status === 'done').length;
        return lines.filter((l) => ids.includes(l.runId) && ['done', 'failed', 'cancelled', 'max_iterations'].includes(l.status)).length === ids.length;
      },
      10 * 60_000,
      'every task to end',
      250,
    );
    const wallMs = performance.now() - started;
    const calls = fleet * 3;
    const workersAfter = procs.map((p) => cpuOf(p.pid));
    const sum = (key: 'own' | 'children') => workersAfter.reduce((total, after, i) => total + after[key] - workersBefore[i]![key], 0);
    return { wallMs, done, cpu: { workers: sum('own') / calls, agents: sum('children') / calls, server: (cpuOf(server.process.pid).own - serverBefore) / calls } };
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.catch(() => {})));
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

/** Bytes in a folder, all files under it. */
function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += bytesUnder(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

/** An agent that writes its turns into the CLI's transcript as the CLI does, its first one `pad` bytes long. */
function transcriptAgent(pad: number, iterations: number): ScriptedAgent {
  return new ScriptedAgent((request, call) => {
    const path = transcriptPath(request.sessionId!, request.workdir, process.env);
    mkdirSync(dirname(path), { recursive: true });
    // Incompressible, as a conversation's tool output nearly is.
    const text = call === 0 ? randomBytes(pad).toString('base64').slice(0, pad) : `Step ${request.index}: split one more part; all tests pass.`;
    appendFileSync(path, `${JSON.stringify({ type: 'assistant', message: { role: 'assistant', content: text } })}\n`);
    return request.index < iterations ? `Step ${request.index}: split one more part; all tests pass.\nSTATUS: CONTINUE` : `Step ${request.index}: all parts split.\nSTATUS: DONE`;
  }, { sessionFile: (id, workdir) => transcriptPath(id, workdir, process.env) });
}

/**
 * Part 3: what a worker sends and keeps in Restate. Bytes per iteration from the ingress meter (requests about the
 * run after its first iteration: the first call wrote the big turn); the idle `obra worker` process's calls to the
 * ingress and to the admin API (each behind a meter); the data dir before and after 100 iterations.
 */
async function storage(idleSeconds: number): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'obra-bench-restate-storage-'));
  const server = await startLocalRestate({ dataDir: join(root, 'restate') });
  const meter = await startIngressMeter(server.ingressUrl);
  const configDir = process.env.CLAUDE_CONFIG_DIR;
  process.env.CLAUDE_CONFIG_DIR = join(root, 'claude');
  const controller = new AbortController();
  const ended = new Map<string, (status: string) => void>();
  const pads = new Map<string, { pad: number; iterations: number }>();
  const worker = await startRestateWorker({
    ingressUrl: meter.url,
    adminUrl: server.adminUrl,
    concurrency: 1,
    signal: controller.signal,
    agent: (run) => transcriptAgent(pads.get(run.runId)!.pad, pads.get(run.runId)!.iterations),
    onEvent: (runId, event) => {
      if (event.type === 'settled') ended.get(runId)?.((event as { status: string }).status);
    },
  });
  const runOne = async (pad: number, iterations: number): Promise<MeteredCall[]> => {
    const dir = mkdtempSync(join(root, 'task-'));
    const config = configSchema.parse({ task: { max_iterations: iterations + 2 } });
    const runId = `bench-${Date.now()}-${pad}-${iterations}`;
    pads.set(runId, { pad, iterations });
    const status = new Promise<string>((resolve) => ended.set(runId, resolve));
    await submitToRestate([{ task: 'Split the parser', repo: dir, runId }], { ...server, config });
    if ((await status) !== 'done') throw new Error(`run ${runId} ended ${await status}`);
    return meter.calls.filter((c) => c.path.startsWith(`/ObraTask/${runId}/`));
  };
  try {
    // The data dir first, on the fresh server (later, its memtables of the other runs' data would be flushed to
    // disk meanwhile): settled, then 100 iterations of one task with a 200 KB transcript.
    await new Promise((r) => setTimeout(r, 3_000));
    const before = bytesUnder(join(root, 'restate'));
    await runOne(200_000, 100);
    await new Promise((r) => setTimeout(r, 3_000));
    const growth = bytesUnder(join(root, 'restate')) - before;
    const iterations = 20;
    const perIteration = new Map<number, number>();
    for (const pad of [2_000, 200_000]) {
      const calls = await runOne(pad, iterations);
      // From the write that carried the first iteration's record (a record rides on the drive's next write).
      const afterFirst = calls.slice(calls.findIndex((c) => c.records) + 1);
      perIteration.set(pad, afterFirst.reduce((sum, c) => sum + c.bytes, 0) / (iterations - 1));
    }
    controller.abort();
    await worker.done;

    // An idle `obra worker` process, its ingress and admin calls each through a meter.
    const admin = await startIngressMeter(server.adminUrl);
    const home = join(root, 'home-idle');
    mkdirSync(home);
    const idle = execa('node', [CLI, 'worker', '--name', 'idle', '--quiet', '--set', `restate.ingress_url=${meter.url}`, '--set', `restate.admin_url=${admin.url}`], { cwd: root, env: { HOME: home, CLAUDE_CONFIG_DIR: join(home, '.claude') }, reject: false });
    const client = new RestateClient(server);
    await until(async () => admin.calls.length > 0 && ![null, worker.uri].includes(await client.registeredUri()), 30_000, 'the idle worker to register');
    await new Promise((r) => setTimeout(r, 2_000));
    const from = Date.now();
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const ingressCalls = meter.calls.filter((c) => c.at >= from && c.at < from + idleSeconds * 1000).length;
    const adminCalls = admin.calls.filter((c) => c.at >= from && c.at < from + idleSeconds * 1000).length;
    idle.kill('SIGTERM');
    await idle;
    await admin.close();

    const [small, large] = [perIteration.get(2_000)!, perIteration.get(200_000)!];
    const idleRate = ingressCalls / idleSeconds;
    process.stdout.write(`## 3. Storage: what a worker sends to Restate and what the server keeps\n\n`);
    process.stdout.write(
      `${table(
        ['measure', 'value', 'target'],
        [
          ['bytes sent to Restate per iteration, 2 KB transcript', small.toFixed(0), '—'],
          ['bytes sent to Restate per iteration, 200 KB transcript', large.toFixed(0), `independent of its length: ${met(large < small * 1.1 + 500)}`],
          [`idle \`obra worker\`: ingress calls a second (over ${idleSeconds} s)`, idleRate.toFixed(2), `≤ 0.2: ${met(idleRate <= 0.2)}`],
          [`idle \`obra worker\`: admin API requests a second (its registration watchdog)`, (adminCalls / idleSeconds).toFixed(2), '—'],
          ['server data dir growth over 100 iterations, 200 KB transcript (MB)', (growth / 1e6).toFixed(2), `≤ 1 MB: ${met(growth <= 1e6)}`],
        ],
      )}\n\n`,
    );
  } finally {
    controller.abort();
    if (configDir === undefined) delete process.env.CLAUDE_CONFIG_DIR;
    else process.env.CLAUDE_CONFIG_DIR = configDir;
    await meter.close();
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

async function main() {
  const started = Date.now();
  process.stdout.write(`bench/restate, ${new Date().toISOString()}\n${machineLine()}\n\n`);
  if (only.includes(1)) {
    const tasks = arg('tasks', 20);
    const iterations = arg('iterations', 5);
    const rounds = arg('rounds', 3);
    const root = mkdtempSync(join(tmpdir(), 'obra-bench-restate-'));
    const server = await startLocalRestate({ dataDir: join(root, 'restate') });
    try {
      // Warm-up (modules, JIT, the server's first partitions), not measured.
      await restateRound(server, root, 2, iterations);
      await localRound(root, 2, iterations);
      const restate: number[] = [];
      const local: number[] = [];
      callsMade.clear();
      for (let r = 0; r < rounds; r++) {
        restate.push(await restateRound(server, root, tasks, iterations));
        local.push(await localRound(root, tasks, iterations));
      }
      const [r, l] = [median(restate), median(local)];
      const share = r / (10_000 + r);
      process.stdout.write(`## 1. Engine cost per iteration: ${tasks} tasks × ${iterations} iterations, one at a time, an in-process agent that answers at once; median of ${rounds} interleaved rounds\n\n`);
      process.stdout.write(
        `${table(
          ['host', 'ms per iteration (median)', 'all rounds', 'vs local files'],
          [
            ['Restate (single node, loopback; a worker in this process)', r.toFixed(2), restate.map((x) => x.toFixed(2)).join(' / '), `${(r / l).toFixed(2)}×`],
            ['local files (runTask)', l.toFixed(2), local.map((x) => x.toFixed(2)).join(' / '), '1.00×'],
          ],
        )}\n\n`,
      );
      const perIteration = [...callsMade].filter(([key]) => !key.endsWith('/submit')).map(([key, n]) => [key, n / (rounds * tasks * iterations)] as const);
      const total = perIteration.reduce((sum, [, n]) => sum + n, 0);
      process.stdout.write(`Calls a worker makes to Restate per iteration: ${total.toFixed(2)} (${perIteration.map(([key, n]) => `${key} ${n.toFixed(2)}`).join(', ')}).\n`);
      process.stdout.write(`With a 10 s agent call, the engine's share of an iteration on Restate: ${(share * 100).toFixed(3)} % (target < 1 %: ${met(share < 0.01)}).\n\n`);
    } finally {
      await server.stop();
      rmSync(root, { recursive: true, force: true });
    }
  }
  if (only.includes(2)) {
    const fleet = arg('fleet', 64);
    const latency = arg('latency', 6000);
    const rows: string[][] = [];
    const walls = new Map<number, number>();
    for (const workers of [1, 2, 4]) {
      const { wallMs, done, cpu } = await scaleOut(workers, fleet, latency);
      walls.set(workers, wallMs);
      const ideal = Math.ceil(fleet / (8 * workers)) * 3 * latency;
      const speedUp = walls.get(1)! / wallMs;
      const perCall = `${cpu.workers.toFixed(0)} / ${cpu.agents.toFixed(0)} / ${cpu.server.toFixed(0)}`;
      rows.push([String(workers), `${done}/${fleet}`, (wallMs / 1000).toFixed(1), (ideal / 1000).toFixed(1), `${speedUp.toFixed(2)}×`, (speedUp / workers).toFixed(2), perCall]);
    }
    process.stdout.write(`## 2. Scale-out: ${fleet} tasks × 3 iterations, fake-claude calls that wait ${latency / 1000} s, 8 tasks in flight per worker\n\n`);
    process.stdout.write(`${table(['workers', 'done', 'wall s', 'ideal s', 'speed-up vs 1 worker', 'speed-up ÷ workers', 'CPU ms a call: worker / agent (fake-claude) / server'], rows)}\n\n`);
    const two = walls.get(1)! / walls.get(2)! / 2;
    const four = walls.get(1)! / walls.get(4)! / 4;
    process.stdout.write(`Speed-up ÷ workers: ${two.toFixed(2)} at 2 (target ≥ 0.9: ${met(two >= 0.9)}), ${four.toFixed(2)} at 4 (target ≥ 0.85: ${met(four >= 0.85)}).\n\n`);
  }
  if (only.includes(3)) await storage(arg('idle', 20));
  process.stdout.write(`(bench/restate took ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
}

await main();
