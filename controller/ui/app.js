// Stampede's web UI: plain JavaScript over the REST API, no build step. The token stays in this
// tab's sessionStorage and travels only in the Authorization header, never in a URL. The page
// polls only while it is shown: the list every 2 s, an open test every second, asking only for
// the seconds it has not seen (results?since=N); a closed tab costs the server nothing.
'use strict';
(function () {
  const TERMINAL = ['Succeeded', 'Failed', 'Aborted'];
  const TOKEN_KEY = 'stampede.token';
  const $ = (id) => document.getElementById(id);
  const state = {
    info: null,
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    view: null,      // the open test: {id, series: Map(second -> point), results, timer}
    listTimer: null,
  };

  // ---- the API

  async function api(path, options) {
    const opts = Object.assign({ cache: 'no-store', credentials: 'omit' }, options || {});
    opts.headers = Object.assign({}, opts.headers || {});
    if (state.token) opts.headers.Authorization = 'Bearer ' + state.token;
    const r = await fetch(path, opts);
    if (r.status === 401 && state.info && state.info.tokenRequired) {
      signOut('The server refused the token (401): sign in again.');
      throw new Error('unauthorized');
    }
    return r;
  }

  function say(text) { $('status').textContent = text || ''; }

  // ---- formatting

  function formatNs(ns) {
    if (typeof ns !== 'number' || !isFinite(ns)) return '-';
    if (ns < 1e3) return ns.toFixed(0) + 'ns';
    // Three digits, never an exponent.
    const p3 = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
    if (ns < 1e6) return p3(ns / 1e3) + 'us';
    if (ns < 1e9) return p3(ns / 1e6) + 'ms';
    return p3(ns / 1e9) + 's';
  }
  // An axis label: 1000 rather than 1.00e+3, 2.5 rather than 2.50.
  const tick = (v) => (v >= 1000 ? String(Math.round(v)) : String(Number(v.toPrecision(3))));
  const fixed1 = (v) => (typeof v === 'number' ? v.toFixed(1) : '-');
  const count = (v) => (typeof v === 'number' ? String(Math.round(v)) : '-');
  const percent = (errors, requests) =>
    requests > 0 ? (100 * errors / requests).toFixed(2) + '%' : '-';

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  // ---- charts: SVG drawn here, one scale per chart, a second's figure at its end

  const W = 760, H = 220, LEFT = 64, RIGHT = 10, TOP = 22, BOTTOM = 24;
  const SVG = 'http://www.w3.org/2000/svg';

  function niceTop(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v * (1 - 1e-12)) return m * p;
    return 10 * p;
  }

  function svgEl(name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // lines: [{label, points: [[second, value]...], dashed}]
  function drawChart(svg, lines, format) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    let top = 0, xMax = 1, drawn = 0;
    for (const l of lines) {
      for (const [x, y] of l.points) { top = Math.max(top, y); xMax = Math.max(xMax, x + 1); }
    }
    top = niceTop(top);
    const pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    const px = (x) => LEFT + pw * x / xMax, py = (y) => TOP + ph * (1 - y / top);
    for (let t = 0; t <= 4; t++) {
      const v = top * t / 4;
      svg.appendChild(svgEl('line', { class: 'gridline', x1: LEFT, x2: W - RIGHT, y1: py(v), y2: py(v) }));
      svg.appendChild(svgEl('text', { class: 'tick', x: LEFT - 6, y: py(v) + 4 }, format(v)));
    }
    const step = Math.max(1, niceTop(xMax / 8));
    for (let x = 0; x <= xMax; x += step) {
      svg.appendChild(svgEl('text', { class: 'xtick', x: px(x), y: H - 8 }, x + 's'));
    }
    lines.forEach((l, i) => {
      const cls = 's' + (i % 4) + (l.dashed ? ' dashed' : '');
      const pts = l.points.map(([x, y]) => px(x + 1).toFixed(1) + ',' + py(y).toFixed(1)).join(' ');
      const line = svgEl('polyline', { class: cls, points: pts });
      line.appendChild(svgEl('title', {}, l.label));
      svg.appendChild(line);
      drawn += l.points.length;
      svg.appendChild(svgEl('line', { class: cls, x1: LEFT + 10 + 140 * i, x2: LEFT + 30 + 140 * i, y1: 10, y2: 10 }));
      svg.appendChild(svgEl('text', { class: 'legend', x: LEFT + 34 + 140 * i, y: 14 }, l.label));
    });
    // What a test (or a curious reader) can check: how many points the chart holds.
    svg.setAttribute('data-points', String(drawn));
  }

  // ---- sign-in

  function signOut(message) {
    state.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    $('signin-error').textContent = message || '';
    route();
  }

  async function signIn(event) {
    event.preventDefault();
    const token = $('token').value.trim();
    $('signin-error').textContent = '';
    const r = await fetch('/api/v1/loadtests', {
      cache: 'no-store', credentials: 'omit', headers: { Authorization: 'Bearer ' + token },
    });
    if (r.status === 401) {
      $('signin-error').textContent = 'The server refused this token.';
      return;
    }
    if (!r.ok) {
      $('signin-error').textContent = 'The server answered ' + r.status + '.';
      return;
    }
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    route();
  }

  // ---- the list of tests

  async function refreshList() {
    clearTimeout(state.listTimer);
    if ($('home').hidden) return;
    if (!document.hidden) {
      try {
        const r = await api('/api/v1/loadtests');
        if (r.ok) {
          renderList((await r.json()).items || []);
          say('');
        } else {
          say('The list failed: ' + r.status);
        }
      } catch (e) {
        if (e.message !== 'unauthorized') say('The server is unreachable: ' + e.message);
      }
    }
    state.listTimer = setTimeout(refreshList, 2000);
  }

  function renderList(items) {
    const body = $('tests').tBodies[0];
    body.textContent = '';
    $('no-tests').hidden = items.length > 0;
    for (const it of items.slice().reverse()) {
      const s = it.summary || {};
      const tr = document.createElement('tr');
      tr.dataset.id = it.id;
      cell(tr, it.name);
      cell(tr, it.namespace);
      cell(tr, it.phase || 'Pending', 'phase ' + (it.phase || 'Pending'));
      cell(tr, count(s.requests || 0));
      cell(tr, fixed1(s.rps || 0));
      cell(tr, s.p95 || '-');
      cell(tr, count(s.errors || 0) + ' (' + percent(s.errors || 0, s.requests || 0) + ')');
      tr.addEventListener('click', () => { location.hash = '#/tests/' + encodeURIComponent(it.id); });
      body.appendChild(tr);
    }
  }

  // ---- starting a test

  const looksNumeric = (s) => /^-?\d+(\.\d+)?$/.test(s);

  function specFromForm(f) {
    const v = (n) => f.elements[n].value.trim();
    // A number when it reads as one; otherwise the text, so the server names the field.
    const num = (n) => (looksNumeric(v(n)) ? Number(v(n)) : v(n));
    const model = v('model');
    const load = {};
    load[model] = num('level');
    if (v('spawnRate')) load.spawnRate = num('spawnRate');
    if (v('connections')) load.connections = num('connections');
    if (v('thinkMin') || v('thinkMax')) {
      load.thinkTime = { min: v('thinkMin') || '0s' };
      if (v('thinkMax')) load.thinkTime.max = v('thinkMax');
    }
    const spec = {
      target: { url: v('url') },
      requests: [{ method: v('method') || 'GET', path: v('path') }],
      load: load,
    };
    if (v('duration')) spec.duration = v('duration');
    if (v('agents')) spec.agents = num('agents');
    const thresholds = v('thresholds').split('\n').map((s) => s.trim()).filter((s) => s);
    if (thresholds.length) spec.thresholds = thresholds;
    const metadata = { name: v('name') };
    if (v('namespace')) metadata.namespace = v('namespace');
    return { apiVersion: 'stampede.dev/v1alpha1', kind: 'LoadTest', metadata: metadata, spec: spec };
  }

  function clearProblems(form, list) {
    form.querySelectorAll('.field-error').forEach((e) => e.remove());
    form.querySelectorAll('.invalid').forEach((e) => e.classList.remove('invalid'));
    list.textContent = '';
  }

  // Each problem "spec.load.users: must be > 0" goes under the input whose data-field is its path
  // or the nearest enclosing one; the rest (and every problem of a pasted spec) into the list.
  function showProblems(form, list, problems) {
    clearProblems(form, list);
    const inputs = Array.from(form.querySelectorAll('[data-field]')).filter((e) => e.dataset.field);
    for (const p of problems) {
      const colon = p.indexOf(': ');
      const path = colon > 0 ? p.slice(0, colon) : '';
      let best = null;
      for (const input of inputs) {
        const f = input.dataset.field;
        if (path === f || path.startsWith(f + '.') || path.startsWith(f + '[')) {
          if (!best || f.length > best.dataset.field.length) best = input;
        }
      }
      if (best) {
        best.classList.add('invalid');
        const note = document.createElement('span');
        note.className = 'field-error';
        note.dataset.for = best.dataset.field;
        note.textContent = p;
        best.insertAdjacentElement('afterend', note);
      } else {
        const li = document.createElement('li');
        li.textContent = p;
        list.appendChild(li);
      }
    }
  }

  async function submit(form, list, body, type) {
    clearProblems(form, list);
    let r;
    try {
      r = await api('/api/v1/loadtests', {
        method: 'POST', headers: { 'Content-Type': type }, body: body,
      });
    } catch (e) {
      if (e.message !== 'unauthorized') showProblems(form, list, ['the server is unreachable: ' + e.message]);
      return;
    }
    const answer = await r.json().catch(() => ({}));
    if (r.status === 201) {
      location.hash = '#/tests/' + encodeURIComponent(answer.id);
      return;
    }
    showProblems(form, list, answer.problems || [answer.error || 'the server answered ' + r.status]);
  }

  function setModel(model) {
    const level = $('form').elements.level;
    level.dataset.field = 'spec.load.' + model;
    $('level-label').textContent = model === 'rate' ? 'Rate (requests/s)' : 'Users';
  }

  function showTab(paste) {
    $('form').hidden = paste;
    $('paste').hidden = !paste;
    $('tab-form').classList.toggle('active', !paste);
    $('tab-paste').classList.toggle('active', paste);
  }

  // ---- one test, live

  function openTest(id) {
    closeTest();
    state.view = { id: id, series: new Map(), results: null, timer: null, request: '*' };
    $('view-name').textContent = id;
    $('view-phase').textContent = '';
    $('view-message').textContent = '';
    $('request').textContent = '';
    $('abort').hidden = !!(state.info && state.info.readOnly);
    $('abort').disabled = true;
    pollTest();
  }

  function closeTest() {
    if (state.view) clearTimeout(state.view.timer);
    state.view = null;
  }

  async function pollTest() {
    const view = state.view;
    if (!view) return;
    clearTimeout(view.timer);
    let done = false;
    if (!document.hidden) {
      // A small overlap: a second's figures can still change while late reports arrive.
      let last = -1;
      for (const s of view.series.keys()) last = Math.max(last, s);
      const since = Math.max(-1, last - 3);
      try {
        const r = await api('/api/v1/loadtests/' + encodeURIComponent(view.id) + '/results?since=' + since);
        if (view !== state.view) return;
        if (r.status === 404) {
          say('No test with id ' + view.id + ' (forgotten, or never started).');
          return;
        }
        if (r.ok) {
          const results = await r.json();
          for (const p of results.series || []) view.series.set(p.second, p);
          view.results = results;
          renderTest(view);
          done = TERMINAL.includes((results.status || {}).phase);
          say('');
        } else {
          say('Results failed: ' + r.status);
        }
      } catch (e) {
        if (e.message !== 'unauthorized') say('The server is unreachable: ' + e.message);
      }
    }
    if (!done && view === state.view) view.timer = setTimeout(pollTest, 1000);
  }

  function renderTest(view) {
    const res = view.results;
    const status = res.status || {};
    const phase = status.phase || 'Pending';
    $('view-name').textContent = (res.metadata || {}).namespace + '/' + (res.metadata || {}).name;
    $('view-phase').textContent = phase;
    $('view-phase').className = 'phase ' + phase;
    document.body.dataset.phase = phase;
    $('view-message').textContent = [status.reason, status.message].filter((s) => s).join(': ');
    $('abort').disabled = TERMINAL.includes(phase);

    const names = (res.requests || []).map((r) => r.name);
    const select = $('request');
    if (select.options.length !== names.length + 1) {
      select.textContent = '';
      for (const n of ['*'].concat(names)) {
        const o = document.createElement('option');
        o.value = n;
        o.textContent = n === '*' ? 'all requests' : n;
        select.appendChild(o);
      }
      select.value = view.request;
    }

    const body = $('summary').tBodies[0];
    body.textContent = '';
    const row = (name, e) => {
      const tr = document.createElement('tr');
      const l = e.latencyNs || {};
      tr.dataset.request = name;
      cell(tr, name);
      cell(tr, count(e.requests), 'requests');
      cell(tr, count(e.errors), 'errors');
      cell(tr, percent(e.errors, e.requests));
      for (const k of ['p50', 'p90', 'p95', 'p99', 'p999', 'max']) cell(tr, formatNs(l[k]), k);
      body.appendChild(tr);
    };
    if (res.summary) row('total', res.summary);
    for (const r of res.requests || []) row(r.name, r);

    const stages = res.stages || [];
    $('stages-section').hidden = stages.length === 0;
    const sbody = $('stages').tBodies[0];
    sbody.textContent = '';
    for (const s of stages) {
      const tr = document.createElement('tr');
      const l = s.summary.latencyNs || {};
      cell(tr, String(s.index + 1));
      cell(tr, s.kind + (s.approximate ? '~' : ''));
      cell(tr, s.from === s.to ? String(s.from) : s.from + ' -> ' + s.to);
      cell(tr, s.startSeconds + '-' + s.endSeconds + 's');
      cell(tr, count(s.summary.requests), 'requests');
      cell(tr, count(s.summary.errors));
      cell(tr, fixed1(s.summary.rps));
      for (const k of ['p50', 'p95', 'p99', 'max']) cell(tr, formatNs(l[k]));
      sbody.appendChild(tr);
    }
    drawCharts(view);
  }

  function drawCharts(view) {
    const points = Array.from(view.series.values()).sort((a, b) => a.second - b.second);
    const req = view.request;
    const of = (p) => (req === '*' ? p : (p.byRequest || {})[req]);
    const line = (label, key, dashed, scale) => ({
      label: label,
      dashed: !!dashed,
      points: points.filter((p) => of(p) && typeof of(p)[key] === 'number')
        .map((p) => [p.second, of(p)[key] / (scale || 1)]),
    });
    const rps = [line('achieved', 'requests')];
    if (req === '*' && points.some((p) => typeof p.targetRps === 'number')) {
      rps.push({
        label: 'target', dashed: true,
        points: points.filter((p) => typeof p.targetRps === 'number').map((p) => [p.second, p.targetRps]),
      });
    }
    drawChart($('chart-rps'), rps, tick);
    drawChart($('chart-latency'),
      [line('p50', 'p50', false, 1e6), line('p95', 'p95', false, 1e6), line('p99', 'p99', false, 1e6),
        line('max', 'max', true, 1e6)], (v) => tick(v) + 'ms');
    drawChart($('chart-errors'), [line('errors', 'errors')], tick);
    const open = points.some((p) => typeof p.targetRps === 'number');
    $('users-title').textContent = open ? 'Requests in flight' : 'Active users';
    drawChart($('chart-users'), [{
      label: open ? 'in flight' : 'users', dashed: false,
      points: points.map((p) => [p.second, open ? p.inFlight || 0 : p.activeUsers || 0]),
    }], tick);
  }

  async function abortTest() {
    const view = state.view;
    if (!view) return;
    $('abort').disabled = true;
    const r = await api('/api/v1/loadtests/' + encodeURIComponent(view.id) + '/abort', { method: 'POST' });
    if (r.status !== 202) {
      const answer = await r.json().catch(() => ({}));
      say('Abort: ' + (answer.error || r.status));
    }
    pollTest();
  }

  // The token cannot ride on a link, so a download is a fetch turned into a file.
  async function download(suffix, extension) {
    const view = state.view;
    if (!view) return;
    const r = await api('/api/v1/loadtests/' + encodeURIComponent(view.id) + '/' + suffix);
    if (!r.ok) {
      say('Download failed: ' + r.status);
      return;
    }
    const blob = await r.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'stampede-' + view.id + '.' + extension;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  // ---- routing: #/ the list and the form, #/tests/ID one test

  function route() {
    const needsToken = state.info && state.info.tokenRequired && !state.token;
    $('signin').hidden = !needsToken;
    $('signout').hidden = !(state.info && state.info.tokenRequired && state.token);
    const m = /^#\/tests\/(.+)$/.exec(location.hash);
    $('home').hidden = needsToken || !!m;
    $('view').hidden = needsToken || !m;
    if (needsToken) {
      closeTest();
      $('token').focus();
      return;
    }
    if (m) {
      const id = decodeURIComponent(m[1]);
      if (!state.view || state.view.id !== id) openTest(id);
    } else {
      closeTest();
      refreshList();
    }
  }

  async function start() {
    try {
      const r = await fetch('/api/v1/info', { cache: 'no-store', credentials: 'omit' });
      state.info = await r.json();
    } catch (e) {
      say('The server is unreachable: ' + e.message);
      return;
    }
    $('mode').textContent = state.info.readOnly ? 'read-only: LoadTests are made in Kubernetes' : '';
    $('new').hidden = !!state.info.readOnly;
    $('signin-form').addEventListener('submit', signIn);
    $('signout').addEventListener('click', () => signOut(''));
    $('form').addEventListener('submit', (e) => {
      e.preventDefault();
      submit($('form'), $('form-problems'), JSON.stringify(specFromForm($('form'))), 'application/json');
    });
    $('paste').addEventListener('submit', (e) => {
      e.preventDefault();
      const text = $('spec').value;
      submit($('paste'), $('paste-problems'), text,
        /^\s*\{/.test(text) ? 'application/json' : 'application/yaml');
    });
    $('form').elements.model.addEventListener('change', (e) => setModel(e.target.value));
    $('tab-form').addEventListener('click', () => showTab(false));
    $('tab-paste').addEventListener('click', () => showTab(true));
    $('abort').addEventListener('click', abortTest);
    $('download-json').addEventListener('click', () => download('results', 'json'));
    $('download-csv').addEventListener('click', () => download('results.csv', 'csv'));
    $('download-html').addEventListener('click', () => download('report.html', 'html'));
    $('request').addEventListener('change', (e) => {
      if (!state.view) return;
      state.view.request = e.target.value;
      drawCharts(state.view);
    });
    window.addEventListener('hashchange', route);
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) return;
      if (state.view) pollTest(); else refreshList();
    });
    document.body.dataset.ready = 'true';
    route();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
