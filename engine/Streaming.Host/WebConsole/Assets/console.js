// Streaming console: charts, live refresh and the rule editor's actions. Plain script; the charts use Apache ECharts
// (echarts.min.js, served by the engine) when the page loads it.
(function () {
  'use strict';
  const $ = (s) => document.querySelector(s);

  // Charts: each .echart element carries its ECharts option as JSON (built by the engine from the API's numbers).
  // Tooltips give every value as people read it and raw, as the API gave it.
  function human(v, kind) {
    if (v === null || v === undefined || v === '-') return '\u2013';
    const n = Number(v);
    if (kind === 'percent') return (n * 100).toLocaleString('en', { minimumFractionDigits: 1, maximumFractionDigits: 1 }) + ' %';
    return n.toLocaleString('en', { maximumFractionDigits: 2 });
  }
  function esc(t) { return String(t).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';'); }
  function raw(v) { return v === null || v === undefined ? 'no value' : 'raw ' + esc(v); }

  function tooltips(option) {
    const kind = option.valueKind || 'count';
    for (const axis of [].concat(option.xAxis || [], option.yAxis || [])) {
      if (axis.type === 'value') axis.axisLabel = Object.assign({}, axis.axisLabel, { formatter: (v) => human(v, kind) });
    }
    if (!option.tooltip) return;
    option.tooltip.formatter = (params) => {
      if (Array.isArray(params)) {
        return esc(params.length ? params[0].axisValueLabel : '') + params.map((p) =>
          '<br>' + p.marker + esc(p.seriesName) + ': <b>' + human(p.value, kind) + '</b> <small>(' + raw(p.value) + ')</small>').join('');
      }
      const d = params.data || {};
      if (params.dataType === 'edge') {
        return esc(String(d.from).replace(/_/g, ' ')) + ' \u2192 ' + esc(String(d.to).replace(/_/g, ' ')) + ': <b>' + human(d.value) + '</b> <small>(' + raw(d.value) + ')</small>';
      }
      const name = d.stage !== undefined ? d.stage.replace(/_/g, ' ') : params.name;
      return esc(name) + ': <b>' + human(params.value, kind) + '</b> <small>(' + raw(params.value) + ')</small>';
    };
  }

  function initCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll('.echart[data-chart]').forEach((el) => {
      const option = JSON.parse(el.dataset.chart);
      tooltips(option);
      const chart = window.echarts.getInstanceByDom(el) || window.echarts.init(el, null, { renderer: 'svg' });
      chart.setOption(option);
    });
  }
  function disposeCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll('.echart').forEach((el) => { const c = window.echarts.getInstanceByDom(el); if (c) c.dispose(); });
  }
  initCharts(document);
  window.addEventListener('resize', () => {
    if (!window.echarts) return;
    document.querySelectorAll('.echart').forEach((el) => { const c = window.echarts.getInstanceByDom(el); if (c) c.resize(); });
  });

  // Live refresh: re-read this page and swap its main part, unless the user is working inside it.
  const main = $('main[data-refresh]');
  if (main) {
    setInterval(async () => {
      if (document.hidden || (main.contains(document.activeElement) && document.activeElement !== main)) return;
      try {
        const r = await fetch(location.href, { headers: { Accept: 'text/html' } });
        if (!r.ok) return;
        const next = new DOMParser().parseFromString(await r.text(), 'text/html').querySelector('main');
        if (next) { disposeCharts(main); main.innerHTML = next.innerHTML; initCharts(main); }
      } catch (e) { /* keep the last good view */ }
    }, Number(main.dataset.refresh) * 1000);
  }

  // A running backtest's page re-reads itself (with the console's sign-in, if any) until the run ends, then reloads.
  const poll = $('[data-poll]');
  if (poll) {
    const timer = setInterval(async () => {
      const r = await fetch(location.href, { headers: { Accept: 'text/html' } });
      if (r.ok && !(await r.text()).includes('data-poll=')) { clearInterval(timer); location.reload(); }
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
      const s = await fetch('/v1/backtests/' + encodeURIComponent(running), { headers: headers({}) });
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
