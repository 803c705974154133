import { esc, type Chart } from './chart.js';
import { ELEMENT_JS } from './client-js.js';
import { RUN_WORKBENCH_HTML } from './run-workbench.js';

/**
 * The viewer's pages. Everything is served by Obra itself (no CDN, no fonts from the network): the HTML
 * carries the run as JSON in a non-executed <script type="application/json">, the behaviour is /assets/viewer.js
 * and the look /assets/viewer.css, and the Content-Security-Policy allows nothing else.
 */

export const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<link rel="stylesheet" href="/assets/viewer.css">
<link rel="stylesheet" href="/assets/diff2html.css">
</head>
<body>
${body}
</body>
</html>
`;
}

export interface RunListItem {
  runId: string;
  status: string;
  task: string;
  iterations: number;
  costUsd: number;
  startedAt: string;
}

export function runPage(runId: string, charts: { iteration: Chart; task: Chart }, data: unknown): string {
  // `</` cannot appear inside the JSON block, or the HTML parser would end it early.
  const json = JSON.stringify(data).replace(/<\//g, '<\\/').replace(/<!--/g, '<\\!--');
  const body = `<header class="top">
  <h1><a href="/">Obra</a> · run <span id="run-id">${esc(runId)}</span> <span id="run-status" class="status"></span></h1>
  <p id="run-task" class="task"></p>
  <nav class="controls" aria-label="steps">
    <button id="first" title="first step (Home)">◀◀</button>
    <button id="prev" title="previous step (←)">◀ prev</button>
    <button id="play" title="play / pause (space)">▶ play</button>
    <button id="next" title="next step (→)">next ▶</button>
    <button id="last" title="last step (End)">▶▶</button>
    <input id="slider" type="range" min="0" max="0" value="0" aria-label="step">
    <span id="position" class="position"></span>
  </nav>
</header>
${RUN_WORKBENCH_HTML}
<main class="run" id="steps">
  <div class="left">
  <section class="charts">
    <figure class="chart-box" style="flex-grow: ${charts.iteration.width}; max-width: ${charts.iteration.width + 18}px"><figcaption>Iteration <span id="iteration-index"></span></figcaption>${charts.iteration.svg}</figure>
    <figure class="chart-box" style="flex-grow: ${charts.task.width}; max-width: ${charts.task.width + 18}px"><figcaption>Task</figcaption>${charts.task.svg}</figure>
  </section>
  <section class="timeline"><h2>All steps</h2><ol id="timeline"></ol></section>
  </div>
  <aside class="details">
    <section class="card" id="step-card"><h2>Step</h2><dl id="step-details"></dl></section>
    <section class="card" id="iteration-card"><h2>Iteration</h2><dl id="iteration-details"></dl></section>
    <section class="card" id="answer-card"><h2>Agent's answer</h2><pre id="answer" class="answer"></pre></section>
    <section class="card" id="task-card"><h2>Task</h2><dl id="task-details"></dl></section>
  </aside>
</main>
<script type="application/json" id="run-data">${json}</script>
<script src="/assets/viewer.js"></script>
<script src="/assets/workbench.js"></script>`;
  return layout(`Obra · ${runId}`, body);
}

export const VIEWER_CSS = `
:root { --ink: #1f2937; --muted: #6b7280; --line: #cbd5e1; --box: #ffffff; --accent: #f59e0b; --accent-ink: #92400e; --visited: #fef3c7; --bg: #f8fafc; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--bg); }
a { color: #1d4ed8; text-decoration: none; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 6px; }
.top { padding: 12px 20px 10px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 2; }
.task { margin: 2px 0 8px; color: var(--muted); max-width: 1100px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.muted { color: var(--muted); margin: 4px 0 0; }
.controls { display: flex; gap: 6px; align-items: center; }
.controls button { font: inherit; padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
.controls button:hover { background: #f1f5f9; }
.controls input[type=range] { flex: 1; max-width: 520px; }
.position { font-variant-numeric: tabular-nums; color: var(--muted); min-width: 260px; }
.status { font-size: 12px; padding: 1px 8px; border-radius: 10px; background: #e5e7eb; vertical-align: middle; }
.status-done { background: #dcfce7; color: #166534; }
.status-failed, .status-budget_exceeded, .status-max_iterations { background: #fee2e2; color: #991b1b; }
.status-escalated, .status-paused, .status-interrupted { background: #fef3c7; color: #92400e; }
.status-running { background: #dbeafe; color: #1e40af; }
.status-blocked, .status-cancelled, .status-stopped { background: #f3e8ff; color: #6b21a8; }
main.run { display: grid; grid-template-columns: minmax(0, 1fr) 390px; gap: 16px; padding: 14px 20px; align-items: start; }
.charts { display: flex; gap: 12px; align-items: flex-start; min-width: 0; }
.chart-box { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 8px 8px 4px; flex: 1 1 0; min-width: 0; }
figcaption { font-weight: 600; font-size: 13px; padding: 0 4px 2px; }
svg.chart { display: block; width: 100%; height: auto; }
.node rect { fill: var(--box); stroke: #94a3b8; stroke-width: 1.3; }
.node rect.inner { fill: none; }
.node.visited rect:not(.inner) { fill: var(--visited); }
.node.transient rect { stroke-dasharray: 5 3; }
.node.current rect:not(.inner) { fill: #fbbf24; stroke: #b45309; stroke-width: 2.5; }
.state-name { font-size: 12.5px; font-weight: 600; fill: var(--ink); }
.state-invoke { font-size: 10px; fill: var(--muted); }
.node.current .state-invoke { fill: var(--accent-ink); }
.initial { fill: #475569; }
.edge-line { fill: none; stroke: #94a3b8; stroke-width: 1.2; }
.arrowhead { fill: #64748b; }
.edge.error .edge-line { stroke-dasharray: 4 3; stroke: #cbd5e1; }
.edge.error .edge-label { fill: #9ca3af; }
.edge-label { font-size: 11px; fill: #475569; paint-order: stroke; stroke: #fff; stroke-width: 4px; stroke-linejoin: round; }
.edge.taken .edge-line { stroke: #d97706; stroke-width: 2.6; stroke-dasharray: none; }
.edge.taken .edge-label { fill: #92400e; font-weight: 600; }
.details { display: flex; flex-direction: column; gap: 10px; min-width: 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 10px 12px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
.event { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
.answer { white-space: pre-wrap; margin: 0; max-height: 220px; overflow: auto; font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; background: #f8fafc; padding: 8px; border-radius: 6px; }
.bars { display: grid; grid-template-columns: max-content 120px max-content; gap: 2px 8px; align-items: center; font-size: 12px; }
.bar { height: 8px; background: #e5e7eb; border-radius: 4px; overflow: hidden; }
.bar > span { display: block; height: 100%; background: #60a5fa; }
.explain { margin: 4px 0 0; padding-left: 18px; color: var(--muted); font-size: 12px; }
.backoff { color: #b45309; font-weight: 600; }
.decision { font-weight: 600; }
.left { display: flex; flex-direction: column; gap: 14px; min-width: 0; }
.timeline ol { position: relative; list-style: none; margin: 0; padding: 0; background: #fff; border: 1px solid var(--line); border-radius: 10px; max-height: 300px; overflow: auto; }
.timeline li { display: grid; grid-template-columns: 48px 80px 92px 170px 1fr; gap: 8px; padding: 3px 10px; border-bottom: 1px solid #f1f5f9; cursor: pointer; font-size: 12.5px; font-variant-numeric: tabular-nums; }
.timeline li:hover { background: #f1f5f9; }
.timeline li.current { background: #fef3c7; }
.timeline .note { color: var(--muted); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
table.runs { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
table.runs th, table.runs td { padding: 6px 12px; border-bottom: 1px solid #f1f5f9; text-align: left; }
table.runs td.num { text-align: right; font-variant-numeric: tabular-nums; }
main.list { padding: 16px 20px; }
.empty { color: var(--muted); }
`;

/** The page's behaviour: step through the run, highlight the states, fill in the details. DOM text only. */
export const VIEWER_JS = `
(() => {
  'use strict';
  const data = JSON.parse(document.getElementById('run-data').textContent);
  const steps = data.steps;
  const $ = (id) => document.getElementById(id);
  const slider = $('slider');
  let index = 0;
  let timer = null;

  const secs = (ms) => (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  const num = (n) => (n === null || n === undefined ? '–' : n.toFixed(2));
  ${ELEMENT_JS}
  function fill(dl, rows) {
    dl.replaceChildren();
    for (const [label, value] of rows) {
      if (value === null || value === undefined || value === '') continue;
      dl.append(el('dt', {}, label), value instanceof Node ? el('dd', {}, value) : el('dd', {}, String(value)));
    }
  }
  function mark(machine, state, visited, taken) {
    const chart = document.querySelector('svg.chart[data-machine="' + machine + '"]');
    if (!chart) return;
    for (const node of chart.querySelectorAll('.node')) {
      const key = node.getAttribute('data-state');
      node.classList.toggle('current', key === state);
      node.classList.toggle('visited', key !== state && visited.includes(key));
    }
    const edges = [...chart.querySelectorAll('.edge')];
    const has = (from, to) => edges.some((e) => e.getAttribute('data-from') === from && e.getAttribute('data-to') === to);
    // A step that passed through a transient state (one left only by eventless transitions) took two edges.
    let path = [];
    if (taken && has(taken[0], taken[1])) path = [taken];
    else if (taken) {
      for (const node of chart.querySelectorAll('.node.transient')) {
        const via = node.getAttribute('data-state');
        if (has(taken[0], via) && has(via, taken[1])) path = [[taken[0], via], [via, taken[1]]];
      }
    }
    for (const edge of edges) {
      edge.classList.toggle('taken', path.some(([from, to]) => edge.getAttribute('data-from') === from && edge.getAttribute('data-to') === to));
    }
  }
  function bars(breakdown) {
    const box = el('div', { class: 'bars' });
    for (const [name, value] of Object.entries(breakdown)) {
      const bar = el('div', { class: 'bar' }, el('span', { style: 'width:' + Math.round(Math.max(0, Math.min(1, value)) * 100) + '%' }));
      box.append(el('span', {}, name), bar, el('span', {}, num(value)));
    }
    return box;
  }
  function list(items) {
    const ul = el('ul', { class: 'explain' });
    for (const item of items) ul.append(el('li', {}, item));
    return ul;
  }

  function show(i) {
    index = Math.max(0, Math.min(steps.length - 1, i));
    const step = steps[index];
    const prev = index > 0 ? steps[index - 1] : null;
    slider.value = String(index);
    $('position').textContent = 'step ' + (index + 1) + ' / ' + steps.length + ' · +' + secs(step.elapsedMs);
    if (history.replaceState) history.replaceState(null, '', '#step=' + (index + 1));

    const taskTaken = prev && prev.task.state !== step.task.state ? [prev.task.state, step.task.state] : null;
    mark('task', step.task.state, [], taskTaken);
    const it = step.iteration;
    let itTaken = null;
    if (it && prev && prev.iteration && prev.iteration.index === it.index && step.actor === 'iteration') itTaken = [prev.iteration.state, it.state];
    if (it && prev && prev.iteration && prev.iteration.index === it.index && prev.iteration.state !== it.state) itTaken = [prev.iteration.state, it.state];
    mark('iteration', it ? it.state : null, it ? it.visited : [], itTaken);
    $('iteration-index').textContent = it ? it.index : '';

    fill($('step-details'), [
      ['event', el('span', { class: 'event' }, step.eventLabel)],
      ['carried', step.eventNote],
      ['moved', step.actor],
      ['task state', step.task.state],
      ['iteration', it ? it.index + ' · ' + it.state : null],
      ['at', '+' + secs(step.elapsedMs) + ' (' + new Date(step.at).toISOString().replace('T', ' ').slice(0, 23) + ')'],
    ]);

    if (it) {
      const backoff = it.retryDelaysMs.length ? el('span', { class: 'backoff' }, it.retryDelaysMs.map((d) => secs(d)).join(', ') + (it.retryRemainingMs !== null ? ' (' + secs(it.retryRemainingMs) + ' left)' : '')) : null;
      const quality = it.quality === null ? null : el('div', {}, el('strong', {}, num(it.quality)), bars(it.qualityBreakdown));
      const confidence = it.confidence === null ? null : el('div', {}, el('strong', {}, num(it.confidence)), list(it.confidenceExplanation));
      const decision = it.decision ? el('span', { class: 'decision' }, it.decision + ' (' + it.decisionRule + ')') : null;
      fill($('iteration-details'), [
        ['attempts', it.attempts],
        ['backoff', backoff],
        ['session', it.sessionId ? it.sessionId + (it.sessionMode ? ' · ' + it.sessionMode : '') : null],
        ['agent', it.outcome ? it.outcome + (it.outcomeMessage ? ' — ' + it.outcomeMessage : '') : null],
        ['recovered', it.recovered],
        ['validation', it.validation ? (it.validation.ok ? 'valid' : 'not valid: ' + it.validation.reasons.join('; ')) : null],
        ['quality', quality],
        ['confidence', confidence],
        ['decision', decision],
        ['why', it.decisionReason],
        ['failure', it.failure],
      ]);
      $('answer').textContent = it.answer === null ? '(no answer yet)' : data.texts[it.answer];
    } else {
      fill($('iteration-details'), [['', 'no iteration running']]);
      $('answer').textContent = '';
    }
    fill($('task-details'), [
      ['iterations', step.task.iterations],
      ['cost', '$' + step.task.totalCostUsd.toFixed(4)],
      ['status', step.task.status],
      ['reason', step.task.reason],
      ['question', step.task.question],
      ['feedback', step.task.feedback],
    ]);
    for (const li of $('timeline').children) li.classList.toggle('current', Number(li.dataset.index) === index);
    // Scroll the list itself, never the page.
    const rows = $('timeline');
    const current = rows.children[index];
    if (current) {
      if (current.offsetTop < rows.scrollTop) rows.scrollTop = current.offsetTop;
      else if (current.offsetTop + current.offsetHeight > rows.scrollTop + rows.clientHeight) rows.scrollTop = current.offsetTop + current.offsetHeight - rows.clientHeight;
    }
  }

  function play() {
    if (timer) { clearInterval(timer); timer = null; $('play').textContent = '▶ play'; return; }
    if (index >= steps.length - 1) show(0);
    $('play').textContent = '⏸ pause';
    timer = setInterval(() => { if (index >= steps.length - 1) play(); else show(index + 1); }, 700);
  }

  $('run-status').textContent = data.run.status;
  $('run-status').classList.add('status-' + data.run.status);
  $('run-task').textContent = data.run.task;
  $('run-task').title = data.run.task;
  slider.max = String(Math.max(0, steps.length - 1));
  steps.forEach((step, i) => {
    const li = el('li', { 'data-index': String(i) },
      el('span', {}, '#' + (i + 1)), el('span', {}, '+' + secs(step.elapsedMs)),
      el('span', {}, step.iteration ? 'iteration ' + step.iteration.index : 'task'),
      el('span', {}, step.iteration && step.actor === 'iteration' ? step.iteration.state : step.task.state),
      el('span', { class: 'note' }, step.eventLabel + (step.eventNote ? ' — ' + step.eventNote : '')));
    li.addEventListener('click', () => show(i));
    $('timeline').append(li);
  });
  $('first').addEventListener('click', () => show(0));
  $('prev').addEventListener('click', () => show(index - 1));
  $('next').addEventListener('click', () => show(index + 1));
  $('last').addEventListener('click', () => show(steps.length - 1));
  $('play').addEventListener('click', play);
  slider.addEventListener('input', () => show(Number(slider.value)));
  document.addEventListener('keydown', (event) => {
    if (event.target instanceof HTMLInputElement && event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
    if (event.key === 'ArrowRight') { event.preventDefault(); show(index + 1); }
    else if (event.key === 'ArrowLeft') { event.preventDefault(); show(index - 1); }
    else if (event.key === 'Home') show(0);
    else if (event.key === 'End') show(steps.length - 1);
    else if (event.key === ' ') { event.preventDefault(); play(); }
  });
  const fromHash = /step=(\\d+)/.exec(location.hash);
  if (steps.length) show(fromHash ? Number(fromHash[1]) - 1 : 0);
  else $('position').textContent = 'this run has no recorded steps yet';
  document.body.dataset.ready = 'true';
})();
`;
