// The session list: rows kept in place by id (a re-read never replaces a row under a click),
// narrowed by the filter, and read again when /events says something changed — no polling.
import { api, auth } from './api.js';
import { age, agentText, finished, matches, parseSse, statusText, taskText } from './model.js';
import { Backoff } from './stream.js';

/** After an event, the list is read again this much later (events come in bursts). */
const SETTLE_MS = 150;
/** Every event type but `output`: the list shows no output, and output is the busiest. */
const FEED = '/events?types=created,adopted,busy,idle,title,bell,resize,exit,removed,agent';
const $ = (id) => document.getElementById(id);

function button(label, onClick, className) {
  const b = Object.assign(document.createElement('button'), { type: 'button', textContent: label });
  if (className) b.className = className;
  b.addEventListener('click', onClick);
  return b;
}

export class SessionList {
  /** `open(id)`: open a session. `onEvent(event)`: every event of the feed, as it comes.
   *  `onRead(sessions)`: after each read of the list. */
  constructor({ open, onEvent, onRead }) {
    this.open = open;
    this.onEvent = onEvent;
    this.onRead = onRead;
    /** The sessions last read, newest first. */
    this.sessions = [];
    this.rows = new Map();
    this.feed = null;
    this.settleTimer = null;
    $('filter').addEventListener('input', () => this.render());
    $('filter-status').addEventListener('change', () => this.render());
    $('remove-finished').addEventListener('click', () => this.removeFinished());
    $('session-table').querySelector('tbody').addEventListener('keydown', (e) => this.rowKeys(e));
  }

  async refresh() {
    let sessions;
    try {
      sessions = await api('GET', '/sessions');
    } catch (e) {
      $('sessions-status').textContent = e.message === 'unauthorized' ? '' : `refresh failed: ${e.message}`;
      return;
    }
    $('sessions-status').textContent = `${sessions.length} session${sessions.length === 1 ? '' : 's'}`;
    this.sessions = sessions.reverse();
    this.render();
    this.onRead(this.sessions);
  }

  shown() {
    return this.sessions.filter((s) => matches(s, $('filter').value, $('filter-status').value));
  }

  render() {
    const body = $('session-table').querySelector('tbody');
    const shown = this.shown();
    const ids = new Set(shown.map((s) => s.id));
    for (const [id, row] of this.rows) {
      if (!ids.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    shown.forEach((s, i) => {
      const row = this.rows.get(s.id) ?? this.newRow(s.id);
      this.fill(row, s);
      // Moved only when out of place: a row under the pointer stays put.
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] ?? null);
    });
    const done = shown.filter(finished).length;
    $('remove-finished').hidden = done === 0;
    $('remove-finished').textContent = `Remove ${done} finished`;
  }

  newRow(id) {
    const row = document.createElement('tr');
    row.dataset.id = id;
    // A row opens its session on a click or, focused, on Enter.
    row.tabIndex = 0;
    row.addEventListener('click', (e) => {
      if (!e.target.closest('button')) this.open(id);
    });
    for (const name of ['id wide', 'task', 'type wide', 'status', 'agent', 'exit wide', 'owner wide', 'labels wide', 'age wide', 'actions']) {
      const td = Object.assign(document.createElement('td'), { className: name });
      td.dataset.base = name;
      row.append(td);
    }
    this.rows.set(id, row);
    return row;
  }

  fill(row, s) {
    const set = (name, text, extra = '') => {
      const td = row.querySelector(`td.${name}`);
      if (td.textContent !== String(text ?? '')) td.textContent = text ?? '';
      const className = extra ? `${td.dataset.base} ${extra}` : td.dataset.base;
      if (td.className !== className) td.className = className;
    };
    row.setAttribute('aria-label', `session ${s.name ?? s.id.slice(0, 8)}: ${s.taskPreview}`);
    set('id', s.id.slice(0, 8));
    set('task', taskText(s));
    set('type', s.type);
    set('status', statusText(s), `status-${s.status}`);
    set('agent', agentText(s.agent), s.agent ? `agent-${s.agent.state}` : '');
    set('exit', s.exitCode ?? s.signal ?? '');
    set('owner', s.owner);
    set('labels', s.labels.join(', '));
    set('age', age(s.createdAt));
    // The actions change with the status only.
    if (row.dataset.status !== s.status) {
      row.dataset.status = s.status;
      const actions = row.querySelector('td.actions');
      actions.replaceChildren(button('Attach', () => this.open(s.id), 'wide'), ' ');
      if (s.status === 'running') {
        actions.append(button('Kill', () => api('DELETE', `/sessions/${s.id}`).catch((e) => this.fail(e)), 'kill'));
      } else {
        actions.append(button('Remove', () => this.remove([s.id]), 'remove'));
      }
    }
  }

  fail(e) {
    $('sessions-status').textContent = e.message;
  }

  /** Forgets finished sessions (their records, transcripts and recordings). */
  async remove(ids) {
    const results = await Promise.allSettled(ids.map((id) => api('DELETE', `/sessions/${encodeURIComponent(id)}?remove=true`)));
    const failed = results.find((r) => r.status === 'rejected');
    await this.refresh();
    if (failed) this.fail(failed.reason);
  }

  removeFinished() {
    return this.remove(this.shown().filter(finished).map((s) => s.id));
  }

  /** Up/Down move between rows; Enter opens the focused one. */
  rowKeys(e) {
    const row = e.target.closest('tr[data-id]');
    if (!row || e.target !== row) return;
    if (e.key === 'Enter') this.open(row.dataset.id);
    const next = { ArrowDown: row.nextElementSibling, ArrowUp: row.previousElementSibling }[e.key];
    if (next) {
      e.preventDefault();
      next.focus();
    }
  }

  /** Stops following `/events`. */
  stop() {
    this.feed?.abort();
    this.feed = null;
    clearTimeout(this.settleTimer);
  }

  /** Follows `/events` (a streamed fetch: EventSource cannot send the token) and reads the list
   *  again after each burst of events; reconnects with backoff. */
  follow() {
    this.stop();
    const controller = new AbortController();
    this.feed = controller;
    const backoff = new Backoff();
    const settle = () => {
      clearTimeout(this.settleTimer);
      this.settleTimer = setTimeout(() => this.refresh(), SETTLE_MS);
    };
    (async () => {
      while (!controller.signal.aborted) {
        try {
          const res = await fetch(FEED, { headers: { authorization: `Bearer ${auth.token}` }, signal: controller.signal });
          if (res.status === 401) return auth.onRefused();
          const reader = res.body.getReader();
          const decoder = new TextDecoder();
          let buffer = '';
          backoff.reset();
          // Events missed while disconnected: read the list once it is back.
          settle();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            const { events, rest } = parseSse(buffer + decoder.decode(value, { stream: true }));
            buffer = rest;
            for (const event of events) this.onEvent(event);
            if (events.length) settle();
          }
        } catch {
          if (controller.signal.aborted) return;
        }
        await new Promise((r) => setTimeout(r, backoff.next()));
      }
    })();
  }
}
