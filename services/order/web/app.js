// The live saga page of order-service (docs/WEB.md). No framework: the order API
// (fetch) for state, server-sent events (/events) for every change.
'use strict';

(function () {
  const FAILURES = new Set(['InventoryRejected', 'PaymentFailed', 'ShipmentFailed', 'OrderCancelled']);
  // Each compensation and the step it undoes.
  const UNDOES = { InventoryReleased: 'InventoryReserved', PaymentRefunded: 'PaymentAuthorized', ShipmentCancelled: 'ShipmentScheduled' };
  const UNDOS = new Set(Object.keys(UNDOES));
  const LIST_LIMIT = 30;
  const DEFAULTS = { customer: 'cust-alice', sku: 'sku-book', quantity: 1, token: 'tok_visa', country: 'NL' };
  // The deterministic failures (docs/API.md): what each button sends.
  const VARIANTS = {
    declined: { token: 'tok_chargeDeclined' },
    funds: { token: 'tok_chargeDeclinedInsufficientFunds' },
    limit: { customer: 'cust-frugal', sku: 'sku-headphones' },
    stock: { sku: 'sku-sold-out' },
    country: { country: 'AQ' },
  };

  const $ = (id) => document.getElementById(id);
  const orders = new Map(); // order_id -> summary
  let selected = null; // order_id
  let detail = null; // the selected order as GET /orders/{id} answers, plus live events
  let refetchTimer = null;
  let source = null;
  // The bearer token (docs/WEB.md): pasted, or from the link's #token=, kept for this tab only.
  let bearer = sessionStorage.getItem('saga-token') || '';

  // --- helpers -----------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'title' || k === 'type') e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function money(minor, currency) {
    if (minor === null || minor === undefined) return '—';
    return (minor / 100).toFixed(2) + ' ' + (currency || '');
  }

  // PAYMENT_FAILED may wrap after its underscores (a zero-width space), not mid-word.
  function breakable(s) {
    return String(s).replace(/_/g, '_\u200b');
  }

  function age(iso) {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h';
    return Math.floor(s / 86400) + ' d';
  }

  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }

  function kind(entry) {
    if (entry.compensation === true || UNDOS.has(entry.event_type)) return 'undo';
    if (FAILURES.has(entry.event_type)) return 'failure';
    if (entry.event_type === 'OrderConfirmed') return 'done';
    if (entry.event_type === 'NotificationSent') return 'info';
    return 'forward';
  }

  async function api(method, path, body, headers) {
    const opts = { method, headers: Object.assign({ Accept: 'application/json' }, headers) };
    if (bearer) opts.headers.Authorization = 'Bearer ' + bearer;
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let json = null;
    try { json = await r.json(); } catch (e) { /* not JSON */ }
    if (r.status === 401) signedOut('the token was refused: paste another');
    return { status: r.status, ok: r.ok, json };
  }

  // A random UUID (version 4); crypto.randomUUID needs a secure context, getRandomValues does not.
  function uuid4() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  // POST /orders with an Idempotency-Key of its own, sent again with the same key (4 attempts
  // in all) while there is no answer or a 503: the order is placed at most once.
  async function placeOnce(body) {
    const key = uuid4();
    for (let attempt = 1; ; attempt++) {
      let r = null, error = null;
      try { r = await api('POST', '/orders', body, { 'Idempotency-Key': key }); } catch (e) { error = e; }
      if ((r && r.status !== 503) || attempt === 4) {
        if (r) return r;
        throw error;
      }
      await new Promise((done) => setTimeout(done, 250 * 2 ** attempt));
    }
  }

  // --- the order list ----------------------------------------------------------

  function upsert(o) {
    const old = orders.get(o.order_id) || {};
    orders.set(o.order_id, Object.assign(old, o));
  }

  function renderList() {
    const body = $('orders').tBodies[0];
    const list = [...orders.values()].sort((a, b) => (b.created_at || '').localeCompare(a.created_at || '')).slice(0, LIST_LIMIT);
    body.replaceChildren(...list.map((o) => {
      const mine = o.order_id === selected;
      const btn = el('button', { type: 'button', class: 'link', 'aria-label': 'Show order ' + o.order_id, 'aria-pressed': String(mine), title: o.order_id }, o.order_id.slice(0, 8));
      btn.addEventListener('click', () => select(o.order_id));
      return el('tr', { 'data-order-id': o.order_id, class: mine ? 'selected' : null },
        el('td', null, btn),
        el('td', null, el('span', { class: 'badge ' + (o.status || '').toLowerCase() }, o.status || '…')),
        el('td', { class: 'reason' }, breakable(o.reason || '—'), o.detail ? el('small', null, breakable(o.detail)) : null),
        el('td', null, el('span', { class: 'comp ' + (o.compensation || 'none') }, (o.compensation || 'none').replace('_', ' '))),
        el('td', { class: 'num' }, money(o.total_amount, o.currency)),
        el('td', { class: 'num age', 'data-created': o.created_at || '' }, o.created_at ? age(o.created_at) : '—'));
    }));
    $('orders-empty').hidden = list.length > 0;
  }

  function tickAges() {
    for (const td of document.querySelectorAll('td.age[data-created]')) {
      if (td.dataset.created) td.textContent = age(td.dataset.created);
    }
  }

  async function loadOrders() {
    const r = await api('GET', '/orders?limit=' + LIST_LIMIT).catch(() => null);
    if (!r || !r.ok) return;
    for (const o of r.json.orders) upsert(o);
    renderList();
  }

  // --- the selected order's timeline ---------------------------------------------

  function renderDetail() {
    const d = detail;
    $('tl-hint').hidden = !!d;
    $('tl-head').hidden = !d;
    if (!d) { $('tl').replaceChildren(); renderWaiting(); return; }
    $('tl-order').textContent = d.order_id;
    const st = $('tl-status');
    st.textContent = d.status || '…';
    st.className = 'badge ' + (d.status || '').toLowerCase();
    $('tl-reason').textContent = d.reason ? d.reason + (d.detail ? ' (' + d.detail + ')' : '') : '—';
    $('tl-comp').textContent = (d.compensation || 'none').replace('_', ' ');
    $('tl-total').textContent = money(d.total_amount, d.currency);
    // The order's trace in the tracing backend's UI (trace_url: order-service's TRACING_UI_URL).
    $('tl-trace-row').hidden = !d.trace_url;
    if (d.trace_url) { $('tl-trace').href = d.trace_url; $('tl-trace').title = 'trace ' + d.trace_id; }
    $('tl').replaceChildren(...(d.timeline || []).map((t) => {
      const k = kind(t);
      const mark = { forward: '●', done: '✓', failure: '✕', undo: '↶', info: '✉' }[k];
      const what = { forward: 'step', done: 'outcome', failure: 'failure', undo: 'compensation', info: 'notice' }[k];
      return el('li', { class: 'step ' + k, 'data-event-type': t.event_type },
        el('span', { class: 'mark', 'aria-hidden': 'true' }, mark),
        el('div', { class: 'card' },
          el('p', { class: 'title' },
            el('strong', null, t.event_type),
            k === 'undo' ? el('span', { class: 'undo-tag' }, '↶ undoes ' + (UNDOES[t.event_type] || 'a step')) : null,
            el('span', { class: 'sr-only' }, ' (' + what + ')')),
          el('p', { class: 'meta' }, (t.service || '') + ' · ', el('time', { dateTime: t.occurred_at }, clock(t.occurred_at))),
          el('p', { class: 'summary' }, t.summary || '')));
    }));
    renderWaiting();
  }

  // "waiting for payment-service (PaymentAuthorized or PaymentFailed), times out in 12 s":
  // what the order API says the saga waits for (its "waiting", from the saga's declaration),
  // counted down with this page's clock from when the answer came.
  function waitingText(d) {
    const w = d.waiting;
    if (!w || !Array.isArray(w.on)) return '';
    const who = w.on.map((x) => x.service + ' (' + x.events.join(' or ') + ')').join(', ');
    let text = who ? 'waiting for ' + who : '';
    if (d.status === 'PENDING' && typeof w.deadline_in_ms === 'number') {
      const left = Math.ceil((w.deadline_in_ms - (Date.now() - (d.waitingAt || Date.now()))) / 1000);
      text += (text ? ', ' : '') + (left > 0 ? 'times out in ' + left + ' s' : 'timed out: the sweeper cancels it now');
    }
    return text;
  }

  function renderWaiting() {
    const p = $('tl-waiting');
    const text = detail ? waitingText(detail) : '';
    p.hidden = !text;
    p.textContent = text;
    p.classList.toggle('late', /timed out/.test(text));
  }

  async function loadDetail(id) {
    const r = await api('GET', '/orders/' + encodeURIComponent(id)).catch(() => null);
    if (!r || !r.ok || id !== selected) return;
    const live = detail && detail.order_id === id ? detail.timeline : [];
    const known = new Set(r.json.timeline.map((t) => t.event_id));
    // Events the stream brought that this answer did not have yet stay.
    for (const t of live) if (!known.has(t.event_id)) r.json.timeline.push(t);
    detail = r.json;
    detail.waitingAt = Date.now();
    upsert(Object.assign({}, r.json, { timeline: undefined, items: undefined }));
    renderDetail();
    renderList();
  }

  function select(id) {
    if (selected !== id) detail = null;
    selected = id;
    renderList();
    renderDetail();
    loadDetail(id);
  }

  function refetchSoon() {
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(() => { if (selected) loadDetail(selected); }, 300);
  }

  // --- server-sent events --------------------------------------------------------

  function onTimeline(ev) {
    let d;
    try { d = JSON.parse(ev.data); } catch (e) { return; }
    const o = { order_id: d.order_id, status: d.status, reason: d.reason, detail: d.detail, compensation: d.compensation };
    if (d.customer_id) o.customer_id = d.customer_id;
    if (d.total_amount !== null && d.total_amount !== undefined) o.total_amount = d.total_amount;
    if (d.currency) o.currency = d.currency;
    if (d.created_at) o.created_at = d.created_at;
    upsert(o);
    renderList();
    if (d.order_id === selected && detail) {
      Object.assign(detail, o);
      if (!detail.timeline.some((t) => t.event_id === d.event_id)) {
        detail.timeline.push({ event_type: d.event_type, service: d.service, occurred_at: d.occurred_at, event_id: d.event_id, causation_id: d.causation_id, summary: d.summary, compensation: d.event_is_compensation });
      }
      renderDetail();
      refetchSoon(); // the causal order of the timeline comes from the API
    }
  }

  function feedState(state, text) {
    const p = $('feed-state');
    p.dataset.state = state;
    p.textContent = text;
  }

  // --- who is signed in -------------------------------------------------------------

  // The claims of a JWT, for display only (the server verifies it).
  function claims(token) {
    try {
      const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(part));
    } catch (e) { return null; }
  }

  function signedOut(why) {
    if (source) { source.close(); source = null; }
    feedState('signed-out', why);
    $('auth-who').textContent = '';
  }

  function useToken(token) {
    bearer = token.trim();
    if (bearer) sessionStorage.setItem('saga-token', bearer);
    else sessionStorage.removeItem('saga-token');
    if (source) { source.close(); source = null; }
    orders.clear();
    selected = null;
    detail = null;
    renderList();
    renderDetail();
    if (!bearer) { signedOut('sign in: paste a bearer token'); return; }
    const c = claims(bearer);
    $('auth-who').textContent = c ? c.role + ' ' + c.sub : '';
    if (c && c.role === 'customer') $('f-customer').value = c.sub;
    connect(); // first, so nothing that happens while the list loads is missed
    loadOrders();
  }

  function connect() {
    if (!window.EventSource) { feedState('down', 'no live updates in this browser'); return; }
    let wasDown = false;
    // EventSource sends no headers: the token goes in the query (the server takes it on /events only).
    source = new EventSource('/events?access_token=' + encodeURIComponent(bearer));
    source.addEventListener('open', () => {
      feedState('live', 'live');
      if (wasDown) { loadOrders(); if (selected) loadDetail(selected); }
      wasDown = false;
    });
    source.addEventListener('error', () => {
      wasDown = true;
      feedState('down', 'reconnecting…');
      // A refused token closes the stream for good: ask the API why.
      if (source && source.readyState === EventSource.CLOSED) loadOrders();
    });
    source.addEventListener('timeline', onTimeline);
    source.addEventListener('resync', () => { loadOrders(); if (selected) loadDetail(selected); });
    // The server ends a stream when its token expires: no reconnecting with that token.
    source.addEventListener('end', () => {
      source.close();
      feedState('down', 'token expired: sign in again for live updates');
    });
  }

  // --- placing orders ------------------------------------------------------------

  async function loadProducts() {
    const r = await api('GET', '/products').catch(() => null);
    if (!r || !r.ok) return;
    const sel = $('f-sku');
    const current = sel.value;
    sel.replaceChildren(...r.json.products.map((p) =>
      el('option', { value: p.sku }, p.sku + ' — ' + p.name + ' (' + money(p.unit_price, p.currency) + ')')));
    sel.value = r.json.products.some((p) => p.sku === current) ? current : DEFAULTS.sku;
  }

  function formValues() {
    return {
      customer: $('f-customer').value.trim(),
      sku: $('f-sku').value,
      quantity: parseInt($('f-qty').value, 10),
      token: $('f-token').value.trim(),
      country: $('f-country').value.trim().toUpperCase(),
    };
  }

  function setForm(v) {
    $('f-customer').value = v.customer;
    $('f-sku').value = v.sku;
    $('f-qty').value = v.quantity;
    $('f-token').value = v.token;
    $('f-country').value = v.country;
  }

  async function place(v, label) {
    const out = $('place-result');
    out.className = 'result';
    out.textContent = 'Placing ' + label + '…';
    const body = {
      customer_id: v.customer,
      currency: 'EUR',
      payment_token: v.token,
      items: [{ sku: v.sku, quantity: v.quantity }],
      shipping_address: { recipient: 'Ada Lovelace', line1: 'Main Street 1', city: 'Utrecht', postal_code: '3511 AB', country: v.country },
    };
    let r;
    try { r = await placeOnce(body); } catch (e) {
      out.className = 'result error';
      out.textContent = 'The order service did not answer: ' + e.message;
      return;
    }
    if (!r.ok || !r.json || !r.json.order_id) {
      out.className = 'result error';
      const j = r.json || {};
      const fields = (j.fields || []).map((f) => f.field + ': ' + f.message).join('; ');
      out.textContent = 'Not placed (' + r.status + '): ' + (fields || j.message || 'error');
      return;
    }
    upsert(Object.assign({}, r.json, { timeline: undefined, items: undefined }));
    out.textContent = 'Placed ' + label + ' ' + r.json.order_id.slice(0, 8) + ' (' + r.status + '); watch it below.';
    selected = r.json.order_id;
    detail = r.json;
    renderList();
    renderDetail();
    refetchSoon();
  }

  function init() {
    $('order-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const v = formValues();
      if (!$('order-form').reportValidity()) return;
      place(v, 'order');
    });
    for (const b of document.querySelectorAll('button[data-variant]')) {
      b.addEventListener('click', () => {
        const v = Object.assign({}, DEFAULTS, VARIANTS[b.dataset.variant]);
        setForm(v);
        place(v, b.textContent.toLowerCase() + ' order');
      });
    }
    $('auth-form').addEventListener('submit', (e) => {
      e.preventDefault();
      useToken($('f-bearer').value);
      $('f-bearer').value = '';
    });
    // A link with #token=... (scripts/stack prints one): taken once, then removed from the URL.
    const m = /^#token=([A-Za-z0-9._-]+)$/.exec(location.hash);
    if (m) {
      bearer = m[1];
      history.replaceState(null, '', location.pathname + location.search);
    }
    loadProducts();
    useToken(bearer);
    setInterval(() => { tickAges(); renderWaiting(); }, 1000);
    setInterval(() => { if (bearer) loadOrders(); }, 30000);
    renderDetail();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
