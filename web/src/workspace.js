// The workspace: several terminals open at once, one per tab, one in front. A tab keeps its
// connection while behind (its output marks it), and is closed by hand, when its session is
// removed, or — past MAX_TABS — when it is the one used longest ago.
import { api, auth } from './api.js';
import { tabLabel } from './model.js';
import { AttachedTerminal } from './terminal.js';

/** Terminals open at once: each is a WebSocket and an xterm.js with 5,000 rows of scrollback. */
export const MAX_TABS = 8;
/** The tabs open in this browser tab, reopened after a reload. */
const OPEN_KEY = 'monkeyproof.tabs';
const $ = (id) => document.getElementById(id);

let paneCount = 0;

class Tab {
  constructor(info, readOnly, onEvent) {
    this.id = info.id;
    this.info = info;
    this.usedAt = Date.now();
    this.state = '';
    this.exit = null;
    this.player = null;
    const n = ++paneCount;
    this.pane = Object.assign(document.createElement('div'), { className: 'pane', id: `pane-${n}`, hidden: true });
    this.pane.setAttribute('role', 'tabpanel');
    this.banner = Object.assign(document.createElement('div'), { className: 'banner', hidden: true });
    this.box = Object.assign(document.createElement('div'), { className: 'terminal' });
    this.pane.append(this.banner, this.box);
    this.element = Object.assign(document.createElement('div'), { className: 'tab' });
    this.button = Object.assign(document.createElement('button'), { type: 'button', id: `tab-${n}`, className: 'tab-open' });
    this.button.setAttribute('role', 'tab');
    this.button.setAttribute('aria-controls', this.pane.id);
    this.pane.setAttribute('aria-labelledby', this.button.id);
    this.close = Object.assign(document.createElement('button'), { type: 'button', className: 'tab-close', textContent: '×' });
    this.element.append(this.button, this.close);
    this.describe(info);
    this.terminal = new AttachedTerminal(info.id, this.box, onEvent(this), { readOnly });
  }

  /** Shows what is known of the session in its tab. */
  describe(info) {
    this.info = info;
    this.button.textContent = tabLabel(info);
    this.button.title = `${info.taskPreview ?? info.task} — ${info.id.slice(0, 8)}`;
    this.close.setAttribute('aria-label', `Close ${tabLabel(info)}`);
    this.element.classList.toggle('waiting', info.agent?.state === 'waiting');
    this.element.classList.toggle('ended', info.status !== 'running');
  }

  dispose() {
    this.player?.dispose();
    this.terminal?.dispose();
    this.pane.remove();
    this.element.remove();
  }
}

export class Workspace {
  /** `onChange()` is called whenever tabs open, close or change places. */
  constructor(onChange) {
    this.tabs = new Map();
    this.active = null;
    this.onChange = onChange;
    this.readOnlyDefault = new URLSearchParams(location.search).get('readonly') === '1';
    $('readonly').addEventListener('change', () => {
      const tab = this.frontTab();
      if (tab) tab.terminal.readOnly = $('readonly').checked;
    });
    $('replay').addEventListener('click', () => this.replay());
    $('tabs').addEventListener('keydown', (e) => this.tabKeys(e));
  }

  frontTab() {
    return this.active ? this.tabs.get(this.active) : null;
  }

  /** The terminal in front, if any. */
  front() {
    return this.frontTab()?.terminal ?? null;
  }

  /** Opens session `id` in a tab (or brings its tab to the front). Throws the server's error
   *  (e.g. not found). */
  async open(id) {
    if (this.tabs.has(id)) return this.activate(id);
    const info = await api('GET', `/sessions/${encodeURIComponent(id)}`);
    if (this.tabs.has(id)) return this.activate(id);
    const tab = new Tab(info, this.readOnlyDefault, (t) => this.terminalEvents(t));
    tab.button.addEventListener('click', () => this.activate(id));
    tab.close.addEventListener('click', () => this.close(id));
    this.tabs.set(id, tab);
    $('tabs').append(tab.element);
    $('pane-stack').append(tab.pane);
    while (this.tabs.size > MAX_TABS) this.close(this.leastRecent(id));
    // Laid out first (the terminals' side may have been hidden): focus needs a visible box.
    this.changed();
    this.activate(id);
  }

  leastRecent(except) {
    return [...this.tabs.values()].filter((t) => t.id !== except).sort((a, b) => a.usedAt - b.usedAt)[0].id;
  }

  /** What a tab's terminal reports, shown in its tab and, in front, in the bar. */
  terminalEvents(tab) {
    return {
      state: (text) => {
        tab.state = text;
        if (this.active === tab.id) $('term-state').textContent = text;
      },
      hello: (session) => tab.describe({ ...tab.info, ...session }),
      exit: (exit) => this.showExit(tab, exit),
      output: () => {
        if (this.active !== tab.id) tab.element.classList.add('unseen');
      },
    };
  }

  activate(id) {
    const tab = this.tabs.get(id);
    if (!tab) return;
    this.active = id;
    tab.usedAt = Date.now();
    tab.element.classList.remove('unseen');
    for (const t of this.tabs.values()) {
      const front = t === tab;
      t.pane.hidden = !front;
      t.button.setAttribute('aria-selected', String(front));
      t.button.tabIndex = front ? 0 : -1;
      t.element.classList.toggle('front', front);
    }
    this.showControls(tab);
    history.replaceState(null, '', `${location.pathname}${location.search}#session=${encodeURIComponent(id)}`);
    // The pane was hidden: its size is known only now.
    tab.terminal?.refit();
    if (!tab.player) tab.terminal?.focus();
    this.changed();
  }

  /** The bar's controls speak for the tab in front. */
  showControls(tab) {
    $('term-state').textContent = tab?.state ?? '';
    $('readonly').checked = tab?.terminal?.readOnly ?? this.readOnlyDefault;
    $('replay').hidden = !tab?.exit || !!tab.player;
    $('replay-speed').hidden = !tab?.player;
  }

  close(id) {
    const tab = this.tabs.get(id);
    if (!tab) return;
    tab.dispose();
    this.tabs.delete(id);
    if (this.active === id) {
      this.active = null;
      const next = [...this.tabs.values()].sort((a, b) => b.usedAt - a.usedAt)[0];
      if (next) return this.activate(next.id);
      this.showControls(null);
      history.replaceState(null, '', location.pathname + location.search);
    }
    this.changed();
  }

  closeAll() {
    for (const id of [...this.tabs.keys()]) this.close(id);
  }

  changed() {
    sessionStorage.setItem(OPEN_KEY, JSON.stringify([...this.tabs.keys()]));
    this.onChange();
  }

  /** Reopens the tabs open before a reload, then `front` (if given) in front. Sessions gone
   *  meanwhile are skipped. */
  async restore(front) {
    const ids = JSON.parse(sessionStorage.getItem(OPEN_KEY) ?? '[]');
    for (const id of ids.filter((id) => id !== front)) await this.open(id).catch(() => {});
    if (front) await this.open(front);
  }

  /** A session in the list changed: its tab says so. */
  update(info) {
    this.tabs.get(info.id)?.describe(info);
  }

  showExit(tab, exit) {
    const how = exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.code}`;
    tab.exit = exit;
    tab.banner.textContent = `Process ${exit.status === 'killed' ? 'was killed' : how}`;
    tab.banner.hidden = false;
    tab.state = exit.status;
    tab.element.classList.add('ended');
    if (this.active === tab.id) this.showControls(tab);
  }

  /** Plays the front tab's (finished) session's recording in place of its terminal. */
  async replay() {
    const tab = this.frontTab();
    if (!tab?.exit) return;
    tab.terminal?.dispose();
    tab.terminal = null;
    tab.banner.hidden = true;
    if (!document.querySelector('link[href="/assets/player.css"]')) {
      const css = Object.assign(document.createElement('link'), { rel: 'stylesheet', href: '/assets/player.css' });
      document.head.append(css);
    }
    const { playRecording } = await import('/assets/player.js');
    const play = (options) => {
      tab.player?.dispose();
      tab.box.replaceChildren();
      tab.player = playRecording(tab.id, tab.box, auth.token, options);
    };
    play({ speed: Number($('replay-speed').value) });
    this.showControls(tab);
    // The player takes its speed when created: a new one goes on from where this one was.
    $('replay-speed').onchange = async () => {
      const startAt = await tab.player.getCurrentTime();
      play({ speed: Number($('replay-speed').value), startAt });
    };
  }

  /** Left/Right (and Home/End) move between tabs, as in any tab list. */
  tabKeys(e) {
    const ids = [...this.tabs.keys()];
    const at = ids.indexOf(this.active);
    const to = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: ids.length - 1 }[e.key];
    if (to === undefined || !e.target.closest('[role=tab]')) return;
    e.preventDefault();
    const id = ids[(to + ids.length) % ids.length];
    this.activate(id);
    this.tabs.get(id).button.focus();
  }
}
