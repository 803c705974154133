/** The scripts every page of the viewer shares, pasted into each page's own asset. */

/** The pages' one DOM helper: an element with attributes and children, text never parsed as HTML. */
export const ELEMENT_JS = `function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const child of children) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    return node;
  }`;

/**
 * The workbench's part of every page: the store's token, taken from the URL `obra view` printed on the first load
 * (then dropped from the address bar) and kept in sessionStorage and localStorage; POSTs to the API with it as
 * a Bearer header; the API's one-line errors shown on the page; the action buttons a task's state allows.
 */
export const WORKBENCH_COMMON_JS = `
  const TOKEN_KEY = 'obra-token:' + location.host;
  (function takeToken() {
    const params = new URLSearchParams(location.search);
    const given = params.get('token');
    if (!given) return;
    try { sessionStorage.setItem(TOKEN_KEY, given); localStorage.setItem(TOKEN_KEY, given); } catch (e) { /* storage off: this page only */ window.__obraToken = given; }
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? '?' + rest : '') + location.hash);
  })();
  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY) || window.__obraToken || ''; } catch (e) { return window.__obraToken || ''; }
  }
  async function post(path, body) {
    const response = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token() }, body: JSON.stringify(body || {}) });
    let json = null;
    try { json = await response.json(); } catch (e) { json = null; }
    if (!response.ok) {
      const error = new Error((json && json.error) || ('the viewer answered ' + response.status));
      error.conflicts = (json && json.conflicts) || [];
      throw error;
    }
    return json;
  }
  function say(kind, message, files) {
    const box = document.getElementById(kind);
    const other = document.getElementById(kind === 'error' ? 'note' : 'error');
    if (other) { other.hidden = true; other.replaceChildren(); }
    box.replaceChildren(el('span', { class: 'message' }, message));
    if (files && files.length) {
      const list = el('ul', { class: 'conflicts' });
      for (const file of files) list.append(el('li', {}, file));
      box.append(el('div', {}, 'conflicting files:'), list);
    }
    box.hidden = false;
  }
  const ACTION_LABELS = { pause: 'Pause', resume: 'Resume', cancel: 'Cancel', retry: 'Retry', merge: 'Merge', discard: 'Discard' };
  function actionButtons(task, after) {
    const box = el('div', { class: 'actions' });
    for (const action of task.actions) {
      if (!ACTION_LABELS[action]) continue;
      const button = el('button', { type: 'button', class: 'action action-' + action, 'data-action': action }, ACTION_LABELS[action]);
      button.addEventListener('click', async (event) => {
        event.preventDefault();
        event.stopPropagation();
        button.disabled = true;
        try {
          const result = await post('/api/runs/' + encodeURIComponent(task.runId) + '/' + action);
          say('note', result.message || (action + ': ' + task.runId));
          if (after) after(action, result);
        } catch (error) {
          say('error', error.message, error.conflicts);
        } finally {
          button.disabled = false;
        }
      });
      box.append(button);
    }
    return box;
  }
`;
