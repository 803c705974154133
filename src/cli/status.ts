import { resolve } from 'node:path';
import { shownStatus, type StatusLine } from '../core/status-line.js';
import { TaskLineReader } from '../queue/board.js';
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
}

export async function showStatus(flags: StatusFlags, out: NodeJS.WriteStream | NodeJS.WritableStream = process.stdout): Promise<void> {
  const storeDir = resolve(flags.db ?? configFrom(flags).store.dir);
  // --watch reads again only the runs whose files changed since its last look.
  const reader = new TaskLineReader(storeDir);
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

const HEADER = ['RUN', 'STATUS', 'STATE', 'ITER', 'DECISION', 'COST', 'AGE', 'WAITING FOR', 'TASK'];

export function statusTable(lines: StatusLine[]): string {
  if (!lines.length) return 'No tasks yet. Queue one with: obra submit --task "..."\n';
  const rows = lines.map(statusRow);
  const widths = HEADER.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const text = (row: string[]) => `${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}\n`;
  // A task whose branch would conflict gets a warning line under its row (both tasks of a pair get one).
  return [text(HEADER), ...lines.map((line, i) => text(rows[i]!) + conflictLines(line))].join('');
}

/** `  ! conflicts with run X (obra/X) in a.txt` per conflict of the task's branch. */
export function conflictLines(line: Pick<StatusLine, 'conflicts'>): string {
  return line.conflicts.map((conflict) => `  ! ${conflictText(conflict)}\n`).join('');
}

function statusRow(line: StatusLine): string[] {
  return [
    line.runId,
    shownStatus(line),
    line.state ?? '-',
    String(line.iteration),
    line.lastDecision ?? '-',
    `$${line.costUsd.toFixed(4)}`,
    age(line.ageMs),
    line.waitingFor ?? '-',
    line.task.length > 40 ? `${line.task.slice(0, 39)}…` : line.task,
  ];
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
