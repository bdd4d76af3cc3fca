// One attached terminal: an xterm.js instance fed by a raw-protocol WebSocket, resuming by byte
// offset when the connection drops. It knows its own box, not the page around it: what it has
// to tell (title, state, exit, output while hidden) goes to the `events` it was given.
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { Unicode11Addon } from '@xterm/addon-unicode11';
import { WebLinksAddon } from '@xterm/addon-web-links';
import { WebglAddon } from '@xterm/addon-webgl';
import { auth } from './api.js';
import { keyBar } from './keybar.js';
import { Backoff, OutputStream, subprotocols } from './stream.js';

export class AttachedTerminal {
  /**
   * `element`: the box to fill. `events`: { state(text), hello(session), exit(exit), output() }.
   * `readOnly`: send neither keys nor sizes.
   */
  constructor(id, element, events, { readOnly = false } = {}) {
    this.id = id;
    this.element = element;
    this.events = events;
    this.readOnly = readOnly;
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
    // The box changes with the window, the list beside it, the exit banner, a phone's soft
    // keyboard, and being shown again after another tab: refit whenever it does, and keep the
    // cursor line in view.
    this.resizes = new ResizeObserver(() => this.refit());
    this.resizes.observe(element);
    this.refit();
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

  /** Fits the terminal to its box (nothing while the box is hidden) and scrolls to the cursor. */
  refit() {
    if (this.closed || !this.element.offsetParent) return;
    this.fit.fit();
    this.term.scrollToBottom();
  }

  connect() {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/sessions/${encodeURIComponent(this.id)}/ws`;
    const protocols = subprotocols(auth.token);
    this.ws = protocols
      ? new WebSocket(url + this.stream.resumeQuery(), protocols)
      : new WebSocket(`${url}${this.stream.resumeQuery()}&token=${encodeURIComponent(auth.token)}`);
    this.ws.binaryType = 'arraybuffer';
    this.events.state('connecting…');
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
      if (action.exit) this.events.exit(action.exit);
      if (action.error) console.warn('monkeyproof:', action.error);
      return;
    }
    const bytes = new Uint8Array(data);
    const { end } = this.stream.bytes(bytes.length);
    this.events.output();
    this.term.write(bytes, () => {
      const ack = this.stream.consumed(end);
      if (ack) this.sendControl(ack);
    });
  }

  onHello(session) {
    this.backoff.reset();
    this.events.hello(session);
    if (!this.stream.exited) this.events.state('live');
    // Tell the program our size (the fit may differ from the session's).
    this.sendResize(this.term.cols, this.term.rows);
  }

  reconnect() {
    if (this.closed || this.stream.exited) return;
    const delay = this.backoff.next();
    this.events.state(`disconnected; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  send(bytes) {
    if (this.readOnly) return;
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  /** Read-only sends no size either (acks still go: they are flow control). */
  sendResize(cols, rows) {
    if (!this.readOnly) this.sendControl({ type: 'resize', cols, rows });
  }

  sendControl(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  /** Rows `from` up to `to` of the active buffer as text. */
  text(from, to) {
    const buffer = this.term.buffer.active;
    const lines = [];
    for (let i = from; i < to; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? '');
    return lines.join('\n');
  }

  focus() {
    this.term.focus();
  }

  dispose() {
    this.closed = true;
    clearTimeout(this.timer);
    this.resizes.disconnect();
    this.ws?.close();
    this.term.dispose();
  }
}
