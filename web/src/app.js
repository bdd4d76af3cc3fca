// The monkeyproof page: sign in, list and start sessions, and attach a terminal to one.
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { Unicode11Addon } from '@xterm/addon-unicode11';
import { WebLinksAddon } from '@xterm/addon-web-links';
import { WebglAddon } from '@xterm/addon-webgl';
import { Backoff, OutputStream, subprotocols, tokenFromHash } from './stream.js';

const TOKEN_KEY = 'monkeyproof.token';
/** After an event, the list is read again this much later (events come in bursts). */
const LIST_SETTLE_MS = 150;
const $ = (id) => document.getElementById(id);

let token = null;
/** Stops the list's feed of `/events` (see `followEvents`). */
let feed = null;
let settleTimer = null;
/** The sessions last listed, newest first (the filter works on them). */
let listed = [];
let attached = null;
/** The asciinema-player playing a finished session's recording, when one is. */
let player = null;

// ---- token ----

function takeTokenFromUrl() {
  const fromHash = tokenFromHash(location.hash);
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    // The token must not stay in the address bar or history; a session to open may.
    const params = new URLSearchParams(location.hash.slice(1));
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    signOut('Wrong token: the server refused it.');
    throw new Error('unauthorized');
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function signOut(message = '') {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  detach();
  stopFeed();
  show('login');
  $('login-error').textContent = message;
}

function show(id) {
  for (const section of ['login', 'sessions', 'terminal-view']) $(section).hidden = section !== id;
}

// ---- session list ----

/** An agent's state in a few words: "working", "waiting: permission", "idle". */
function agentText(agent) {
  if (!agent) return '';
  return agent.waitingFor ? `${agent.state}: ${agent.waitingFor}` : agent.state;
}

function age(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text ?? '';
  if (className) td.className = className;
  return td;
}

function button(label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

async function refreshList() {
  let sessions;
  try {
    sessions = await api('GET', '/sessions');
  } catch (e) {
    $('sessions-status').textContent = e.message === 'unauthorized' ? '' : `refresh failed: ${e.message}`;
    return;
  }
  $('sessions-status').textContent = `${sessions.length} session${sessions.length === 1 ? '' : 's'}`;
  listed = sessions.reverse();
  renderList();
}

/** Whether session `s` matches the filter's words (each in its id, task, type, status, agent,
 *  owner or labels). */
function matchesFilter(s) {
  const words = $('filter').value.toLowerCase().split(/\s+/).filter(Boolean);
  const text = [s.id, s.task, s.type, s.status, agentText(s.agent), s.owner ?? '', ...s.labels]
    .join(' ')
    .toLowerCase();
  return words.every((w) => text.includes(w));
}

function renderList() {
  const body = $('session-table').querySelector('tbody');
  body.replaceChildren(
    ...listed.filter(matchesFilter).map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.id = s.id;
      // A row opens its session on a click or, focused, on Enter.
      tr.tabIndex = 0;
      tr.setAttribute('aria-label', `session ${s.id.slice(0, 8)}: ${s.taskPreview}`);
      tr.addEventListener('click', (e) => {
        if (!e.target.closest('button')) openSession(s.id);
      });
      tr.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && e.target === tr) openSession(s.id);
      });
      const actions = document.createElement('td');
      const attach = button('Attach', () => openSession(s.id));
      attach.classList.add('wide');
      actions.append(attach);
      if (s.status === 'running') actions.append(' ', button('Kill', () => api('DELETE', `/sessions/${s.id}`).then(refreshList)));
      tr.append(
        cell(s.id.slice(0, 8), 'wide'),
        cell(s.title ? `${s.taskPreview} — ${s.title}` : s.taskPreview, 'task'),
        cell(s.type, 'wide'),
        cell(s.bells ? `${s.status} 🔔${s.bells}` : s.status, `status-${s.status}`),
        cell(agentText(s.agent), s.agent ? `agent-${s.agent.state}` : ''),
        cell(s.exitCode ?? s.signal ?? '', 'wide'),
        cell(s.owner, 'wide'),
        cell(s.labels.join(', '), 'wide'),
        cell(age(s.createdAt), 'wide'),
        actions,
      );
      return tr;
    }),
  );
}

async function loadPresets() {
  const presets = await api('GET', '/presets');
  const select = $('new-preset');
  const update = () => {
    const type = $('new-type').value;
    select.replaceChildren(new Option('(preset)', ''));
    for (const p of presets.filter((p) => p.type === type)) select.append(new Option(p.name, p.name));
    select.disabled = type === 'exec';
  };
  $('new-type').addEventListener('change', update);
  update();
}

async function startSession(event) {
  event.preventDefault();
  $('new-error').textContent = '';
  const body = { task: $('new-task').value, type: $('new-type').value };
  if ($('new-cwd').value) body.cwd = $('new-cwd').value;
  if ($('new-preset').value) body.preset = $('new-preset').value;
  if ($('new-owner').value.trim()) body.owner = $('new-owner').value.trim();
  const labels = $('new-labels').value.split(',').map((l) => l.trim()).filter(Boolean);
  if (labels.length) body.labels = labels;
  try {
    const session = await api('POST', '/sessions', body);
    openSession(session.id);
  } catch (e) {
    $('new-error').textContent = e.message;
  }
}

async function showList() {
  detach();
  show('sessions');
  if (location.hash) history.replaceState(null, '', location.pathname);
  followEvents();
  await refreshList();
}

/** Stops following `/events`. */
function stopFeed() {
  feed?.abort();
  feed = null;
  clearTimeout(settleTimer);
}

/** Follows `/events` (Server-Sent Events over a streamed fetch: EventSource cannot send the
 *  token) and reads the list again after any event but output, instead of polling; reconnects
 *  with backoff. */
function followEvents() {
  stopFeed();
  const controller = new AbortController();
  feed = controller;
  const backoff = new Backoff();
  const settle = () => {
    clearTimeout(settleTimer);
    settleTimer = setTimeout(refreshList, LIST_SETTLE_MS);
  };
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const res = await fetch('/events', {
          headers: { authorization: `Bearer ${token}` },
          signal: controller.signal,
        });
        if (res.status === 401) return signOut('Wrong token: the server refused it.');
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        backoff.reset();
        // Events missed while disconnected: read the list once it is back.
        settle();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replaceAll('\r\n', '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (/^event: ?(?!output\b)\w/m.test(block)) settle();
          }
        }
      } catch {
        if (controller.signal.aborted) return;
      }
      await new Promise((r) => setTimeout(r, backoff.next()));
    }
  })();
}

// ---- terminal ----

/** One attached terminal: an xterm.js instance fed by a raw-protocol WebSocket. */
class AttachedTerminal {
  constructor(id, element) {
    this.id = id;
    this.stream = new OutputStream();
    this.backoff = new Backoff();
    this.closed = false;
    this.term = new Terminal({
      allowProposedApi: true,
      cursorBlink: true,
      scrollback: 5000,
      fontFamily: 'ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace',
      theme: { background: '#111418' },
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.loadAddon(new WebLinksAddon());
    this.term.loadAddon(new Unicode11Addon());
    this.term.unicode.activeVersion = '11';
    this.term.open(element);
    this.leaveQueriesToTheServer();
    // WebGL only at a devicePixelRatio of 1 with a mouse: at 2 (phones, HiDPI) it drew the
    // terminal blank or with doubled glyphs in Chromium, where the DOM renderer draws it right.
    if (window.devicePixelRatio <= 1 && !matchMedia('(pointer: coarse)').matches) {
      try {
        const webgl = new WebglAddon();
        webgl.onContextLoss(() => webgl.dispose());
        this.term.loadAddon(webgl);
      } catch {
        // No WebGL (e.g. headless): xterm's DOM renderer stays.
      }
    }
    // Ctrl+Shift+C copies the selection and Ctrl+Shift+V pastes, as in Linux terminals (plain
    // Ctrl+C stays the interrupt). Returning false leaves the key to the browser.
    this.term.attachCustomKeyEventHandler((e) => {
      if (e.type !== 'keydown' || !e.ctrlKey || !e.shiftKey) return true;
      if (e.code === 'KeyC' && this.term.hasSelection()) {
        navigator.clipboard?.writeText(this.term.getSelection()).catch(() => {});
        return false;
      }
      return e.code !== 'KeyV';
    });
    this.term.onData((data) => this.send(new TextEncoder().encode(keyBar.apply(data))));
    this.term.onBinary((data) => this.send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    this.term.onResize(({ cols, rows }) => this.sendResize(cols, rows));
    this.onWindowResize = () => this.fit.fit();
    window.addEventListener('resize', this.onWindowResize);
    this.fit.fit();
    this.term.focus();
    this.connect();
  }

  /**
   * The server is the terminal of record and answers these queries for the program (see
   * src/engine/answers.rs); xterm.js must not answer them a second time, so they are swallowed.
   */
  leaveQueriesToTheServer() {
    const first = (params) => (Array.isArray(params[0]) ? params[0][0] : params[0]) ?? 0;
    const parser = this.term.parser;
    parser.registerCsiHandler({ final: 'n' }, (p) => first(p) === 5 || first(p) === 6);
    parser.registerCsiHandler({ final: 'c' }, (p) => first(p) === 0);
    parser.registerCsiHandler({ prefix: '>', final: 'c' }, (p) => first(p) === 0);
    parser.registerCsiHandler({ prefix: '?', intermediates: '$', final: 'p' }, () => true);
    parser.registerCsiHandler({ final: 't' }, (p) => [14, 16, 18].includes(first(p)));
    parser.registerOscHandler(10, (data) => data === '?');
    parser.registerOscHandler(11, (data) => data === '?');
  }

  connect() {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sessions/${encodeURIComponent(this.id)}/ws`;
    const protocols = subprotocols(token);
    this.ws = protocols
      ? new WebSocket(url + this.stream.resumeQuery(), protocols)
      : new WebSocket(`${url}${this.stream.resumeQuery()}&token=${encodeURIComponent(token)}`);
    this.ws.binaryType = 'arraybuffer';
    this.setState('connecting…');
    this.ws.onmessage = (event) => this.receive(event.data);
    this.ws.onclose = () => this.reconnect();
  }

  receive(data) {
    if (typeof data === 'string') {
      const msg = JSON.parse(data);
      const action = this.stream.control(msg);
      if (msg.type === 'hello') this.onHello(msg.session);
      if (!action) return;
      if (action.reset) this.term.reset();
      if (action.exit) this.showExit(action.exit);
      if (action.error) console.warn('monkeyproof:', action.error);
      return;
    }
    const bytes = new Uint8Array(data);
    const { end } = this.stream.bytes(bytes.length);
    this.term.write(bytes, () => {
      const ack = this.stream.consumed(end);
      if (ack) this.sendControl(ack);
    });
  }

  onHello(session) {
    $('term-title').textContent = `${session.taskPreview} — ${session.id.slice(0, 8)}`;
    this.backoff.reset();
    this.setState('live');
    // Tell the program our size (the fit may differ from the session's).
    this.sendResize(this.term.cols, this.term.rows);
  }

  reconnect() {
    if (this.closed || this.stream.exited) return;
    const delay = this.backoff.next();
    this.setState(`disconnected; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Read-only: neither keys nor sizes are sent (acks still are: they are flow control). */
  get readOnly() {
    return $('readonly').checked;
  }

  send(bytes) {
    if (this.readOnly) return;
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  sendResize(cols, rows) {
    if (!this.readOnly) this.sendControl({ type: 'resize', cols, rows });
  }

  sendControl(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  showExit(exit) {
    const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
    $('exit-banner').textContent = `Process ${exit.status === 'killed' ? 'was killed' : how}`;
    $('exit-banner').hidden = false;
    $('replay').hidden = false;
    this.setState(exit.status);
    // The banner took rows from the terminal's box: fit it again, so its last row shows.
    this.fit.fit();
  }

  setState(text) {
    $('term-state').textContent = text;
  }

  /** Rows `from` up to `to` of the active buffer as text. */
  text(from, to) {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let i = from; i < to; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  }

  dispose() {
    this.closed = true;
    clearTimeout(this.timer);
    window.removeEventListener('resize', this.onWindowResize);
    this.ws?.close();
    this.term.dispose();
  }
}

function openSession(id) {
  stopFeed();
  detach();
  history.replaceState(null, '', `${location.pathname}#session=${encodeURIComponent(id)}`);
  show('terminal-view');
  $('exit-banner').hidden = true;
  $('replay').hidden = true;
  $('replay-speed').hidden = true;
  $('term-title').textContent = id;
  attached = new AttachedTerminal(id, $('terminal'));
}

function detach() {
  attached?.dispose();
  attached = null;
  player?.dispose();
  player = null;
}

/** Plays the attached (finished) session's recording in place of its terminal. */
async function replay() {
  const id = attached?.id;
  if (!id) return;
  detach();
  $('replay').hidden = true;
  $('exit-banner').hidden = true;
  if (!document.querySelector('link[href="/assets/player.css"]')) {
    const css = Object.assign(document.createElement('link'), { rel: 'stylesheet', href: '/assets/player.css' });
    document.head.append(css);
  }
  const { playRecording } = await import('/assets/player.js');
  const play = (options) => {
    player?.dispose();
    $('terminal').replaceChildren();
    player = playRecording(id, $('terminal'), token, options);
  };
  play({ speed: Number($('replay-speed').value) });
  $('replay-speed').hidden = false;
  // The player takes its speed when created: a new one goes on from where this one was.
  $('replay-speed').onchange = async () => {
    const startAt = await player.getCurrentTime();
    play({ speed: Number($('replay-speed').value), startAt });
  };
}

// ---- the key bar (phones: keys a soft keyboard lacks) ----

/** The key bar's state: Ctrl is sticky, applying to the next key typed. */
const keyBar = {
  ctrl: false,
  /** `data` typed, as Ctrl makes it (a letter becomes its control character). */
  apply(data) {
    if (!this.ctrl || data.length !== 1) return data;
    this.setCtrl(false);
    const code = data.toUpperCase().charCodeAt(0);
    return code >= 0x40 && code <= 0x5f ? String.fromCharCode(code & 0x1f) : data;
  },
  setCtrl(on) {
    this.ctrl = on;
    $('key-ctrl').setAttribute('aria-pressed', String(on));
  },
};

/** The bytes each key-bar button sends (arrows as the program's cursor mode wants them). */
function keyBytes(name) {
  const app = attached?.term.modes.applicationCursorKeysMode;
  const arrow = (c) => (app ? `\x1bO${c}` : `\x1b[${c}`);
  return { esc: '\x1b', tab: '\t', up: arrow('A'), down: arrow('B'), right: arrow('C'), left: arrow('D'), 'ctrl-c': '\x03' }[name];
}

document.querySelectorAll('#keybar button[data-key]').forEach((btn) => {
  btn.addEventListener('click', () => {
    attached?.send(new TextEncoder().encode(keyBytes(btn.dataset.key)));
    attached?.term.focus();
  });
});
$('key-ctrl').addEventListener('click', () => {
  keyBar.setCtrl(!keyBar.ctrl);
  attached?.term.focus();
});
$('key-paste').addEventListener('click', async () => {
  const text = await navigator.clipboard?.readText().catch(() => '');
  if (!text || !attached) return;
  attached.term.paste(text);
  attached.term.focus();
});

// ---- start ----

async function start() {
  token = takeTokenFromUrl();
  if (!token) {
    show('login');
    return;
  }
  try {
    await loadPresets();
  } catch {
    return; // signOut already showed why
  }
  const session = new URLSearchParams(location.hash.replace(/^#/, '')).get('session');
  if (session) openSession(session);
  else await showList();
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('login-token').value.trim());
  $('login-error').textContent = '';
  start();
});
$('sign-out').addEventListener('click', () => signOut());
$('new-session').addEventListener('submit', startSession);
$('back').addEventListener('click', showList);
$('replay').addEventListener('click', replay);
$('filter').addEventListener('input', renderList);
// `?readonly=1` opens every terminal read-only; the bar's checkbox toggles it.
$('readonly').checked = new URLSearchParams(location.search).get('readonly') === '1';
// A #token= (or #session=) link pasted into the open page takes effect without a reload.
window.addEventListener('hashchange', () => {
  if (tokenFromHash(location.hash) || new URLSearchParams(location.hash.slice(1)).has('session')) {
    start();
  }
});

// For the end-to-end test and the curious: read-only views of the attached terminal.
window.monkeyproof = {
  screenText: () => {
    const b = attached?.term.buffer.active;
    return b ? attached.text(b.viewportY, b.viewportY + attached.term.rows) : '';
  },
  bufferText: () => (attached ? attached.text(0, attached.term.buffer.active.length) : ''),
  selectAll: () => attached?.term.selectAll(),
  /** Drops the connection as a network failure would; the page reconnects and resumes. */
  dropConnection: () => attached?.ws.close(),
  size: () => (attached ? { cols: attached.term.cols, rows: attached.term.rows } : null),
  offset: () => attached?.stream.offset ?? null,
  /** The recording's player (play, pause, seek, getCurrentTime, getDuration), once replaying. */
  player: () => player,
};

start();
