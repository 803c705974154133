import { resolve } from 'node:path';
import { shownStatus, type StatusLine } from '../core/status-line.js';
import { costText, tokensText, usageByAgent } from '../core/usage-totals.js';
import { TaskLineReader } from '../queue/board.js';
import { attemptEnded } from '../race/decision.js';
import { conflictText } from '../queue/overlap.js';
import { configFrom } from './config-from.js';

/**
 * `obra status`: one line per task. `--watch` keeps it on screen: redrawn in place in a terminal, and as plain
 * lines (only the tasks whose line changed) when the output is a pipe or a file, so that a log stays readable.
 */

export interface StatusFlags {
  db?: string;
  config?: string;
  json?: boolean;
  watch?: boolean;
  /** How often --watch looks (ms). */
  intervalMs?: number;
  /** Ends --watch (besides Ctrl-C). */
  signal?: AbortSignal;
  /** Only the sums per agent kind (`--by-agent`). */
  byAgent?: boolean;
}

export async function showStatus(flags: StatusFlags, out: NodeJS.WriteStream | NodeJS.WritableStream = process.stdout): Promise<void> {
  const storeDir = resolve(flags.db ?? configFrom(flags).store.dir);
  // --watch reads again only the runs whose files changed since its last look.
  const reader = new TaskLineReader(storeDir);
  if (flags.byAgent) {
    const sums = usageByAgent(reader.lines());
    out.write(flags.json ? `${JSON.stringify(sums, null, 2)}\n` : sumsText(sums) || 'No agent calls yet.\n');
    return;
  }
  await showLines({ read: () => reader.lines(), table: statusTable, row: statusRow, steady: withoutAge }, flags, out);
}

/** How a kind of task line is read and shown (the store's, Restate's). */
export interface LineSource<T extends { runId: string }> {
  read(): T[] | Promise<T[]>;
  table(lines: T[]): string;
  row(line: T): string[];
  /** The line without what changes by itself (an age): a plain line is written again only when the rest did. */
  steady(line: T): unknown;
}

/** Prints the lines once, or (`--watch`) follows them: redrawn in a terminal, changed lines only elsewhere. */
export async function showLines<T extends { runId: string }>(source: LineSource<T>, flags: StatusFlags, out: NodeJS.WriteStream | NodeJS.WritableStream = process.stdout): Promise<void> {
  if (!flags.watch) {
    const lines = await source.read();
    out.write(flags.json ? `${JSON.stringify(lines, null, 2)}\n` : source.table(lines));
    return;
  }
  const tty = 'isTTY' in out && Boolean(out.isTTY) && !flags.json;
  const seen = new Map<string, string>();
  let stopped = false;
  let wake = () => {};
  const stop = () => {
    stopped = true;
    wake();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  flags.signal?.addEventListener('abort', stop, { once: true });
  try {
    while (!stopped && !flags.signal?.aborted) {
      const lines = await source.read();
      if (tty) out.write(`\x1b[H\x1b[2J${new Date().toISOString().slice(11, 19)} UTC — obra status (Ctrl-C to stop)\n\n${source.table(lines)}`);
      else {
        for (const line of lines) {
          const key = JSON.stringify(source.steady(line));
          if (seen.get(line.runId) === key) continue;
          seen.set(line.runId, key);
          const warnings = !flags.json && 'conflicts' in line ? conflictLines(line as unknown as StatusLine) : '';
          out.write(flags.json ? `${key}\n` : `${new Date().toISOString().slice(11, 19)} ${source.row(line).join('  ')}\n${warnings}`);
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, flags.intervalMs ?? 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

const HEADER = ['RUN', 'STATUS', 'AGENT', 'STATE', 'ITER', 'DECISION', 'COST', 'TOKENS', 'AGE', 'WAITING FOR', 'TASK'];

/** The table, then each race's attempts side by side with its ranking, then the sums per agent. */
export function statusTable(lines: StatusLine[]): string {
  if (!lines.length) return 'No tasks yet. Queue one with: obra submit --task "..."\n';
  const rows = lines.map(statusRow);
  // A task whose branch would conflict gets a warning line under its row (both tasks of a pair get one).
  return `${table(HEADER, rows, lines.map(conflictLines))}${racesText(lines)}${perAgentText(lines)}`;
}

/** `  ! conflicts with run X (obra/X) in a.txt` per conflict of the task's branch. */
export function conflictLines(line: Pick<StatusLine, 'conflicts'>): string {
  return line.conflicts.map((conflict) => `  ! ${conflictText(conflict)}\n`).join('');
}

/** The rows padded to columns; `after[i]`, when given, follows row i. */
function table(header: string[], rows: string[][], after: string[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const text = (row: string[]) => `${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}\n`;
  return [text(header), ...rows.map((row, i) => text(row) + (after[i] ?? ''))].join('');
}

function statusRow(line: StatusLine): string[] {
  return [
    line.runId,
    shownStatus(line),
    line.agent ?? 'n/a',
    line.state ?? '-',
    String(line.iteration),
    line.lastDecision ?? '-',
    costCell(line),
    line.usage ? tokensText(line.usage) : 'n/a',
    age(line.ageMs),
    line.waitingFor ?? '-',
    line.task.length > 40 ? `${line.task.slice(0, 39)}…` : line.task,
  ];
}

/** The cost: with its estimate marks when the line carries token sums, else the run's own figure. */
const costCell = (line: Pick<StatusLine, 'usage' | 'costUsd'>): string => (line.usage ? costText(line.usage) : `$${line.costUsd.toFixed(4)}`);

const RACE_HEADER = ['  RANK', 'RUN', 'AGENT', 'STATUS', 'COST', 'WHY'];

/** What the heading of a decided race says the person can do with its winner (the local engine: merge it). */
const mergeTheWinner = (raceId: string) => `\`obra merge ${raceId}\` takes it`;

/**
 * Each race: a heading (decided: the winner, and `winnerNote`; else how many attempts have ended), then its
 * attempts, best first once decided (in attempt order before).
 */
export function racesText(lines: StatusLine[], winnerNote: (raceId: string, winner: StatusLine) => string = mergeTheWinner): string {
  const races = new Map<string, StatusLine[]>();
  for (const line of lines) if (line.race) races.set(line.race.id, [...(races.get(line.race.id) ?? []), line]);
  let out = '';
  for (const [raceId, attempts] of races) {
    const decided = attempts.some((a) => a.race!.decided);
    const ordered = [...attempts].sort((a, b) => (decided ? (a.race!.rank ?? Infinity) - (b.race!.rank ?? Infinity) : a.race!.attempt - b.race!.attempt));
    const winner = ordered.find((a) => a.race!.winner);
    const of = attempts[0]!.race!.of;
    const ended = attempts.filter((a) => a.status !== 'unreadable' && attemptEnded(a.status)).length;
    const heading = decided ? (winner ? `decided — winner ${winner.runId} (${winner.agent}); ${winnerNote(raceId, winner)}` : 'decided — no winner (no attempt ended done)') : `${ended} of ${of} attempts ended; ranked when the last ends`;
    const rows = ordered.map((a) => [
      `  ${a.race!.rank ?? '-'}${a.race!.winner ? ' ★' : ''}`,
      a.runId,
      a.agent ?? 'n/a',
      shownStatus(a),
      costCell(a),
      a.race!.why ?? '-',
    ]);
    out += `\nRace ${raceId}: ${heading}\n${table(RACE_HEADER, rows)}`;
  }
  return out;
}

/** The sums per agent kind (tasks, tokens, cost), when the lines carry them (not on Restate). */
export function perAgentText(lines: StatusLine[]): string {
  return sumsText(usageByAgent(lines));
}

function sumsText(sums: ReturnType<typeof usageByAgent>): string {
  if (!sums.some((s) => s.usage.calls > 0)) return '';
  const rows = sums.map((s) => [`  ${s.agent}`, String(s.tasks), String(s.usage.calls), costText(s.usage), tokensText(s.usage)]);
  return `\nPer agent (~: some of the cost is estimated from agent.prices; +?: calls with no price):\n${table(['  AGENT', 'TASKS', 'CALLS', 'COST', 'TOKENS'], rows)}`;
}

export function withoutAge(line: StatusLine): Omit<StatusLine, 'ageMs'> {
  const { ageMs: _age, ...rest } = line;
  return rest;
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d${String(Math.floor((s % 86_400) / 3600)).padStart(2, '0')}h`;
}
