/**
 * bench/board — the workbench under a store of 5,000 tasks (issue 22), against a real `obra view` process:
 *   1. the board's first page ready on the server (GET /, the whole HTML)            target ≤ 300 ms
 *   2. a journal line written → its card on an open board's stream                   target ≤ 500 ms
 *   3. ten open, idle boards: the server's CPU time over 10 s                          target ≤ 1 % of a core
 *   4. an agent event printed by the CLI → on its run page's stream (`obra work`)     target ≤ 300 ms
 *   5. `obra mcp`'s submit_task answered (SDK client over stdio)                       target ≤ 200 ms
 * Medians; printed beside the store's size.
 *
 *   npm run bench:board        (TASKS=5000, ROUNDS=9 by default)
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ScriptedAgent } from '../../src/agents/scripted-agent.js';
import { configSchema } from '../../src/config/schema.js';
import { runTask } from '../../src/index.js';
import type { JournalStep } from '../../src/persisted/journal-entry.js';
import { RunStore } from '../../src/store/run-store.js';
import { openStream } from '../../fixtures/sse-stream.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const TIMED_CLAUDE = join(import.meta.dirname, 'timed-claude.mjs');
const TASKS = Number(process.env.TASKS ?? 5000);
const ROUNDS = Number(process.env.ROUNDS ?? 9);
const AGENTS = ['claude', 'codex', 'gemini', 'qwen'] as const;
// No queued ones: `obra work` in part 4 would take them.
const STATUSES = ['done', 'done', 'done', 'failed', 'max_iterations', 'cancelled', 'paused', 'escalated'] as const;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A store of TASKS runs: one real run (its journal copied into the others), the rest its copies in many states. */
async function makeStore(): Promise<{ dir: string; storeDir: string; repo: string; git: string; touched: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'obra-bench-board-'));
  const storeDir = join(dir, 'store');
  const repo = join(dir, 'work');
  execFileSync('mkdir', ['-p', repo]);
  const agent = new ScriptedAgent((request) => `Step ${request.index}: one more module.\nSTATUS: ${request.index === 3 ? 'DONE' : 'CONTINUE'}`);
  const real = await runTask({ task: 'Refactor three modules', workdir: repo, storeDir, agent, config: configSchema.parse({ task: { max_iterations: 3 } }) });
  const store = RunStore.open(storeDir);
  const template = store.openRun(real.runId);
  const file = template.file;
  // Its lines only (the file is preallocated: the zeros after them are not copied).
  const text = readFileSync(join(template.dir, 'journal.jsonl'), 'utf8');
  const journal = text.slice(0, text.lastIndexOf('\n') + 1);
  template.close();
  const touched: string[] = [];
  const day = 86_400_000;
  for (let i = 1; i < TASKS; i++) {
    const runId = `20261120-${String(100000 + i)}-${i.toString(16).padStart(6, '0')}`;
    const kind = AGENTS[i % AGENTS.length]!;
    const status = STATUSES[i % STATUSES.length]!;
    const createdAt = new Date(Date.now() - (i % 14) * day - i * 1000).toISOString();
    const run = store.createRun({ runId, task: { ...file.task, text: `Task ${i}: refactor module ${i % 97}` }, createdAt, sessionId: file.sessionId, config: file.config, input: file.input, agent: { ...file.agent, kind } });
    run.update({ status, reason: status === 'done' ? 'the agent reports done' : `ended ${status}`, finishedAt: new Date().toISOString(), iterations: 3, totalCostUsd: Math.round((0.01 + (i % 13) * 0.007) * 1e4) / 1e4 });
    writeFileSync(join(run.dir, 'journal.jsonl'), journal);
    run.close();
    if (status === 'done' && touched.length < ROUNDS + 2) touched.push(runId);
  }
  // A git repository for the tasks queued during the bench (a worktree each: the folder above is taken).
  const git = join(dir, 'repo');
  execFileSync('git', ['init', '-q', '-b', 'main', git]);
  writeFileSync(join(git, 'README.md'), '# bench\n');
  execFileSync('git', ['-C', git, 'add', '-A']);
  execFileSync('git', ['-C', git, '-c', 'user.name=bench', '-c', 'user.email=bench@example.com', 'commit', '-qm', 'start']);
  return { dir, storeDir, repo, git, touched };
}

/** `obra view` in its own process, and the URL it prints. */
async function startView(storeDir: string, cwd: string) {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'view', '--db', storeDir, '--port', '0'], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  const url = await new Promise<URL>((resolveUrl, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /Viewer: (http:\/\/\S+) /.exec(stderr);
      if (match) resolveUrl(new URL(match[1]!));
    });
    child.on('exit', () => reject(new Error(`obra view ended:\n${stderr}`)));
  });
  return { child, base: url.origin, token: url.searchParams.get('token')!, startMs: performance.now() - started };
}

/** The CPU time (user + system, ms) a process has used so far. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100;
}


async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(2);
  }
}

/** A journal line as a worker writes it: the run's last state again, its task machine waiting for a human. */
function writeJournalLine(storeDir: string, runId: string): number {
  const handle = RunStore.open(storeDir, { create: false }).openRun(runId);
  try {
    const last = handle.journal.latest().entry!;
    const snapshot = { ...(last.snapshot as Record<string, unknown>), value: 'awaitingHuman' };
    const step: JournalStep = { at: Date.now(), actor: 'task', task: String(snapshot.value), iteration: null, event: { type: 'bench.touch' }, snapshot } as JournalStep;
    handle.journal.add(step, { checkpoint: true });
    // Written (readers see it) once commit returns; not made durable: the bench times the board, not the disk.
    handle.journal.commit(false);
    return Date.now();
  } finally {
    handle.close();
  }
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  const made = performance.now();
  const { dir, storeDir, repo, git, touched } = await makeStore();
  const storeMb = Number(execFileSync('du', ['-sk', storeDir], { encoding: 'utf8' }).split('\t')[0]) / 1024;
  process.stderr.write(`store: ${TASKS} tasks, ${storeMb.toFixed(1)} MB (made in ${((performance.now() - made) / 1000).toFixed(1)} s)\n`);
  const view = await startView(storeDir, repo);
  const rows: [string, string, string, string][] = [];
  try {
    // 1 and 2. A journal line reaches an open board; then the board's first page, worked out anew after that change.
    const board = await openStream(`${view.base}/api/board/events`);
    await until(() => board.events.some((e) => e.event === 'ready'));
    await sleep(300);
    const pushes: number[] = [];
    const pages: number[] = [];
    const again: number[] = [];
    let bytes = 0;
    const page = async () => {
      const t0 = performance.now();
      bytes = (await (await fetch(`${view.base}/`)).text()).length;
      return performance.now() - t0;
    };
    for (let i = 0; i < ROUNDS; i++) {
      const runId = touched[i]!;
      const from = board.events.length;
      const at = writeJournalLine(storeDir, runId);
      await until(() => board.events.slice(from).some((e) => e.event === 'tasks' && (e.data as { tasks: { runId: string }[] }).tasks.some((t) => t.runId === runId)));
      pushes.push(board.events.slice(from).find((e) => e.event === 'tasks')!.at - at);
      pages.push(await page());
      again.push(await page());
      await sleep(150);
    }
    rows.push(['board first page ready (GET /), after a change', `${median(pages).toFixed(1)} ms`, '≤ 300 ms', `${(bytes / 1024).toFixed(0)} KB of HTML; unchanged store: ${median(again).toFixed(1)} ms; server up in ${view.startMs.toFixed(0)} ms`]);
    rows.push(['journal line → open board stream', `${median(pushes).toFixed(1)} ms`, '≤ 500 ms', `max ${Math.max(...pushes).toFixed(0)} ms`]);
    board.close();

    // 3. Ten open idle boards.
    const boards = await Promise.all(Array.from({ length: 10 }, () => openStream(`${view.base}/api/board/events`)));
    await until(() => boards.every((b) => b.events.some((e) => e.event === 'ready')));
    await sleep(1000);
    const cpu0 = cpuMs(view.child.pid!);
    const wall0 = performance.now();
    await sleep(10_000);
    const share = ((cpuMs(view.child.pid!) - cpu0) / (performance.now() - wall0)) * 100;
    rows.push(['ten idle boards: server CPU over 10 s', `${share.toFixed(2)} % of a core`, '≤ 1 %', '']);
    for (const b of boards) b.close();

    // 4. An agent event printed by the CLI → its run page's stream (`obra submit` + `obra work`).
    const printed = join(storeDir, '..', 'printed.jsonl');
    const runId = 'bench-live-run';
    const files = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`f${i}.txt`, `${i}\n`]));
    const replies = Array.from({ length: 3 }, (_, k) => ({ result: `Round ${k + 1}.\nSTATUS: ${k === 2 ? 'DONE' : 'CONTINUE'}`, files, latency_ms: 200 }));
    const env = { ...process.env, OBRA_CLAUDE_BIN: TIMED_CLAUDE, BENCH_PRINTED: printed, FAKE_CLAUDE_REPLIES: JSON.stringify(replies), FAKE_CLAUDE_REPLY_BY: 'turn', CLAUDE_CONFIG_DIR: join(storeDir, '..', '.claude') };
    execFileSync(process.execPath, [CLI, 'submit', '--task', 'Write five files, three times', '--run-id', runId, '--repo', git, '--db', storeDir], { env, stdio: 'ignore' });
    const stream = await openStream(`${view.base}/api/runs/${runId}/events`);
    await until(() => stream.events.some((e) => e.event === 'ready'));
    // Not execFileSync: this process must read the stream while the worker runs.
    const worker = spawn(process.execPath, [CLI, 'work', '--until-idle', '--db', storeDir, '--set', 'task.max_iterations=3'], { env, stdio: 'ignore', cwd: git });
    await new Promise((r) => worker.once('exit', r));
    await sleep(500);
    const prints = existsSync(printed) ? readFileSync(printed, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { at: number; files: string[]; texts: string[] }) : [];
    const arrivals = stream.events.filter((e) => e.event === 'events').flatMap((e) => (e.data as { kind: string; file?: string; text?: string }[]).map((ev) => ({ ev, at: e.at })));
    const used = new Set<number>();
    const lags: number[] = [];
    for (const p of prints) {
      const wanted = (ev: { kind: string; file?: string; text?: string }) => (p.files.length ? ev.kind === 'tool' && ev.file === p.files[0] : ev.kind === 'text' && ev.text === p.texts[0]);
      const k = arrivals.findIndex((a, idx) => !used.has(idx) && a.at >= p.at - 5 && wanted(a.ev));
      if (k < 0) continue;
      used.add(k);
      lags.push(arrivals[k]!.at - p.at);
    }
    rows.push(['agent event printed → run page stream', lags.length ? `${median(lags).toFixed(1)} ms` : 'none seen', '≤ 300 ms', `${lags.length} of ${prints.length} events matched; max ${lags.length ? Math.max(...lags).toFixed(0) : '-'} ms`]);
    stream.close();

    // 5. obra mcp's submit_task.
    const client = new Client({ name: 'bench-board', version: '1.0.0' });
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'mcp', '--db', storeDir], cwd: repo, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, stderr: 'ignore' });
    await client.connect(transport);
    await client.listTools();
    const submits: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      const result = (await client.callTool({ name: 'submit_task', arguments: { task: `MCP task ${i}`, repo: git } })) as { isError?: boolean; content: { text: string }[] };
      submits.push(performance.now() - t0);
      if (result.isError) throw new Error(result.content[0]!.text);
    }
    await client.close();
    rows.push(["obra mcp's submit_task answered", `${median(submits).toFixed(1)} ms`, '≤ 200 ms', `first ${submits[0]!.toFixed(0)} ms`]);
  } finally {
    view.child.kill('SIGINT');
    await new Promise((r) => view.child.once('exit', r));
    if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
  }
  const out = [`bench/board — ${TASKS} tasks, store ${storeMb.toFixed(1)} MB, medians of ${ROUNDS}; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`, '', '| measure | median | target | note |', '|---|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  process.stdout.write(`${out}\n`);
  writeFileSync(join(import.meta.dirname, 'last-run.md'), `${out}\n`);
}

await main();
