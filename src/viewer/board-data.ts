import { BOARD_COLUMNS, queueOrder, type BoardColumn } from '../core/status-line.js';
import { spendOf, spendSvg, type Spend } from './spend.js';
import type { BoardTask } from './store-feed.js';

/**
 * What the board page carries: a page of each column (the first `perColumn` cards; a store of thousands of tasks
 * sends its first cards, not all), each column's count, and the spend. The queue's columns are in the order the
 * workers take them; Done and Failed newest first.
 */

export interface BoardData {
  storeDir: string;
  at: string;
  columns: typeof BOARD_COLUMNS;
  tasks: BoardTask[];
  counts: Record<BoardColumn, number>;
  perColumn: number;
  spend: Spend;
  spendSvg: string;
}

export const PER_COLUMN = 50;

/** The order of a column's cards (the page sorts the same way: BOARD_JS). */
export function columnOrder(column: BoardColumn): (a: BoardTask, b: BoardTask) => number {
  if (column === 'done' || column === 'failed') return (a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : a.runId < b.runId ? 1 : -1);
  return (a, b) => queueOrder({ priority: a.priority, since: a.createdAt, runId: a.runId }, { priority: b.priority, since: b.createdAt, runId: b.runId });
}

export function boardData(storeDir: string, all: BoardTask[], options: { perColumn?: number; column?: BoardColumn } = {}): BoardData {
  const perColumn = Math.max(1, options.perColumn ?? PER_COLUMN);
  const byColumn = new Map<BoardColumn, BoardTask[]>(BOARD_COLUMNS.map((c) => [c.key, []]));
  for (const task of all) byColumn.get(task.column)?.push(task);
  const tasks: BoardTask[] = [];
  for (const { key } of BOARD_COLUMNS) {
    if (options.column && options.column !== key) continue;
    tasks.push(...topOf(byColumn.get(key)!, perColumn, columnOrder(key)));
  }
  const spend = spendOf(all);
  return { storeDir, at: new Date().toISOString(), columns: BOARD_COLUMNS, tasks, counts: countsOf(all), perColumn, spend, spendSvg: spendSvg(spend) };
}

/** Each column's count of cards, in the columns' order. */
export function countsOf(all: Pick<BoardTask, 'column'>[]): Record<BoardColumn, number> {
  const counts = {} as Record<BoardColumn, number>;
  for (const { key } of BOARD_COLUMNS) counts[key] = 0;
  for (const task of all) if (Object.hasOwn(counts, task.column)) counts[task.column]++;
  return counts;
}

/** The first `n` of `items` in `order`, without sorting them all when n is small. */
function topOf<T>(items: T[], n: number, order: (a: T, b: T) => number): T[] {
  if (items.length <= n * 4) return items.slice().sort(order).slice(0, n);
  const top: T[] = [];
  for (const item of items) {
    if (top.length === n && order(item, top[n - 1]!) >= 0) continue;
    let i = top.length;
    while (i > 0 && order(item, top[i - 1]!) < 0) i--;
    top.splice(i, 0, item);
    if (top.length > n) top.pop();
  }
  return top;
}
