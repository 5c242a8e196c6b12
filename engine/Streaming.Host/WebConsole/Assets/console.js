// Streaming console: live refresh and the rule editor's actions. Plain script, no dependencies.
(function () {
  'use strict';
  const $ = (s) => document.querySelector(s);

  // Live refresh: re-read this page and swap its main part, unless the user is working inside it.
  const main = $('main[data-refresh]');
  if (main) {
    setInterval(async () => {
      if (document.hidden || (main.contains(document.activeElement) && document.activeElement !== main)) return;
      try {
        const r = await fetch(location.href, { headers: { Accept: 'text/html' } });
        if (!r.ok) return;
        const next = new DOMParser().parseFromString(await r.text(), 'text/html').querySelector('main');
        if (next) main.innerHTML = next.innerHTML;
      } catch (e) { /* keep the last good view */ }
    }, Number(main.dataset.refresh) * 1000);
  }

  // A running backtest's page polls until it ends, then reloads to show the result.
  const poll = $('[data-poll]');
  if (poll) {
    const id = poll.dataset.poll;
    const timer = setInterval(async () => {
      const r = await fetch('/v1/backtests/' + encodeURIComponent(id));
      if (r.ok && (await r.json()).state !== 'running') { clearInterval(timer); location.reload(); }
    }, 700);
  }

  const text = $('#rules-text');
  if (!text) return;
  const gutter = $('#gutter');
  const errorsList = $('#rule-errors');
  const checkStatus = $('#check-status');
  const actionStatus = $('#action-status');
  const progress = $('#backtest-progress');
  const cancel = $('#cancel-backtest');
  let errorLines = new Set();

  function drawGutter() {
    const lines = text.value.split('\n').length;
    let html = '';
    for (let i = 1; i <= lines; i++) html += '<span data-line="' + i + '"' + (errorLines.has(i) ? ' class="err" title="error on this line"' : '') + '>' + i + '</span>\n';
    gutter.innerHTML = html;
    gutter.scrollTop = text.scrollTop;
  }
  text.addEventListener('input', () => { if (errorLines.size) { errorLines = new Set(); errorsList.innerHTML = ''; checkStatus.textContent = ''; } drawGutter(); });
  text.addEventListener('scroll', () => { gutter.scrollTop = text.scrollTop; });
  drawGutter();

  function goTo(line, column) {
    const lines = text.value.split('\n');
    let at = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) at += lines[i].length + 1;
    at += Math.max(0, column - 1);
    text.focus();
    text.setSelectionRange(at, at);
    text.scrollTop = Math.max(0, (line - 5) * parseFloat(getComputedStyle(text).lineHeight));
  }

  function showErrors(errors) {
    errorLines = new Set(errors.map((e) => e.line));
    errorsList.innerHTML = '';
    for (const e of errors) {
      const li = document.createElement('li');
      li.dataset.line = e.line;
      li.dataset.column = e.column;
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = 'Line ' + e.line + ', column ' + e.column + ': ' + e.message;
      b.addEventListener('click', () => goTo(e.line, e.column));
      li.appendChild(b);
      errorsList.appendChild(li);
    }
    drawGutter();
  }

  function say(el, message, kind) { el.textContent = message; el.className = 'status' + (kind ? ' ' + kind : ''); }

  function headers(extra) {
    const h = Object.assign({}, extra);
    const token = $('#admin-token').value.trim();
    if (token) h.Authorization = 'Bearer ' + token;
    return h;
  }

  async function problem(r) {
    try { const p = await r.json(); return p; } catch (e) { return { title: r.statusText, detail: '' }; }
  }

  async function refused(r, what) {
    const p = await problem(r);
    let message = what + ' refused (' + r.status + '): ' + (p.title || '') + (p.detail ? ' — ' + p.detail : '');
    if (r.status === 401 || r.status === 403) message += '. ' + what + ' needs the admin token: enter it above.';
    if (r.status === 400 && p.errors) showErrors(p.errors);
    say(actionStatus, message, 'error');
  }

  $('#check').addEventListener('click', async () => {
    say(checkStatus, 'Checking…');
    const r = await fetch('/console/rules/check', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: text.value });
    if (!r.ok) { const p = await problem(r); say(checkStatus, 'Check failed (' + r.status + '): ' + (p.detail || p.title || ''), 'error'); return; }
    const result = await r.json();
    showErrors(result.errors);
    say(checkStatus, result.valid ? 'Valid: version ' + result.version : result.errors.length + ' error(s)', result.valid ? 'ok' : 'error');
  });

  $('#apply').addEventListener('click', async () => {
    say(actionStatus, 'Applying…');
    const r = await fetch('/v1/rules', { method: 'PUT', headers: headers({ 'Content-Type': 'application/yaml' }), body: text.value });
    if (r.status === 202) {
      const body = await r.json();
      say(actionStatus, 'Accepted: version ' + body.version + ' is pending and switches at the next checkpoint (running ' + body.active + ').', 'ok');
    } else {
      await refused(r, 'Applying');
    }
  });

  let running = null;
  $('#backtest').addEventListener('click', async () => {
    say(actionStatus, 'Starting a backtest…');
    const r = await fetch('/v1/backtests', { method: 'POST', headers: headers({ 'Content-Type': 'application/json' }), body: JSON.stringify({ dataset: $('#dataset').value, rules: text.value }) });
    if (r.status !== 202) { await refused(r, 'The backtest'); return; }
    running = (await r.json()).id;
    progress.hidden = false;
    cancel.hidden = false;
    const timer = setInterval(async () => {
      const s = await fetch('/v1/backtests/' + encodeURIComponent(running));
      if (!s.ok) return;
      const run = await s.json();
      progress.value = run.progress.fileShare;
      say(actionStatus, 'Backtest ' + run.id + ': ' + run.state + ', ' + run.progress.records.toLocaleString('en') + ' records read');
      if (run.state === 'running') return;
      clearInterval(timer);
      cancel.hidden = true;
      if (run.state === 'done') location.href = '/console/backtests/' + encodeURIComponent(run.id);
      else say(actionStatus, 'Backtest ' + run.state + (run.error ? ': ' + run.error : ''), run.state === 'failed' ? 'error' : '');
    }, 500);
  });

  cancel.addEventListener('click', async () => {
    if (!running) return;
    const r = await fetch('/v1/backtests/' + encodeURIComponent(running), { method: 'DELETE', headers: headers({}) });
    if (r.status !== 202) await refused(r, 'Cancelling');
  });
})();
