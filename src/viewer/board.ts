import { esc } from './chart.js';
import { ELEMENT_JS, WORKBENCH_COMMON_JS } from './client-js.js';
import type { BoardData } from './board-data.js';

/**
 * The viewer's front page, the workbench: the store's tasks on a board — queued, running, waiting for a human,
 * done, failed and blocked — each card linking to its run page with the actions its state allows; a form that
 * queues a task; what the tasks cost, per task, per agent and per day. The page carries the board's first page as
 * JSON and /assets/board.js draws it, then follows the store through /api/board/events (Server-Sent Events):
 * the server pushes the cards that changed, no page asks again and again.
 */

export type { BoardData };

export function boardPage(data: BoardData): string {
  const json = JSON.stringify({ ...data, spendSvg: undefined }).replace(/<\//g, '<\\/').replace(/<!--/g, '<\\!--');
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
<div id="error" class="banner error" role="alert" hidden></div>
<div id="note" class="banner note" role="status" hidden></div>
<section class="workbench-top">
<details class="new-task" id="new-task">
<summary>New task</summary>
<form id="task-form" autocomplete="off">
  <label>Task<textarea name="task" rows="3" required placeholder="What the agent should do"></textarea></label>
  <div class="fields">
    <label>Repository<input name="repo" placeholder="(the folder obra view runs in)"></label>
    <label>Base<input name="base" placeholder="HEAD"></label>
    <label>Agent<input name="agent" list="agent-kinds" placeholder="(the config's)"></label>
    <label>Priority<input name="priority" type="number" step="1" placeholder="0"></label>
    <label>After run<input name="after" placeholder="run id"></label>
  </div>
  <datalist id="agent-kinds"><option value="claude"><option value="codex"><option value="gemini"><option value="qwen"><option value="opencode"></datalist>
  <div class="fields race-fields">
    <label>Race: agents<input name="agents" placeholder="claude, codex, gemini"></label>
    <label>Attempts each<input name="attempts" type="number" min="1" step="1" placeholder="1"></label>
  </div>
  <label>Checks, one command a line<textarea name="checks" rows="2" placeholder="npm test"></textarea></label>
  <button type="submit" id="task-submit">Queue the task</button>
</form>
</details>
<section class="spend" id="spend-box"><h2>Spend · <span id="spend-total"></span></h2><div id="spend">${data.spendSvg}</div></section>
</section>
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
.card-link { display: block; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; color: var(--ink); cursor: pointer; }
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
.column .more { font: inherit; font-size: 12px; margin-top: 6px; width: 100%; }
.actions { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 5px; }
.actions button, .workbench button, .new-task button { font: inherit; font-size: 12px; padding: 2px 9px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
.actions button:hover { background: #f1f5f9; }
.actions .answer-link { font-size: 12px; padding: 2px 9px; border: 1px solid #f59e0b; border-radius: 6px; background: #fffbeb; color: #92400e; }
.actions .action-merge { border-color: #16a34a; color: #166534; }
.actions .action-cancel, .actions .action-discard { color: #991b1b; }
.banner { margin: 8px 20px 0; padding: 6px 10px; border-radius: 8px; font-size: 13px; }
.banner.error { background: #fee2e2; color: #991b1b; border: 1px solid #fecaca; }
.banner.note { background: #dcfce7; color: #166534; border: 1px solid #bbf7d0; }
.banner ul.conflicts { margin: 2px 0 0; padding-left: 18px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.workbench-top { display: flex; gap: 12px; padding: 10px 20px 0; align-items: flex-start; flex-wrap: wrap; }
.new-task { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 8px 12px; flex: 1 1 420px; }
.new-task summary { cursor: pointer; font-weight: 600; }
.new-task form { display: flex; flex-direction: column; gap: 6px; margin-top: 8px; }
.new-task label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; }
.new-task .fields { display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 6px; }
.new-task input, .new-task textarea { font: 13px system-ui, sans-serif; padding: 3px 6px; border: 1px solid var(--line); border-radius: 6px; color: var(--ink); }
.new-task button[type=submit] { align-self: flex-start; font-size: 13px; padding: 4px 12px; }
.spend { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 8px 12px; flex: 2 1 600px; overflow-x: auto; }
svg.spend-chart { display: block; max-width: 100%; height: auto; }
.spend-title { font-size: 12px; font-weight: 600; fill: var(--ink); }
.spend-label, .spend-value, .spend-none { font-size: 11px; fill: #475569; }
.spend-bar { fill: #60a5fa; }
`;

/** Draws the board from its JSON and follows the store's pushed changes. DOM text only (a task's words are never HTML). */
export const BOARD_JS = `
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  ${ELEMENT_JS}
  ${WORKBENCH_COMMON_JS}
  const first = JSON.parse($('board-data').textContent);
  const columns = first.columns;
  const perColumn = first.perColumn;
  const tasks = new Map();
  const shown = {};
  let counts = first.counts;
  let at = first.at;
  for (const c of columns) shown[c.key] = perColumn;
  function load(list) { for (const t of list) tasks.set(t.runId, t); }
  load(first.tasks);

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
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  // As the server pages them (src/viewer/board-data.ts): the queue in the workers' order, ended tasks newest first.
  function order(column) {
    if (column === 'done' || column === 'failed') return (a, b) => cmp(b.createdAt, a.createdAt) || cmp(b.runId, a.runId);
    return (a, b) => b.priority - a.priority || cmp(a.createdAt, b.createdAt) || cmp(a.runId, b.runId);
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
      el('span', {}, age(t.createdAt ? Date.now() - Date.parse(t.createdAt) : t.ageMs)),
      t.priority ? el('span', {}, 'priority ' + t.priority) : null,
      t.branch ? el('span', {}, t.branch) : null,
      t.mergedInto ? el('span', {}, 'merged into ' + t.mergedInto) : null,
      t.resolves ? el('span', {}, 'resolves the conflict of ' + t.resolves) : null,
      t.resolvedBy ? el('span', {}, 'conflict resolved by ' + t.resolvedBy) : null,
      t.worker ? el('span', {}, 'worker ' + t.worker) : null);
    const href = '/runs/' + encodeURIComponent(t.runId);
    const node = el('article', { class: 'card-link', 'data-run': t.runId, 'data-status': t.status },
      el('a', { class: 'id', href }, t.runId), el('div', { class: 'what', title: t.task }, t.task), meta,
      t.waitingFor ? el('div', { class: 'waiting' }, 'waiting for ' + t.waitingFor) : null,
      t.column === 'failed' && t.reason ? el('div', { class: 'why' }, t.reason) : null,
      ...(t.conflicts || []).map((c) => el('div', { class: 'conflict', 'data-conflict': c.runId || 'base' },
        '⚠ conflicts with ' + (c.with === 'base' ? c.branch : 'run ' + c.runId + ' (' + c.branch + ')') + ' in ' + c.files.join(', '))),
      actionButtons(t));
    // A question is answered on the run page, where the refused tools are listed.
    if (t.actions.includes('answer')) node.querySelector('.actions').prepend(el('a', { class: 'answer-link', href: href + '#workbench' }, 'Answer…'));
    node.addEventListener('click', (event) => {
      if (event.target.closest('button, a, input, textarea')) return;
      location.href = href;
    });
    return node;
  }
  function draw() {
    const board = $('board');
    board.replaceChildren();
    let total = 0;
    for (const column of columns) {
      const all = [...tasks.values()].filter((t) => t.column === column.key).sort(order(column.key));
      const list = all.slice(0, shown[column.key]);
      const count = counts[column.key];
      total += count;
      const cards = el('div', { class: 'cards' });
      for (const t of list) cards.append(card(t));
      if (!list.length) cards.append(el('p', { class: 'none' }, 'none'));
      const section = el('section', { class: 'column', 'data-column': column.key }, el('h2', {}, el('span', {}, column.title), el('span', { class: 'count' }, count)), cards);
      if (count > list.length) {
        const more = el('button', { type: 'button', class: 'more' }, 'show ' + Math.min(perColumn, count - list.length) + ' more of ' + (count - list.length));
        more.addEventListener('click', () => showMore(column.key));
        section.append(more);
      }
      board.append(section);
    }
    const all = [...tasks.values()];
    $('board-races').replaceChildren(...races(all));
    $('board-agents').replaceChildren(...agents(all));
    $('board-summary').textContent = total + ' task' + (total === 1 ? '' : 's');
    $('board-updated').textContent = 'updated ' + at.slice(11, 19) + ' UTC';
    document.body.dataset.updated = at;
  }
  function spend(data) {
    $('spend-total').textContent = '$' + data.totalUsd.toFixed(4) + ' in all';
  }
  async function fetchBoard(query) {
    const response = await fetch('/api/board?' + query, { cache: 'no-store' });
    if (!response.ok) throw new Error('the viewer answered ' + response.status);
    return response.json();
  }
  async function showMore(column) {
    shown[column] += perColumn;
    try {
      const data = await fetchBoard('column=' + column + '&per_column=' + shown[column]);
      load(data.tasks);
      counts = data.counts;
    } catch (error) {
      say('error', error.message);
    }
    draw();
  }
  /** After a (re)connection: the pages shown, read again (what changed while the stream was down). */
  async function resync() {
    try {
      const data = await fetchBoard('per_column=' + Math.max(...Object.values(shown)));
      tasks.clear();
      load(data.tasks);
      counts = data.counts;
      at = data.at;
      $('spend').innerHTML = data.spendSvg;
      spend(data.spend);
      draw();
    } catch (error) {
      $('board-updated').textContent = 'the viewer is not answering — retrying';
    }
  }

  $('task-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.target;
    const value = (name) => form.elements[name].value.trim();
    const body = { task: value('task') };
    for (const name of ['repo', 'base', 'agent', 'after']) if (value(name)) body[name] = value(name);
    if (value('priority')) body.priority = Number(value('priority'));
    if (value('agents')) body.agents = value('agents').split(',').map((a) => a.trim()).filter(Boolean);
    if (value('attempts')) body.attempts = Number(value('attempts'));
    const checks = form.elements.checks.value.split('\\n').map((line) => line.trim()).filter(Boolean);
    if (checks.length) body.checks = checks;
    $('task-submit').disabled = true;
    try {
      const result = await post('/api/tasks', body);
      say('note', result.raceId ? 'queued race ' + result.raceId + ' (' + result.runIds.length + ' attempts) — workers (obra work) take them' : 'queued ' + result.runId + ' — a worker (obra work) takes it');
      form.elements.task.value = '';
    } catch (error) {
      say('error', error.message);
    } finally {
      $('task-submit').disabled = false;
    }
  });

  spend(first.spend);
  draw();
  document.body.dataset.ready = 'true';
  const source = new EventSource('/api/board/events');
  source.addEventListener('ready', () => { resync().then(() => { document.body.dataset.live = 'true'; }); });
  source.addEventListener('tasks', (event) => {
    const change = JSON.parse(event.data);
    load(change.tasks);
    for (const runId of change.removed) tasks.delete(runId);
    counts = change.counts;
    at = change.at;
    if (change.spendSvg) { $('spend').innerHTML = change.spendSvg; spend(change.spend); }
    draw();
  });
  source.addEventListener('error', () => {
    document.body.dataset.live = 'false';
    $('board-updated').textContent = 'the viewer is not answering — reconnecting';
  });
})();
`;
