// The approver's inbox: the pending calls the signed-in person may decide, and the decisions.
//
// Safety rules this file keeps:
// - Everything that comes from the API (tool arguments are model output) is put in the page with
//   textContent / text nodes made by createElement; no HTML string is ever parsed (the page's
//   Content-Security-Policy enforces Trusted Types with no policy, so innerHTML would throw).
// - Invisible and bidirectional control characters in API text are shown as visible markers, so a
//   right-to-left override cannot disguise an argument.
// - Every decision is a POST that quotes the args_digest the person was shown; nothing on a GET decides.
// - URLs are relative (no leading slash) so the inbox works under an API stage or a base path.

const TOKEN_KEY = 'signoff.inbox.token';
const PKCE_KEY = 'signoff.inbox.pkce';
const PAGE_SIZE = 50;
const POLL_MS = 10000;
const FOLD_CHARS = 400;
const FOLD_LINES = 12;
const TITLE = 'Inbox · Signoff';

const CONFIG = readConfig();
const auth = { token: null, claims: null };
const view = {
  page: 1,
  totalPages: 0,
  total: 0,
  filters: { agent_id: '', tool_name: '', user_id: '' },
  entries: new Map(), // approval id -> entry
  deferred: new Set(), // ids decided with a 202: the decision is kept, the run is busy
  lastCount: null,
  seen: { agent_id: new Set(), tool_name: new Set(), user_id: new Set() },
  loading: null,
  reloadAgain: false,
  ui: null,
};
let pollTimer = null;
let serial = 0;

// ---------------------------------------------------------------------------------------- the DOM

const PROPS = new Set(['value', 'checked', 'disabled', 'open', 'hidden', 'type', 'name', 'required']);

// createElement with attributes set by name (names come from this file only) and children appended
// as nodes or text nodes.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function clear(el) {
  el.replaceChildren();
  return el;
}

function nextId(prefix) {
  serial += 1;
  return `${prefix}-${serial}`;
}

// Invisible and direction-changing characters, shown as ⟦U+202E⟧ so that they cannot hide or reorder
// what an argument says.
const INVISIBLE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u00AD\u061C\u200B-\u200F\u2028-\u202E\u2060-\u2069\uFEFF]/g;

function visible(value) {
  const text = typeof value === 'string' ? value : value === null || value === undefined ? '' : String(value);
  return text.replace(INVISIBLE, (c) => `⟦U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}⟧`);
}

function hasInvisible(value) {
  INVISIBLE.lastIndex = 0;
  const found = INVISIBLE.test(value);
  INVISIBLE.lastIndex = 0;
  return found;
}

function announce(message) {
  const region = document.getElementById('announce');
  region.textContent = '';
  // A fresh text after a tick, so that a repeated message is announced again.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

function pretty(value) {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

// A long text folded: the first lines, and a "Show more" that renders the whole only when opened.
function folded(value, className = 'value') {
  const text = visible(value);
  const lines = text.split('\n');
  if (text.length <= FOLD_CHARS && lines.length <= FOLD_LINES) return h('pre', { class: className }, text);
  const head = lines.slice(0, FOLD_LINES).join('\n').slice(0, FOLD_CHARS);
  const preview = h('pre', { class: className }, `${head}…`);
  const summary = h('summary', {}, `Show more (${text.length.toLocaleString()} characters)`);
  const more = h('details', { class: 'more' }, summary);
  let full = null;
  more.addEventListener('toggle', () => {
    if (more.open && full === null) {
      full = h('pre', { class: `${className} full` }, text);
      more.append(full);
    }
    preview.hidden = more.open;
    summary.textContent = more.open ? 'Show less' : `Show more (${text.length.toLocaleString()} characters)`;
  });
  return h('div', { class: 'fold' }, preview, more);
}

// ---------------------------------------------------------------------------------------- time

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const UNITS = [
  ['year', 31536000],
  ['month', 2592000],
  ['week', 604800],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

function epochSeconds(value) {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && value) {
    const parsed = Date.parse(value);
    if (!Number.isNaN(parsed)) return parsed / 1000;
  }
  return null;
}

function relative(seconds) {
  const diff = seconds - Date.now() / 1000;
  for (const [unit, size] of UNITS) {
    if (Math.abs(diff) >= size || unit === 'second') return RELATIVE.format(Math.round(diff / size), unit);
  }
  return '';
}

function timeText(seconds) {
  const absolute = new Date(seconds * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  return `${relative(seconds)} (${absolute})`;
}

function timeEl(value) {
  const seconds = epochSeconds(value);
  if (seconds === null) return h('span', {}, 'unknown');
  const el = h('time', { datetime: new Date(seconds * 1000).toISOString(), 'data-epoch': seconds }, timeText(seconds));
  return el;
}

function refreshTimes() {
  for (const el of document.querySelectorAll('time[data-epoch]')) {
    el.textContent = timeText(Number(el.getAttribute('data-epoch')));
  }
}

// ---------------------------------------------------------------------------------------- config, sign-in

function readConfig() {
  try {
    const parsed = JSON.parse(document.getElementById('inbox-config').textContent);
    return parsed && typeof parsed === 'object' ? parsed : { auth: 'none' };
  } catch {
    return { auth: 'none' };
  }
}

function redirectUri() {
  return `${location.origin}${location.pathname}`;
}

function base64url(bytes) {
  let binary = '';
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomText(size = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function signIn() {
  const verifier = randomText(48);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  const state = randomText(24);
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ state, verifier, redirectUri: redirectUri() }));
  const url = new URL(CONFIG.authorizeUrl, location.href);
  url.searchParams.set('response_type', 'code');
  url.searchParams.set('client_id', CONFIG.clientId);
  url.searchParams.set('redirect_uri', redirectUri());
  url.searchParams.set('scope', CONFIG.scopes || 'openid');
  url.searchParams.set('state', state);
  url.searchParams.set('code_challenge', challenge);
  url.searchParams.set('code_challenge_method', 'S256');
  location.assign(url.href);
}

function stripAuthQuery() {
  const url = new URL(location.href);
  for (const name of ['code', 'state', 'session_state', 'iss', 'error', 'error_description', 'error_uri']) {
    url.searchParams.delete(name);
  }
  history.replaceState(null, '', `${url.pathname}${url.search}${url.hash}`);
}

// Returns an error message, or null once a token is kept.
async function finishSignIn(params) {
  const pending = (() => {
    try {
      return JSON.parse(sessionStorage.getItem(PKCE_KEY) || 'null');
    } catch {
      return null;
    }
  })();
  sessionStorage.removeItem(PKCE_KEY);
  stripAuthQuery();
  if (params.get('error')) {
    return `Sign-in failed: ${params.get('error_description') || params.get('error')}.`;
  }
  if (!pending || typeof pending.state !== 'string' || pending.state !== params.get('state')) {
    return 'Sign-in failed: the answer does not belong to a sign-in started on this page. Try again.';
  }
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    client_id: CONFIG.clientId,
    code: params.get('code') || '',
    code_verifier: pending.verifier,
    redirect_uri: pending.redirectUri,
  });
  let answer;
  try {
    const response = await fetch(new URL(CONFIG.tokenUrl, location.href).href, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body,
      credentials: 'omit',
      cache: 'no-store',
    });
    answer = await response.json().catch(() => ({}));
    if (!response.ok) return `Sign-in failed: the token endpoint answered ${answer.error || response.status}.`;
  } catch {
    return 'Sign-in failed: the token endpoint could not be reached.';
  }
  const token = answer.access_token || answer.id_token;
  if (typeof token !== 'string' || !token) return 'Sign-in failed: no token came back.';
  const lifetime = Number(answer.expires_in) || 3600;
  sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ token, expiresAt: Date.now() + lifetime * 1000 }));
  return null;
}

function loadToken() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || 'null');
    if (stored && typeof stored.token === 'string' && stored.expiresAt > Date.now() + 5000) return stored.token;
  } catch {
    // an unreadable entry is a signed-out state
  }
  sessionStorage.removeItem(TOKEN_KEY);
  return null;
}

function claimsOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
    const claims = JSON.parse(json);
    return claims && typeof claims === 'object' ? claims : {};
  } catch {
    return {};
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  auth.token = null;
  stopPolling();
  if (CONFIG.logoutUrl) {
    const url = new URL(CONFIG.logoutUrl, location.href);
    if (!url.searchParams.has('client_id')) url.searchParams.set('client_id', CONFIG.clientId);
    if (!url.searchParams.has('logout_uri')) url.searchParams.set('logout_uri', redirectUri());
    location.assign(url.href);
    return;
  }
  showSignedOut('You are signed out.');
}

function showSignedOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  auth.token = null;
  stopPolling();
  view.ui = null;
  view.entries.clear();
  document.title = TITLE;
  clear(document.getElementById('account'));
  const main = resetMain();
  main.append(
    h('section', { class: 'signed-out', 'aria-labelledby': 'signed-out-title' },
      h('h2', { id: 'signed-out-title' }, 'Sign in to see the calls waiting for you'),
      message ? h('p', { class: 'notice', role: 'status' }, message) : null,
      h('p', {}, 'The inbox lists the tool calls your agents proposed that you may approve or reject.'),
      h('button', { type: 'button', class: 'primary', id: 'sign-in', onclick: () => signIn() }, 'Sign in')),
  );
}

function resetMain() {
  const main = document.getElementById('main');
  clear(main);
  main.append(h('h1', {}, 'Inbox'));
  return main;
}

// ---------------------------------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

function detailText(data, status) {
  if (data && typeof data.detail === 'string') return data.detail;
  if (data && Array.isArray(data.detail)) {
    return data.detail.map((item) => (item && typeof item.msg === 'string' ? item.msg : String(item))).join('; ');
  }
  if (data && typeof data.message === 'string') return data.message;
  return `The API answered ${status}.`;
}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'The API could not be reached; check the connection and try again.');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.status === 401 && CONFIG.auth === 'jwt') {
    showSignedOut('Your sign-in has expired or is not valid any more. Sign in again.');
    throw new ApiError(401, 'Signed out', data);
  }
  return { status: response.status, data };
}

function query(extra = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(extra)) params.set(key, String(value));
  for (const [key, value] of Object.entries(view.filters)) if (value) params.set(key, value);
  return params.toString();
}

// ---------------------------------------------------------------------------------------- the page

function buildApp() {
  const main = resetMain();
  const ids = { agent: nextId('f'), tool: nextId('f'), user: nextId('f'), note: nextId('bulk-note') };
  const summary = h('p', { class: 'summary', id: 'summary', tabindex: '-1' }, 'Loading…');
  const lists = {
    agent_id: h('datalist', { id: `${ids.agent}-list` }),
    tool_name: h('datalist', { id: `${ids.tool}-list` }),
    user_id: h('datalist', { id: `${ids.user}-list` }),
  };
  const inputs = {
    agent_id: h('input', { id: ids.agent, name: 'agent_id', list: `${ids.agent}-list`, autocomplete: 'off', spellcheck: 'false' }),
    tool_name: h('input', { id: ids.tool, name: 'tool_name', list: `${ids.tool}-list`, autocomplete: 'off', spellcheck: 'false' }),
    user_id: h('input', { id: ids.user, name: 'user_id', list: `${ids.user}-list`, autocomplete: 'off', spellcheck: 'false' }),
  };
  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filters' },
    h('div', { class: 'field' }, h('label', { for: ids.agent }, 'Agent'), inputs.agent_id, lists.agent_id),
    h('div', { class: 'field' }, h('label', { for: ids.tool }, 'Tool'), inputs.tool_name, lists.tool_name),
    h('div', { class: 'field' }, h('label', { for: ids.user }, 'Requested by'), inputs.user_id, lists.user_id),
    h('div', { class: 'buttons' },
      h('button', { type: 'submit' }, 'Filter'),
      h('button', { type: 'button', class: 'quiet', onclick: () => { for (const input of Object.values(inputs)) input.value = ''; applyFilters(inputs); } }, 'Clear')));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    applyFilters(inputs);
  });
  const filterSummary = h('summary', {}, 'Filter by agent, tool or requester');
  const filters = h('details', { class: 'filter-box' }, filterSummary, filterForm);

  const selectAll = h('input', { type: 'checkbox', id: nextId('select-all') });
  const bulkNote = h('input', { id: ids.note, type: 'text', maxlength: '2000', autocomplete: 'off' });
  const selectedText = h('span', { class: 'selected-count' }, 'None selected');
  const approveSelected = h('button', { type: 'button', class: 'approve', disabled: true }, 'Approve selected');
  const rejectSelected = h('button', { type: 'button', class: 'reject', disabled: true }, 'Reject selected');
  const bulkError = h('p', { class: 'error', hidden: true });
  const bulkActions = h('div', { class: 'bulk-actions', hidden: true },
    h('div', { class: 'field' }, h('label', { for: ids.note }, 'Note for the selected (needed to reject)'), bulkNote),
    h('div', { class: 'buttons' }, approveSelected, rejectSelected),
    bulkError);
  const bulk = h('section', { class: 'bulk', 'aria-label': 'Decide several at once' },
    h('div', { class: 'bulk-row' },
      h('div', { class: 'check' }, selectAll, h('label', { for: selectAll.id }, 'Select all on this page')),
      selectedText),
    bulkActions);
  selectAll.addEventListener('change', () => {
    for (const entry of view.entries.values()) {
      if (entry.select && !entry.select.disabled) entry.select.checked = selectAll.checked;
    }
    updateSelection();
  });
  approveSelected.addEventListener('click', () => decideSelected('approved'));
  rejectSelected.addEventListener('click', () => decideSelected('rejected'));

  const list = h('ol', { class: 'items', id: 'items', 'aria-label': 'Calls waiting for a decision' });
  const problem = h('div', { class: 'problem', hidden: true });
  const previous = h('button', { type: 'button', onclick: () => goTo(view.page - 1) }, '← Newer');
  const next = h('button', { type: 'button', onclick: () => goTo(view.page + 1) }, 'Older →');
  const pageText = h('span', { class: 'page-text' }, '');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages', hidden: true }, previous, pageText, next);
  const log = h('ol', { class: 'log', id: 'log' });
  const logSection = h('section', { class: 'log-section', 'aria-labelledby': 'log-title', hidden: true },
    h('h2', { id: 'log-title' }, 'Decided here'), log);
  const updated = h('span', { class: 'updated' }, '');
  const refresh = h('button', { type: 'button', class: 'quiet', onclick: () => loadList() }, 'Refresh');

  append(main, [
    h('div', { class: 'top' }, summary, h('div', { class: 'refresh' }, updated, refresh)),
    CONFIG.auth === 'jwt' ? null : h('p', { class: 'warning', role: 'note' },
      'This API has no authentication: anyone who can reach it sees and decides these calls.'),
    filters, bulk, problem, list, pager, logSection]);
  view.ui = { summary, lists, inputs, list, problem, pager, previous, next, pageText, log, logSection, updated,
    selectAll, bulkNote, selectedText, approveSelected, rejectSelected, bulkError, bulk, bulkActions, filters,
    filterSummary };
}

function applyFilters(inputs) {
  for (const [key, input] of Object.entries(inputs)) view.filters[key] = input.value.trim();
  const active = Object.entries(view.filters).filter(([, value]) => value);
  view.ui.filterSummary.textContent = active.length
    ? `Filtered: ${active.map(([key, value]) => `${FILTER_NAMES[key]} ${visible(value)}`).join(', ')}`
    : 'Filter by agent, tool or requester';
  view.page = 1;
  view.lastCount = null;
  loadList();
}

const FILTER_NAMES = { agent_id: 'agent', tool_name: 'tool', user_id: 'requested by' };

function goTo(page) {
  view.page = Math.max(1, page);
  loadList().then(() => view.ui && view.ui.summary.focus());
}

function showAccount() {
  const account = clear(document.getElementById('account'));
  if (CONFIG.auth !== 'jwt') {
    account.append(h('span', { class: 'badge' }, 'No sign-in (API without authentication)'));
    return;
  }
  const name = auth.claims.email || auth.claims.username || auth.claims['cognito:username'] || auth.claims.sub || 'someone';
  account.append(h('span', { class: 'who' }, 'Signed in as ', h('strong', {}, visible(name))),
    h('button', { type: 'button', class: 'quiet', id: 'sign-out', onclick: signOut }, 'Sign out'));
}

function setTitle(count) {
  document.title = count > 0 ? `(${count}) ${TITLE}` : TITLE;
}

// ---------------------------------------------------------------------------------------- the list

async function loadList() {
  if (!view.ui) return;
  if (view.loading) {
    view.reloadAgain = true;
    return view.loading;
  }
  view.loading = (async () => {
    const ui = view.ui;
    ui.list.setAttribute('aria-busy', 'true');
    try {
      const { status, data } = await api(`approvals?${query({ status: 'pending', decidable: 'true', limit: PAGE_SIZE, page: view.page })}`);
      if (status !== 200 || !data || !Array.isArray(data.data)) {
        showProblem(`The approvals could not be loaded: ${detailText(data, status)}`);
        return;
      }
      const meta = data.meta || {};
      view.total = Number(meta.total_count) || 0;
      view.totalPages = Number(meta.total_pages) || 0;
      if (view.page > 1 && view.page > view.totalPages) {
        view.page = Math.max(1, view.totalPages);
        view.reloadAgain = true;
        return;
      }
      hideProblem();
      render(data.data);
      ui.updated.textContent = `Updated ${new Date().toLocaleTimeString(undefined, { timeStyle: 'short' })}`;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) return;
      showProblem(error.message || 'The approvals could not be loaded.');
    } finally {
      if (view.ui) view.ui.list.removeAttribute('aria-busy');
    }
  })();
  try {
    await view.loading;
  } finally {
    view.loading = null;
  }
  if (view.reloadAgain) {
    view.reloadAgain = false;
    await loadList();
  }
}

function showProblem(message) {
  const { problem } = view.ui;
  clear(problem).append(h('p', { class: 'error', role: 'alert' }, message),
    h('button', { type: 'button', onclick: () => loadList() }, 'Try again'));
  problem.hidden = false;
}

function hideProblem() {
  view.ui.problem.hidden = true;
  clear(view.ui.problem);
}

function remember(record) {
  for (const key of Object.keys(view.seen)) {
    const value = record[key];
    if (typeof value === 'string' && value && !view.seen[key].has(value) && view.seen[key].size < 200) {
      view.seen[key].add(value);
      view.ui.lists[key].append(h('option', { value }));
    }
  }
}

function render(records) {
  const ui = view.ui;
  const sorted = records
    .filter((record) => record && typeof record.id === 'string')
    .sort((a, b) => (epochSeconds(b.created_at) || 0) - (epochSeconds(a.created_at) || 0));
  const keep = new Set(sorted.map((record) => record.id));
  for (const stale of ui.list.querySelectorAll('li.empty')) stale.remove();
  for (const [id, entry] of view.entries) {
    if (!keep.has(id)) {
      entry.li.remove();
      view.entries.delete(id);
      view.deferred.delete(id);
    }
  }
  sorted.forEach((record, index) => {
    remember(record);
    let entry = view.entries.get(record.id);
    if (entry && entry.record.args_digest !== record.args_digest) {
      const changed = buildEntry(record);
      setMessage(changed, 'The arguments of this call changed since the page showed it; read them again before deciding.', 'warning');
      entry.li.replaceWith(changed.li);
      entry = changed;
      view.entries.set(record.id, entry);
    } else if (!entry) {
      entry = buildEntry(record);
      view.entries.set(record.id, entry);
    } else {
      entry.record = record;
    }
    const at = ui.list.children[index];
    if (at !== entry.li) ui.list.insertBefore(entry.li, at || null);
  });
  const count = view.total;
  setTitle(count);
  if (count === 0) ui.summary.textContent = 'Nothing waits for your decision.';
  else ui.summary.textContent = `${count} ${count === 1 ? 'call waits' : 'calls wait'} for your decision.`;
  if (sorted.length === 0) {
    ui.list.append(h('li', { class: 'empty' }, Object.values(view.filters).some(Boolean)
      ? 'No pending call matches these filters.' : 'All clear: no call is waiting for you.'));
  }
  ui.pager.hidden = view.totalPages <= 1;
  ui.previous.disabled = view.page <= 1;
  ui.next.disabled = view.page >= view.totalPages;
  ui.pageText.textContent = `Page ${view.page} of ${Math.max(1, view.totalPages)}`;
  ui.bulk.hidden = ![...view.entries.values()].some((entry) => entry.select);
  updateSelection();
}

function bulkEligible(record) {
  return record.pause_type === 'confirmation' && !(Array.isArray(record.user_feedback_schema) && record.user_feedback_schema.length);
}

function updateSelection() {
  const ui = view.ui;
  if (!ui) return;
  const chosen = selectedEntries();
  ui.selectedText.textContent = chosen.length ? `${chosen.length} selected` : 'None selected';
  ui.bulkActions.hidden = chosen.length === 0;
  ui.approveSelected.disabled = chosen.length === 0;
  ui.rejectSelected.disabled = chosen.length === 0;
  const selectable = [...view.entries.values()].filter((entry) => entry.select && !entry.select.disabled);
  ui.selectAll.checked = selectable.length > 0 && chosen.length === selectable.length;
}

function selectedEntries() {
  return [...view.entries.values()].filter((entry) => entry.select && entry.select.checked && !entry.select.disabled);
}

// ---------------------------------------------------------------------------------------- one item

function buildEntry(record) {
  const entry = { record, fieldErrors: new Map(), editing: false, contextLoaded: false };
  const headingId = nextId('item');
  const tool = visible(record.tool_name || 'a tool');
  const agent = visible(record.source_name || record.agent_id || 'An agent');
  const heading = h('h2', { id: headingId, tabindex: '-1' }, h('code', { class: 'tool' }, tool), h('span', { class: 'from' }, ` from ${agent}`));
  const head = h('div', { class: 'item-head' });
  if (bulkEligible(record)) {
    entry.select = h('input', { type: 'checkbox', id: nextId('select'), onchange: updateSelection });
    head.append(h('div', { class: 'check' }, entry.select,
      h('label', { for: entry.select.id }, h('span', { class: 'visually-hidden' }, `Select ${tool} from ${agent}`), h('span', { 'aria-hidden': 'true' }, 'Select'))));
  }
  head.prepend(heading);

  const expires = epochSeconds(record.expires_at);
  const meta = h('dl', { class: 'meta' },
    h('dt', {}, 'Requested by'), h('dd', { class: 'requester' }, visible(record.user_id || 'unknown')),
    h('dt', {}, 'Asked'), h('dd', {}, timeEl(record.created_at)),
    h('dt', {}, 'Expires'), h('dd', { class: expires !== null && expires < Date.now() / 1000 + 3600 ? 'soon' : '' },
      expires === null ? 'No expiry' : timeEl(expires)),
    h('dt', {}, 'Kind'), h('dd', {}, kindText(record)));

  const request = typeof record.request === 'string' && record.request
    ? h('div', { class: 'request' }, h('h3', {}, 'What they asked'), h('blockquote', {}, folded(record.request, 'quote')))
    : null;

  entry.argsBox = h('div', { class: 'args' });
  showArgs(entry);
  const args = h('section', { class: 'call', 'aria-label': 'Proposed call' },
    h('h3', {}, 'Proposed call: ', h('code', {}, tool)), entry.argsBox);

  entry.contextBody = h('div', { class: 'context-body' });
  const context = h('details', { class: 'context' }, h('summary', {}, 'Conversation and what the agent read'), entry.contextBody);
  context.addEventListener('toggle', () => {
    if (context.open && !entry.contextLoaded) loadContext(entry);
  });

  entry.message = h('p', { class: 'message', hidden: true });
  entry.decision = h('div', { class: 'decision' });
  entry.heading = heading;
  const article = h('article', { 'aria-labelledby': headingId }, head, meta, request, args, context, entry.message, entry.decision);
  entry.li = h('li', { class: 'item', 'data-approval-id': record.id }, article);
  showDecision(entry);
  return entry;
}

function kindText(record) {
  if (Array.isArray(record.user_feedback_schema) && record.user_feedback_schema.length) return 'Questions for you';
  if (record.pause_type === 'user_input') return 'Needs your input';
  if (record.pause_type === 'confirmation') return record.editable ? 'Confirmation (you may edit the arguments)' : 'Confirmation';
  return visible(record.pause_type || 'unknown');
}

function argEntries(record) {
  const args = record.tool_args;
  // By name, as the approval link's page shows them (the stored order is the database's, not the model's).
  if (!args || typeof args !== 'object' || Array.isArray(args)) return [];
  return Object.entries(args).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function showArgs(entry) {
  const box = clear(entry.argsBox);
  const pairs = argEntries(entry.record);
  if (pairs.length === 0) {
    box.append(h('p', { class: 'muted' }, 'No arguments.'));
    return;
  }
  const list = h('dl', { class: 'arg-list' });
  let hidden = false;
  for (const [name, value] of pairs) {
    const text = pretty(value);
    hidden = hidden || hasInvisible(name) || hasInvisible(text);
    list.append(h('dt', {}, h('code', {}, visible(name)), h('span', { class: 'type' }, typeName(value))),
      h('dd', {}, folded(text)));
  }
  if (hidden) {
    box.append(h('p', { class: 'warning' }, 'These arguments hold invisible or direction-changing characters, shown as ⟦U+…⟧.'));
  }
  box.append(list);
}

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'object') return 'object';
  if (typeof value === 'string') return 'text';
  return typeof value;
}

function setMessage(entry, text, kind = 'info') {
  entry.message.textContent = text;
  entry.message.className = `message ${kind}`;
  entry.message.hidden = !text;
}

// ---------------------------------------------------------------------------------------- context

async function loadContext(entry) {
  const body = clear(entry.contextBody);
  body.append(h('p', { class: 'muted' }, 'Loading the conversation…'));
  let answer;
  try {
    answer = await api(`approvals/${encodeURIComponent(entry.record.id)}/context`);
  } catch (error) {
    if (error.status !== 401) clear(body).append(h('p', { class: 'error' }, error.message));
    return;
  }
  clear(body);
  if (answer.status !== 200 || !answer.data || typeof answer.data !== 'object') {
    body.append(h('p', { class: 'error' }, `The conversation could not be loaded: ${detailText(answer.data, answer.status)}`),
      h('button', { type: 'button', onclick: () => loadContext(entry) }, 'Try again'));
    return;
  }
  entry.contextLoaded = true;
  const data = answer.data;
  const history = Array.isArray(data.history) ? data.history : [];
  const messages = Array.isArray(data.messages) ? data.messages : [];
  const references = Array.isArray(data.references) ? data.references : [];

  if (history.length) {
    const list = h('ol', { class: 'history' });
    for (const run of history) {
      if (!run || typeof run !== 'object') continue;
      list.append(h('li', {},
        h('p', { class: 'role' }, 'Asked ', run.created_at ? timeEl(run.created_at) : ''),
        folded(pretty(run.input ?? ''), 'quote'),
        run.content ? h('div', {}, h('p', { class: 'role' }, 'Answer'), folded(pretty(run.content))) : null));
    }
    body.append(h('details', { class: 'section' }, h('summary', {}, `Earlier in this session (${history.length})`), list));
  }

  const conversation = h('ol', { class: 'conversation' });
  const toolNames = new Map(); // a tool result names its call by id; the call names the tool
  for (const message of messages) {
    if (!message || typeof message !== 'object') continue;
    for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
      if (call && typeof call.tool_call_id === 'string') toolNames.set(call.tool_call_id, call.tool_name);
    }
    const named = message.role === 'tool' && !message.tool_name ? { ...message, tool_name: toolNames.get(message.tool_call_id) } : message;
    conversation.append(messageItem(named));
  }
  body.append(h('details', { class: 'section conversation-box' },
    h('summary', {}, `Conversation (${messages.length} ${messages.length === 1 ? 'message' : 'messages'})`),
    messages.length ? conversation : h('p', { class: 'muted' }, 'No messages.')));

  const refs = h('section', { class: 'references', 'aria-label': 'What the agent read' },
    h('h3', {}, `What the agent read (${references.length})`));
  if (references.length === 0) refs.append(h('p', { class: 'muted' }, 'The agent read no knowledge for this run.'));
  else {
    const list = h('ol', { class: 'refs' });
    references.forEach((ref, index) => list.append(referenceItem(ref, index)));
    refs.append(list);
  }
  body.append(refs);
}

const ROLES = { user: 'User', assistant: 'Agent', tool: 'Tool result', system: 'System' };

function messageItem(message) {
  const role = Object.prototype.hasOwnProperty.call(ROLES, message.role) ? message.role : 'other';
  const label = role === 'tool' && message.tool_name
    ? `Tool result: ${visible(message.tool_name)}` : ROLES[role] || visible(message.role || 'Message');
  const li = h('li', { class: `msg role-${role}` }, h('p', { class: 'role' }, label));
  if (message.content !== null && message.content !== undefined && message.content !== '') {
    li.append(folded(pretty(message.content), 'text'));
  }
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      if (!call || typeof call !== 'object') continue;
      li.append(h('div', { class: 'tool-call' }, h('p', {}, 'Calls ', h('code', {}, visible(call.tool_name || '?'))),
        folded(pretty(call.tool_args ?? {}))));
    }
  }
  return li;
}

function referenceItem(ref, index) {
  if (!ref || typeof ref !== 'object') return h('li', {}, folded(pretty(ref)));
  const title = [ref.title, ref.name, ref.source].find((value) => typeof value === 'string' && value) || `Reference ${index + 1}`;
  const li = h('li', { class: 'ref' }, h('h4', {}, visible(title)));
  const facts = h('dl', { class: 'meta' });
  if (typeof ref.source === 'string' && ref.source && ref.source !== title) facts.append(h('dt', {}, 'Source'), h('dd', {}, visible(ref.source)));
  if (typeof ref.score === 'number') facts.append(h('dt', {}, 'Score'), h('dd', {}, ref.score.toFixed(3)));
  const text = [ref.content, ref.excerpt, ref.text].find((value) => value !== undefined && value !== null);
  for (const [key, value] of Object.entries(ref)) {
    if (['title', 'name', 'source', 'score', 'content', 'excerpt', 'text', 'tool_call_id'].includes(key)) continue;
    if (value === null || value === undefined) continue;
    facts.append(h('dt', {}, visible(key)), h('dd', {}, typeof value === 'object' ? folded(pretty(value)) : visible(String(value))));
  }
  if (facts.children.length) li.append(facts);
  if (text !== undefined) li.append(folded(pretty(text), 'text'));
  return li;
}

// ---------------------------------------------------------------------------------------- deciding

function showDecision(entry) {
  const box = clear(entry.decision);
  entry.fieldErrors.clear();
  const record = entry.record;
  if (view.deferred.has(record.id)) {
    box.append(h('p', { class: 'muted' }, 'Your decision is kept; it is applied when the run is free.'));
    if (entry.select) entry.select.disabled = true;
    return;
  }
  const questions = Array.isArray(record.user_feedback_schema) ? record.user_feedback_schema : [];
  const fields = Array.isArray(record.user_input_schema) ? record.user_input_schema : [];
  if (entry.editing) box.append(editForm(entry));
  else if (questions.length) box.append(questionsForm(entry, questions));
  else if (record.pause_type === 'user_input' && fields.length) box.append(inputForm(entry, fields));
  else if (record.pause_type === 'confirmation') box.append(confirmForm(entry));
  else box.append(h('p', { class: 'muted' }, 'This call is not decided here (the client that started the run executes it).'));
}

function noteField(entry, label) {
  const id = nextId('note');
  const note = h('textarea', { id, name: 'note', rows: '2', maxlength: '2000' });
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  entry.fieldErrors.set('note', error);
  entry.noteInput = note;
  return h('div', { class: 'field' }, h('label', { for: id }, label), note, error);
}

function decisionButtons(...buttons) {
  return h('div', { class: 'buttons' }, ...buttons);
}

function formShell(entry, ...children) {
  const errors = h('ul', { class: 'form-errors', hidden: true });
  entry.formErrors = errors;
  const form = h('form', { class: 'decide', novalidate: true }, h('fieldset', {}, h('legend', { class: 'visually-hidden' }, 'Your decision'), ...children, errors));
  form.addEventListener('submit', (event) => event.preventDefault());
  entry.form = form;
  return form;
}

function confirmForm(entry) {
  const approve = h('button', { type: 'button', class: 'approve', onclick: () => approvePlain(entry) }, 'Approve');
  const reject = h('button', { type: 'button', class: 'reject', onclick: () => rejectWithNote(entry) }, 'Reject');
  const edit = entry.record.editable
    ? h('button', { type: 'button', class: 'quiet', onclick: () => startEditing(entry) }, 'Edit arguments')
    : null;
  return formShell(entry, noteField(entry, 'Note (optional to approve; the agent is told it when you reject)'),
    decisionButtons(approve, reject, edit));
}

function noteValue(entry) {
  return entry.noteInput ? entry.noteInput.value.trim() : '';
}

function approvePlain(entry) {
  const data = { args_digest: entry.record.args_digest };
  const note = noteValue(entry);
  if (note) data.note = note;
  submit(entry, 'approved', data);
}

function rejectWithNote(entry) {
  clearErrors(entry);
  const note = noteValue(entry);
  if (!note) {
    fieldError(entry, 'note', 'Write a note saying why: the agent is told it.');
    entry.noteInput.focus();
    return;
  }
  submit(entry, 'rejected', { args_digest: entry.record.args_digest, note });
}

function startEditing(entry) {
  entry.editing = true;
  showDecision(entry);
  const first = entry.decision.querySelector('textarea');
  if (first) first.focus();
}

function editForm(entry) {
  const editors = [];
  const fields = argEntries(entry.record).map(([name, value]) => {
    const id = nextId('arg');
    const isText = typeof value === 'string';
    const input = h('textarea', { id, name, rows: String(Math.min(8, Math.max(1, pretty(value).split('\n').length))), spellcheck: 'false', 'aria-describedby': `${id}-hint` });
    input.value = isText ? value : pretty(value);
    const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
    entry.fieldErrors.set(name, error);
    editors.push({ name, input, isText });
    return h('div', { class: 'field' }, h('label', { for: id }, h('code', {}, visible(name))),
      h('p', { class: 'hint', id: `${id}-hint` }, isText ? 'Text' : 'JSON'), input, error);
  });
  const save = h('button', { type: 'button', class: 'approve', onclick: () => approveEdited(entry, editors) }, 'Approve with changes');
  const cancel = h('button', { type: 'button', class: 'quiet', onclick: () => { entry.editing = false; showDecision(entry); } }, 'Cancel editing');
  return formShell(entry, h('p', { class: 'hint' }, 'Change the arguments, then approve the call with them.'),
    ...fields, noteField(entry, 'Note (optional)'), decisionButtons(save, cancel));
}

function approveEdited(entry, editors) {
  clearErrors(entry);
  const toolArgs = {};
  let bad = null;
  for (const { name, input, isText } of editors) {
    if (isText) {
      toolArgs[name] = input.value;
      continue;
    }
    try {
      toolArgs[name] = JSON.parse(input.value);
    } catch {
      fieldError(entry, name, 'This is not valid JSON.');
      bad = bad || input;
    }
  }
  if (bad) {
    bad.focus();
    return;
  }
  const data = { args_digest: entry.record.args_digest, tool_args: toolArgs };
  const note = noteValue(entry);
  if (note) data.note = note;
  submit(entry, 'approved', data);
}

function inputForm(entry, fields) {
  const readers = [];
  const controls = fields.filter((field) => field && typeof field.name === 'string').map((field) => {
    const id = nextId('input');
    const hintId = `${id}-hint`;
    const kind = field.field_type;
    let input;
    if (kind === 'bool') {
      input = h('input', { id, type: 'checkbox', checked: Boolean(field.value), 'aria-describedby': hintId });
    } else if (kind === 'int' || kind === 'float') {
      input = h('input', { id, type: 'number', step: kind === 'int' ? '1' : 'any', inputmode: kind === 'int' ? 'numeric' : 'decimal', 'aria-describedby': hintId, required: true });
      if (field.value !== null && field.value !== undefined) input.value = String(field.value);
    } else if (kind === 'list' || kind === 'dict') {
      input = h('textarea', { id, rows: '3', spellcheck: 'false', 'aria-describedby': hintId });
      input.value = field.value === null || field.value === undefined ? (kind === 'list' ? '[]' : '{}') : pretty(field.value);
    } else {
      input = h('input', { id, type: 'text', 'aria-describedby': hintId });
      input.value = field.value === null || field.value === undefined ? '' : String(field.value);
    }
    const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
    entry.fieldErrors.set(field.name, error);
    readers.push({ name: field.name, kind, input });
    const label = h('label', { for: id }, visible(field.name));
    const hint = h('p', { class: 'hint', id: hintId }, visible(field.description || ''), ` (${typeLabel(kind)})`);
    return kind === 'bool'
      ? h('div', { class: 'field check' }, input, label, hint, error)
      : h('div', { class: 'field' }, label, hint, input, error);
  });
  const send = h('button', { type: 'button', class: 'approve', onclick: () => approveInput(entry, readers) }, 'Submit and approve');
  const reject = h('button', { type: 'button', class: 'reject', onclick: () => rejectWithNote(entry) }, 'Reject');
  return formShell(entry, h('p', { class: 'hint' }, 'The agent needs these values from you.'), ...controls,
    noteField(entry, 'Note (needed to reject)'), decisionButtons(send, reject));
}

function typeLabel(kind) {
  return { str: 'text', int: 'whole number', float: 'number', bool: 'yes or no', list: 'JSON list', dict: 'JSON object' }[kind] || 'text';
}

function approveInput(entry, readers) {
  clearErrors(entry);
  const values = {};
  let bad = null;
  for (const { name, kind, input } of readers) {
    const raw = input.value;
    let value;
    let problem = null;
    if (kind === 'bool') value = input.checked;
    else if (kind === 'int') {
      value = Number(raw);
      if (raw.trim() === '' || !Number.isInteger(value)) problem = 'Enter a whole number.';
    } else if (kind === 'float') {
      value = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(value)) problem = 'Enter a number.';
    } else if (kind === 'list' || kind === 'dict') {
      try {
        value = JSON.parse(raw);
        const isList = Array.isArray(value);
        if (kind === 'list' ? !isList : isList || value === null || typeof value !== 'object') {
          problem = kind === 'list' ? 'Enter a JSON list, e.g. ["a", "b"].' : 'Enter a JSON object, e.g. {"key": "value"}.';
        }
      } catch {
        problem = 'This is not valid JSON.';
      }
    } else value = raw;
    if (problem) {
      fieldError(entry, name, problem);
      bad = bad || input;
    } else values[name] = value;
  }
  if (bad) {
    bad.focus();
    return;
  }
  const data = { args_digest: entry.record.args_digest, user_input: values };
  const note = noteValue(entry);
  if (note) data.note = note;
  submit(entry, 'approved', data);
}

function questionsForm(entry, questions) {
  const readers = [];
  const sets = questions.filter((question) => question && typeof question.question === 'string').map((question) => {
    const name = nextId('q');
    const multi = Boolean(question.multi_select);
    const options = Array.isArray(question.options) ? question.options : [];
    const error = h('p', { class: 'field-error', hidden: true });
    entry.fieldErrors.set(question.question, error);
    const inputs = [];
    const choices = options.filter((option) => option && typeof option.label === 'string').map((option) => {
      const id = nextId('opt');
      const input = h('input', { id, type: multi ? 'checkbox' : 'radio', name, value: option.label });
      inputs.push(input);
      return h('div', { class: 'check option' }, input,
        h('label', { for: id }, h('span', { class: 'option-label' }, visible(option.label)),
          option.description ? h('span', { class: 'option-description' }, visible(option.description)) : null));
    });
    readers.push({ question: question.question, inputs, first: inputs[0] });
    const legend = [question.header ? `${visible(question.header)}: ` : '', visible(question.question), multi ? ' (choose any)' : ''];
    return h('fieldset', { class: 'question' }, h('legend', {}, ...legend), ...choices, error);
  });
  const send = h('button', { type: 'button', class: 'approve', onclick: () => sendAnswers(entry, readers) }, 'Send answers');
  const reject = h('button', { type: 'button', class: 'reject', onclick: () => rejectWithNote(entry) }, 'Reject');
  return formShell(entry, h('p', { class: 'hint' }, 'The agent asks you:'), ...sets,
    noteField(entry, 'Note (needed to reject)'), decisionButtons(send, reject));
}

function sendAnswers(entry, readers) {
  clearErrors(entry);
  const answers = {};
  let bad = null;
  for (const { question, inputs, first } of readers) {
    const chosen = inputs.filter((input) => input.checked).map((input) => input.value);
    if (chosen.length === 0) {
      fieldError(entry, question, 'Choose an answer.');
      bad = bad || first;
    } else answers[question] = chosen;
  }
  if (bad) {
    bad.focus();
    return;
  }
  submit(entry, 'approved', { args_digest: entry.record.args_digest, answers });
}

function clearErrors(entry) {
  for (const error of entry.fieldErrors.values()) {
    error.hidden = true;
    error.textContent = '';
  }
  for (const input of entry.decision.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  if (entry.formErrors) {
    clear(entry.formErrors).hidden = true;
  }
}

function fieldError(entry, name, message) {
  const error = entry.fieldErrors.get(name);
  if (!error) return false;
  error.textContent = message;
  error.hidden = false;
  const field = error.parentElement && error.parentElement.querySelector('input, textarea');
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    if (error.id) field.setAttribute('aria-describedby', `${field.getAttribute('aria-describedby') || ''} ${error.id}`.trim());
  }
  return true;
}

// A 422's {"detail": [{loc, msg, type}]}: each message next to the field its loc names, the rest above
// the buttons.
function showValidation(entry, detail) {
  clearErrors(entry);
  const rest = [];
  for (const item of Array.isArray(detail) ? detail : []) {
    const loc = Array.isArray(item && item.loc) ? item.loc.map(String) : [];
    const msg = item && typeof item.msg === 'string' ? item.msg : 'Invalid value';
    const placed = loc.slice().reverse().some((part) => fieldError(entry, part, msg));
    if (!placed) rest.push(loc.length ? `${loc.join(' → ')}: ${msg}` : msg);
  }
  if (typeof detail === 'string') rest.push(detail);
  if (rest.length && entry.formErrors) {
    append(clear(entry.formErrors), rest.map((text) => h('li', {}, visible(text))));
    entry.formErrors.hidden = false;
  }
}

function setBusy(entry, busy) {
  const fieldset = entry.decision.querySelector('fieldset');
  if (fieldset) fieldset.disabled = busy;
  entry.li.classList.toggle('busy', busy);
  if (entry.select) entry.select.disabled = busy || view.deferred.has(entry.record.id);
}

const DONE = { approved: 'Approved', rejected: 'Rejected' };

// One resolve request; returns what happened as {ok, text}.
async function resolve(entry, status, resolutionData) {
  const record = entry.record;
  const label = `${record.tool_name || 'the call'} from ${record.source_name || record.agent_id || 'an agent'}`;
  let answer;
  try {
    answer = await api(`approvals/${encodeURIComponent(record.id)}/resolve`, {
      method: 'POST',
      body: { status, resolution_data: resolutionData },
    });
  } catch (error) {
    return { ok: false, status: error.status, text: `${label}: ${error.message}` };
  }
  const code = answer.status;
  if (code === 200) {
    removeEntry(entry);
    const text = `${DONE[status]} ${label}.`;
    addLog(text, status);
    return { ok: true, status: code, text };
  }
  if (code === 202) {
    view.deferred.add(record.id);
    const text = `${DONE[status]} ${label}: the run is executing another action right now; your decision is kept and applied as soon as it is free.`;
    setMessage(entry, text, 'info');
    showDecision(entry);
    addLog(text, status);
    return { ok: true, status: code, text };
  }
  const detail = detailText(answer.data, code);
  if (code === 422) {
    showValidation(entry, answer.data && answer.data.detail);
    setMessage(entry, 'The API did not accept this decision; see the messages below.', 'error');
    return { ok: false, status: code, text: `${label}: ${detail}` };
  }
  setMessage(entry, detail, 'error');
  if (code === 409 || code === 410 || code === 404) await reloadEntry(entry, detail);
  return { ok: false, status: code, text: `${label}: ${detail}` };
}

async function submit(entry, status, resolutionData) {
  setBusy(entry, true);
  setMessage(entry, 'Sending…', 'info');
  const result = await resolve(entry, status, resolutionData);
  if (view.entries.get(entry.record.id) === entry) setBusy(entry, false);
  announce(result.text);
  if (result.status === 200) afterDecision();
}

async function decideSelected(status) {
  const ui = view.ui;
  const chosen = selectedEntries();
  ui.bulkError.hidden = true;
  const note = ui.bulkNote.value.trim();
  if (status === 'rejected' && !note) {
    ui.bulkError.textContent = 'Write a note saying why: the agents are told it.';
    ui.bulkError.hidden = false;
    ui.bulkNote.focus();
    return;
  }
  if (chosen.length === 0) return;
  ui.approveSelected.disabled = ui.rejectSelected.disabled = true;
  const results = [];
  for (const entry of chosen) {
    setBusy(entry, true);
    const data = { args_digest: entry.record.args_digest };
    if (note) data.note = note;
    const result = await resolve(entry, status, data);
    if (view.entries.get(entry.record.id) === entry) {
      setBusy(entry, false);
      if (entry.select && !result.ok) entry.select.checked = true;
    }
    results.push(result);
  }
  const done = results.filter((result) => result.ok).length;
  const failed = results.filter((result) => !result.ok);
  const verb = status === 'approved' ? 'Approved' : 'Rejected';
  let text = `${verb} ${done} of ${results.length}.`;
  if (failed.length) text += ` Not decided: ${failed.map((result) => result.text).join(' ')}`;
  addLog(text, failed.length ? 'error' : status);
  announce(text);
  if (!failed.length) ui.bulkNote.value = '';
  updateSelection();
  afterDecision();
}

function removeEntry(entry) {
  const items = [...view.entries.values()];
  const index = items.indexOf(entry);
  const hadFocus = entry.li.contains(document.activeElement);
  entry.li.remove();
  view.entries.delete(entry.record.id);
  view.total = Math.max(0, view.total - 1);
  setTitle(view.total);
  if (hadFocus) {
    const following = items[index + 1] || items[index - 1];
    if (following && following !== entry) following.heading.focus();
    else view.ui.summary.focus();
  }
  updateSelection();
}

async function reloadEntry(entry, why) {
  let answer;
  try {
    answer = await api(`approvals/${encodeURIComponent(entry.record.id)}`);
  } catch {
    return;
  }
  const record = answer.data;
  if (answer.status === 200 && record && record.status === 'pending') {
    const fresh = buildEntry(record);
    const changed = record.args_digest !== entry.record.args_digest;
    setMessage(fresh, changed ? `${why} The call changed; read it again before deciding.` : why, 'warning');
    entry.li.replaceWith(fresh.li);
    view.entries.set(record.id, fresh);
    fresh.heading.focus();
  } else {
    const now = answer.status === 200 && record ? ` It is now ${visible(record.status)}${record.resolved_by ? ` (by ${visible(record.resolved_by)})` : ''}.` : '';
    removeEntry(entry);
    addLog(`${entry.record.tool_name || 'A call'} from ${entry.record.source_name || 'an agent'}: ${why}${now}`, 'error');
  }
}

function addLog(text, kind) {
  const ui = view.ui;
  if (!ui) return;
  ui.log.prepend(h('li', { class: `log-${kind}` }, h('span', { class: 'when' }, new Date().toLocaleTimeString(undefined, { timeStyle: 'short' })), ' ', visible(text)));
  while (ui.log.children.length > 20) ui.log.lastElementChild.remove();
  ui.logSection.hidden = false;
}

let reloadSoon = null;
function afterDecision() {
  clearTimeout(reloadSoon);
  reloadSoon = setTimeout(() => {
    view.lastCount = null;
    loadList();
  }, 300);
}

// ---------------------------------------------------------------------------------------- polling

async function pollOnce() {
  if (!view.ui || document.visibilityState !== 'visible') return;
  refreshTimes();
  let answer;
  try {
    answer = await api(`approvals/count?${query({ decidable: 'true' })}`);
  } catch {
    return;
  }
  if (answer.status !== 200 || !answer.data || typeof answer.data.count !== 'number') return;
  // The count and the newest pending call's time: a call decided elsewhere while another arrives
  // leaves the count as it was, not both.
  const count = `${answer.data.count}@${answer.data.latest_at ?? ''}`;
  if (view.lastCount !== null && count !== view.lastCount) loadList();
  view.lastCount = count;
}

function startPolling() {
  stopPolling();
  if (document.visibilityState === 'visible') pollTimer = setInterval(pollOnce, POLL_MS);
}

function stopPolling() {
  if (pollTimer !== null) clearInterval(pollTimer);
  pollTimer = null;
}

document.addEventListener('visibilitychange', () => {
  if (!view.ui) return;
  if (document.visibilityState === 'visible') {
    pollOnce();
    startPolling();
  } else stopPolling();
});

// ---------------------------------------------------------------------------------------- start

async function start() {
  const boot = document.getElementById('boot');
  if (boot) boot.remove();
  if (CONFIG.auth === 'jwt') {
    if (!CONFIG.authorizeUrl || !CONFIG.tokenUrl || !CONFIG.clientId) {
      resetMain().append(h('p', { class: 'error', role: 'alert' },
        'Sign-in is not configured for this inbox (SIGNOFF_INBOX_AUTHORIZE_URL, SIGNOFF_INBOX_TOKEN_URL and SIGNOFF_INBOX_CLIENT_ID).'));
      return;
    }
    const params = new URLSearchParams(location.search);
    let problem = null;
    if (params.has('code') || params.has('error')) problem = await finishSignIn(params);
    auth.token = loadToken();
    if (!auth.token) {
      showSignedOut(problem);
      return;
    }
    auth.claims = claimsOf(auth.token);
  }
  showAccount();
  buildApp();
  await loadList();
  await pollOnce();
  startPolling();
}

start();
