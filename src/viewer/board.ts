import { BOARD_COLUMNS, type StatusLine } from '../core/status-line.js';
import { esc } from './chart.js';
import { ELEMENT_JS } from './page.js';

/**
 * The viewer's front page: the store's tasks on a board — queued, running, waiting for a human, done, failed
 * and blocked — each card linking to its run page. The page carries the board as JSON and /assets/board.js
 * draws it, then asks /api/board again every second, so it follows the runs as they move.
 */

export interface BoardData {
  storeDir: string;
  at: string;
  columns: typeof BOARD_COLUMNS;
  /** The status lines of `obra status --json` (one shape on both engines). */
  tasks: StatusLine[];
}

export function boardPage(data: BoardData): string {
  const json = JSON.stringify(data).replace(/<\//g, '<\\/').replace(/<!--/g, '<\\!--');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Obra · board</title>
<link rel="stylesheet" href="/assets/viewer.css">
</head>
<body>
<header class="top"><h1>Obra</h1><p class="muted">${esc(data.storeDir)} · <span id="board-summary"></span> · <span id="board-updated"></span></p></header>
<main class="board" id="board"></main>
<script type="application/json" id="board-data">${json}</script>
<script src="/assets/board.js"></script>
</body>
</html>
`;
}

export const BOARD_CSS = `
main.board { display: grid; grid-template-columns: repeat(5, minmax(200px, 1fr)); gap: 12px; padding: 14px 20px; align-items: start; }
.column { background: #eef2f7; border-radius: 10px; padding: 8px; min-width: 0; }
.column h2 { display: flex; justify-content: space-between; margin: 2px 4px 8px; }
.cards { display: flex; flex-direction: column; gap: 8px; }
.card-link { display: block; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; color: var(--ink); }
.card-link:hover { border-color: #94a3b8; }
.card-link .id { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; color: #1d4ed8; }
.card-link .what { margin: 3px 0; overflow: hidden; display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical; }
.card-link .meta { font-size: 12px; color: var(--muted); display: flex; flex-wrap: wrap; gap: 2px 10px; }
.card-link .waiting { font-size: 12px; color: #92400e; margin-top: 3px; }
.card-link .why { font-size: 12px; color: #991b1b; margin-top: 3px; }
.card-link .conflict { font-size: 12px; color: #9a3412; background: #fff7ed; border-radius: 4px; padding: 2px 4px; margin-top: 3px; }
.column .none { color: var(--muted); font-size: 12px; margin: 4px; }
`;

/** Draws the board from its JSON and keeps it current. DOM text only (a task's words are never HTML). */
export const BOARD_JS = `
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  ${ELEMENT_JS}
  function age(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm';
    if (s < 86400) return Math.floor(s / 3600) + 'h' + String(Math.floor((s % 3600) / 60)).padStart(2, '0');
    return Math.floor(s / 86400) + 'd';
  }
  function card(t) {
    const meta = el('div', { class: 'meta' },
      el('span', { class: 'status status-' + t.status }, t.branchOutcome || t.status),
      t.state ? el('span', {}, t.state) : null,
      el('span', {}, 'it. ' + t.iteration),
      t.lastDecision ? el('span', {}, t.lastDecision) : null,
      el('span', {}, '$' + t.costUsd.toFixed(4)),
      el('span', {}, age(t.ageMs)),
      t.priority ? el('span', {}, 'priority ' + t.priority) : null,
      t.branch ? el('span', {}, t.branch) : null,
      t.mergedInto ? el('span', {}, 'merged into ' + t.mergedInto) : null,
      t.worker ? el('span', {}, 'worker ' + t.worker) : null);
    return el('a', { class: 'card-link', href: '/runs/' + encodeURIComponent(t.runId), 'data-run': t.runId, 'data-status': t.status },
      el('div', { class: 'id' }, t.runId), el('div', { class: 'what', title: t.task }, t.task), meta,
      t.waitingFor ? el('div', { class: 'waiting' }, 'waiting for ' + t.waitingFor) : null,
      t.column === 'failed' && t.reason ? el('div', { class: 'why' }, t.reason) : null,
      ...(t.conflicts || []).map((c) => el('div', { class: 'conflict', 'data-conflict': c.runId || 'base' },
        '⚠ conflicts with ' + (c.with === 'base' ? c.branch : 'run ' + c.runId + ' (' + c.branch + ')') + ' in ' + c.files.join(', '))));
  }
  function draw(data) {
    const board = $('board');
    board.replaceChildren();
    for (const column of data.columns) {
      const tasks = data.tasks.filter((t) => t.column === column.key);
      const cards = el('div', { class: 'cards' });
      for (const t of tasks) cards.append(card(t));
      if (!tasks.length) cards.append(el('p', { class: 'none' }, 'none'));
      board.append(el('section', { class: 'column', 'data-column': column.key }, el('h2', {}, el('span', {}, column.title), el('span', { class: 'count' }, tasks.length)), cards));
    }
    $('board-summary').textContent = data.tasks.length + ' task' + (data.tasks.length === 1 ? '' : 's');
    $('board-updated').textContent = 'updated ' + data.at.slice(11, 19) + ' UTC';
    document.body.dataset.updated = data.at;
  }
  draw(JSON.parse($('board-data').textContent));
  document.body.dataset.ready = 'true';
  const every = Number(new URLSearchParams(location.search).get('every')) || 1000;
  async function poll() {
    try {
      const response = await fetch('/api/board', { cache: 'no-store' });
      if (response.ok) draw(await response.json());
      $('board-updated').classList.remove('stale');
    } catch {
      $('board-updated').textContent = 'the viewer is not answering — retrying';
    }
    setTimeout(poll, every);
  }
  setTimeout(poll, every);
})();
`;
