import { ELEMENT_JS, WORKBENCH_COMMON_JS } from './client-js.js';

/**
 * The run page's workbench, above the step viewer: the actions the run's state allows; the question of a run
 * that waits for a human, with each refused tool use and one click to allow it; the agent's events as they
 * happen (/api/runs/<id>/events, Server-Sent Events); and the review — the task's diff, whole or one iteration's,
 * drawn by diff2html, beside that iteration's checks' output and the judge's reasons.
 */

export const RUN_WORKBENCH_HTML = `<div id="error" class="banner error" role="alert" hidden></div>
<div id="note" class="banner note" role="status" hidden></div>
<section class="workbench" id="workbench">
  <div class="wb-bar"><span id="wb-status" class="status"></span><span id="wb-waiting" class="muted"></span><span id="wb-actions"></span></div>
  <section class="card waiting-card" id="waiting" hidden>
    <h2>Waiting for you</h2>
    <p id="question" class="question"></p>
    <ul id="denials" class="denials"></ul>
    <label class="answer-label">Your answer<textarea id="answer-text" rows="2" placeholder="What the agent should do next"></textarea></label>
    <button type="button" id="answer-send">Answer</button>
  </section>
  <div class="wb-grid">
    <section class="card live-card"><h2>Live <span id="live-state" class="muted"></span></h2><ol id="events" class="events"></ol></section>
    <section class="card review-card" id="review">
      <h2>Review</h2>
      <nav id="review-tabs" class="review-tabs"></nav>
      <p id="review-note" class="muted"></p>
      <div class="review-grid">
        <div id="diff" class="diff"></div>
        <aside class="review-side"><h2>Judge</h2><ul id="judge" class="judge"></ul><h2>Checks</h2><div id="checks"></div></aside>
      </div>
    </section>
  </div>
</section>`;

export const RUN_WORKBENCH_CSS = `
.workbench { padding: 10px 20px 0; display: flex; flex-direction: column; gap: 10px; }
.wb-bar { display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
.wb-bar .actions { margin: 0; }
.waiting-card { border-color: #f59e0b; background: #fffbeb; }
.question { white-space: pre-wrap; margin: 0 0 6px; }
.denials { margin: 0 0 6px; padding-left: 18px; }
.denials li { margin: 2px 0; }
.denials code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #fef3c7; padding: 0 4px; border-radius: 4px; }
.answer-label { display: flex; flex-direction: column; font-size: 12px; color: var(--muted); gap: 2px; margin-bottom: 6px; }
.answer-label textarea { font: 13px system-ui, sans-serif; padding: 3px 6px; border: 1px solid var(--line); border-radius: 6px; }
.wb-grid { display: grid; grid-template-columns: minmax(280px, 1fr) minmax(0, 2fr); gap: 12px; align-items: start; }
.events { list-style: none; margin: 0; padding: 0; max-height: 420px; overflow: auto; font-size: 12.5px; }
.events li { padding: 3px 0; border-bottom: 1px solid #f1f5f9; display: grid; grid-template-columns: 64px 1fr; gap: 6px; }
.events .kind { color: var(--muted); font-variant: small-caps; }
.events .ev-text .body { white-space: pre-wrap; }
.events .ev-tool .body { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; color: #1e40af; }
.events .ev-checks pre, .review-side pre { margin: 2px 0; white-space: pre-wrap; max-height: 160px; overflow: auto; background: #f8fafc; padding: 4px 6px; border-radius: 6px; font: 11.5px ui-monospace, SFMono-Regular, Menlo, monospace; }
.events .ev-decision .body { font-weight: 600; }
.events .ev-state .body { color: var(--muted); }
.review-tabs { display: flex; gap: 4px; flex-wrap: wrap; margin-bottom: 6px; }
.review-tabs button.current { background: #fef3c7; border-color: #f59e0b; }
.review-grid { display: grid; grid-template-columns: minmax(0, 1fr) 280px; gap: 10px; }
.diff { min-width: 0; overflow: auto; max-height: 640px; }
.judge { margin: 0 0 8px; padding-left: 18px; font-size: 12.5px; }
.check-failed { color: #991b1b; }
.check-passed { color: #166534; }
`;

export const RUN_WORKBENCH_JS = `
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  ${ELEMENT_JS}
  ${WORKBENCH_COMMON_JS}
  const runId = decodeURIComponent(location.pathname.split('/').pop());
  const base = '/api/runs/' + encodeURIComponent(runId);
  let reviewing = null;
  let known = '';

  function clock(ms) { return new Date(ms).toISOString().slice(11, 19); }
  function bodyOf(e) {
    switch (e.kind) {
      case 'text': return e.text;
      case 'tool': return e.name + (e.detail ? ' ' + e.detail : '');
      case 'state': return e.actor + ' → ' + e.state;
      case 'decision': return 'iteration ' + e.index + ': ' + e.decision + ' (' + e.rule + ') — ' + e.reason;
      case 'note': return e.text;
      case 'finished': return 'run ' + e.status + (e.reason ? ' — ' + e.reason : '');
      default: return '';
    }
  }
  function checksBox(checks) {
    const box = el('div', {});
    for (const c of checks) {
      const ok = c.exitCode === 0;
      box.append(el('div', { class: ok ? 'check-passed' : 'check-failed' }, (ok ? '✓ ' : '✗ ') + c.command + (c.timedOut ? ' (timed out)' : ' (exit ' + c.exitCode + ')')));
      if (c.output) box.append(el('pre', {}, c.output));
    }
    return box;
  }
  function addEvents(events) {
    const list = $('events');
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    // A batch with several decisions (a page opened on a long run) loads the review once, after it.
    let decided = false;
    for (const e of events) {
      const item = el('li', { class: 'ev-' + e.kind, 'data-kind': e.kind }, el('span', { class: 'kind', title: clock(e.at) + ' UTC' }, e.kind === 'tool' && e.file ? 'file' : e.kind));
      if (e.kind === 'tool' && e.file) item.dataset.file = e.file;
      item.append(e.kind === 'checks' ? el('div', { class: 'body' }, checksBox(e.checks)) : el('span', { class: 'body' }, bodyOf(e)));
      list.append(item);
      if (e.kind === 'decision' || e.kind === 'finished') decided = true;
    }
    if (decided) loadReview(reviewing);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  async function answer(allow) {
    const text = $('answer-text').value.trim();
    const body = { answer: text || (allow.length ? 'Allowed: ' + allow.join(', ') + '. Go on.' : '') };
    if (allow.length) body.allow = allow;
    try {
      const result = await post(base + '/answer', body);
      say('note', result.message);
      $('answer-text').value = '';
      refresh();
    } catch (error) {
      say('error', error.message);
    }
  }
  $('answer-send').addEventListener('click', () => answer([]));

  async function refresh() {
    let state;
    try {
      const response = await fetch(base + '/workbench', { cache: 'no-store' });
      state = await response.json();
      if (!response.ok) throw new Error(state.error || ('the viewer answered ' + response.status));
    } catch (error) {
      return say('error', error.message);
    }
    const t = state.task;
    const status = $('wb-status');
    status.textContent = t.branchOutcome || t.status;
    status.className = 'status status-' + t.status;
    document.body.dataset.status = t.status;
    $('wb-waiting').textContent = t.waitingFor ? 'waiting for ' + t.waitingFor : (t.mergedInto ? 'merged into ' + t.mergedInto : '');
    $('wb-actions').replaceChildren(actionButtons(t, () => refresh()));
    const runStatus = $('run-status');
    if (runStatus) { runStatus.textContent = t.status; runStatus.className = 'status status-' + t.status; }
    const waiting = t.status === 'escalated';
    $('waiting').hidden = !waiting;
    if (waiting) {
      $('question').textContent = state.question || '';
      const list = $('denials');
      list.replaceChildren();
      for (const d of state.denials) {
        const allow = el('button', { type: 'button', class: 'allow', 'data-rule': d.rule }, 'Allow ' + d.rule);
        allow.addEventListener('click', () => answer([d.rule]));
        list.append(el('li', { 'data-tool': d.tool }, 'refused: ', el('code', {}, d.tool + ' ' + d.input), ' ', allow));
      }
    }
    const stamp = t.status + '|' + t.iteration + '|' + (t.mergedInto || '');
    if (stamp !== known) { known = stamp; loadReview(reviewing); }
  }

  async function loadReview(iteration) {
    reviewing = iteration;
    const response = await fetch(base + '/review' + (iteration === null ? '' : '?iteration=' + iteration), { cache: 'no-store' });
    const review = await response.json();
    if (!response.ok) {
      $('review-note').textContent = review.error;
      $('diff').replaceChildren();
      return;
    }
    const tabs = $('review-tabs');
    tabs.replaceChildren();
    const tab = (label, value) => {
      const button = el('button', { type: 'button', 'data-iteration': value === null ? 'all' : String(value), class: value === iteration ? 'current' : '' }, label);
      button.addEventListener('click', () => loadReview(value));
      tabs.append(button);
    };
    tab('whole task', null);
    for (const it of review.iterations) tab('iteration ' + it.index + (it.commit ? '' : ' (no change)'), it.index);
    $('review-note').textContent = review.note || '';
    // diff2html's HTML, made by the server from the diff (every text in it escaped).
    $('diff').innerHTML = review.html;
    const shown = iteration === null ? review.iterations : review.iterations.filter((it) => it.index === iteration);
    const judge = $('judge');
    judge.replaceChildren();
    const checks = $('checks');
    checks.replaceChildren();
    for (const it of shown) {
      judge.append(el('li', {}, el('strong', {}, 'iteration ' + it.index + ': ' + it.decision + ' (' + it.rule + ')'), ...it.reasons.map((r) => el('div', {}, r))));
      if (it.checks.length) checks.append(el('div', { class: 'muted' }, 'iteration ' + it.index), checksBox(it.checks));
    }
    document.body.dataset.review = iteration === null ? 'all' : String(iteration);
  }

  const source = new EventSource(base + '/events');
  source.addEventListener('events', (event) => addEvents(JSON.parse(event.data)));
  source.addEventListener('run', () => refresh());
  source.addEventListener('ready', () => {
    $('live-state').textContent = '· streaming';
    refresh().then(() => { document.body.dataset.live = 'true'; });
  });
  source.addEventListener('error', () => {
    $('live-state').textContent = '· reconnecting';
    document.body.dataset.live = 'false';
  });
})();
`;
