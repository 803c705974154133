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
<section class="board-extra" id="board-races"></section>
<section class="board-extra" id="board-agents"></section>
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
.board-extra { padding: 0 20px; }
.board-extra:empty { display: none; }
.race { background: #f8fafc; border: 1px solid var(--line); border-radius: 10px; padding: 8px 10px; margin: 10px 0 0; }
.race h2 { font-size: 14px; margin: 0 0 6px; }
.race .attempts { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 8px; }
.race .attempt { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 6px 8px; font-size: 12px; color: var(--ink); display: block; }
.race .attempt.winner { border-color: #16a34a; box-shadow: 0 0 0 1px #16a34a; }
.race .why { color: var(--muted); }
.agents { font-size: 12px; color: var(--muted); margin-top: 8px; display: flex; flex-wrap: wrap; gap: 4px 18px; }
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
  // ~: some of the cost is estimated from agent.prices; +?: calls with no price (their cost is missing).
  function cost(u) { return (u.estimated ? '~' : '') + '$' + u.costUsd.toFixed(4) + (u.unpricedCalls ? '+?' : ''); }
  function count(n) { return n < 1000 ? String(n) : n < 1e6 ? (n / 1000).toFixed(1) + 'k' : (n / 1e6).toFixed(2) + 'M'; }
  function tokens(u) { return count(u.inputTokens) + ' in (' + count(u.cachedInputTokens) + ' cached) / ' + count(u.outputTokens) + ' out'; }
  // Each race's attempts side by side, best first once it is decided.
  function races(tasks) {
    const byRace = new Map();
    for (const t of tasks) if (t.race) byRace.set(t.race.id, (byRace.get(t.race.id) || []).concat([t]));
    const out = [];
    for (const [id, attempts] of byRace) {
      const decided = attempts.some((a) => a.race.decided);
      attempts.sort((a, b) => decided ? (a.race.rank || 99) - (b.race.rank || 99) : a.race.attempt - b.race.attempt);
      const winner = attempts.find((a) => a.race.winner);
      const title = 'Race ' + id + ' — ' + (decided ? (winner ? 'winner ' + winner.runId + ' (' + winner.agent + ')' : 'no winner') : 'running: ranked when the last attempt ends');
      const row = el('div', { class: 'attempts' });
      for (const a of attempts) {
        row.append(el('a', { class: 'attempt' + (a.race.winner ? ' winner' : ''), href: '/runs/' + encodeURIComponent(a.runId), 'data-run': a.runId, 'data-rank': a.race.rank || '' },
          el('div', {}, (a.race.rank ? '#' + a.race.rank + ' ' : '') + a.agent + ' · ' + (a.branchOutcome || a.status) + ' · ' + (a.usage ? cost(a.usage) : '$' + a.costUsd.toFixed(4))),
          el('div', { class: 'id' }, a.runId),
          a.race.why ? el('div', { class: 'why' }, a.race.why) : null));
      }
      out.push(el('div', { class: 'race', 'data-race': id }, el('h2', {}, title), row));
    }
    return out;
  }
  // Tokens and cost per agent kind, over the board's tasks.
  function agents(tasks) {
    const sums = new Map();
    for (const t of tasks) {
      if (!t.usage) continue;
      const s = sums.get(t.agent) || { tasks: 0, calls: 0, inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, costUsd: 0, estimated: false, unpricedCalls: 0 };
      s.tasks += 1; s.calls += t.usage.calls; s.inputTokens += t.usage.inputTokens; s.cachedInputTokens += t.usage.cachedInputTokens;
      s.outputTokens += t.usage.outputTokens; s.costUsd += t.usage.costUsd; s.estimated = s.estimated || t.usage.estimated; s.unpricedCalls += t.usage.unpricedCalls;
      sums.set(t.agent, s);
    }
    if (!sums.size) return [];
    const line = el('div', { class: 'agents' });
    for (const [agent, s] of sums) line.append(el('span', { 'data-agent': agent }, agent + ': ' + s.tasks + ' task' + (s.tasks === 1 ? '' : 's') + ', ' + cost(s) + ', ' + tokens(s)));
    return [line];
  }
  function card(t) {
    const meta = el('div', { class: 'meta' },
      el('span', { class: 'status status-' + t.status }, t.branchOutcome || t.status),
      t.state ? el('span', {}, t.state) : null,
      el('span', {}, 'it. ' + t.iteration),
      t.lastDecision ? el('span', {}, t.lastDecision) : null,
      t.agent ? el('span', { class: 'agent' }, t.agent) : null,
      el('span', { class: 'cost' }, t.usage ? cost(t.usage) : '$' + t.costUsd.toFixed(4)),
      t.usage ? el('span', { class: 'tokens' }, tokens(t.usage)) : null,
      t.race ? el('span', { class: 'race-mark' }, 'race ' + t.race.attempt + '/' + t.race.of + (t.race.rank ? ' · rank ' + t.race.rank : '') + (t.race.winner ? ' · winner' : '')) : null,
      el('span', {}, age(t.ageMs)),
      t.priority ? el('span', {}, 'priority ' + t.priority) : null,
      t.branch ? el('span', {}, t.branch) : null,
      t.mergedInto ? el('span', {}, 'merged into ' + t.mergedInto) : null,
      t.resolves ? el('span', {}, 'resolves the conflict of ' + t.resolves) : null,
      t.resolvedBy ? el('span', {}, 'conflict resolved by ' + t.resolvedBy) : null,
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
    $('board-races').replaceChildren(...races(data.tasks));
    $('board-agents').replaceChildren(...agents(data.tasks));
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
