// The key bar: keys a phone's soft keyboard lacks (Esc, Tab, a sticky Ctrl, arrows, C-c, paste),
// sent to the terminal in front.

/** The key bar's state: Ctrl is sticky, applying to the next key typed. */
export const keyBar = {
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
    document.getElementById('key-ctrl').setAttribute('aria-pressed', String(on));
  },
};

/** The bytes a key-bar button sends (arrows as the program's cursor mode wants them). */
function keyBytes(name, applicationCursor) {
  const arrow = (c) => (applicationCursor ? `\x1bO${c}` : `\x1b[${c}`);
  return { esc: '\x1b', tab: '\t', up: arrow('A'), down: arrow('B'), right: arrow('C'), left: arrow('D'), 'ctrl-c': '\x03' }[name];
}

/** Wires the bar's buttons to whatever terminal `front()` returns. */
export function setUpKeyBar(front) {
  document.querySelectorAll('#keybar button[data-key]').forEach((btn) => {
    btn.addEventListener('click', () => {
      const terminal = front();
      if (!terminal) return;
      terminal.send(new TextEncoder().encode(keyBytes(btn.dataset.key, terminal.term.modes.applicationCursorKeysMode)));
      terminal.focus();
    });
  });
  document.getElementById('key-ctrl').addEventListener('click', () => {
    keyBar.setCtrl(!keyBar.ctrl);
    front()?.focus();
  });
  document.getElementById('key-paste').addEventListener('click', async () => {
    const text = await navigator.clipboard?.readText().catch(() => '');
    const terminal = front();
    if (!text || !terminal) return;
    terminal.term.paste(text);
    terminal.focus();
  });
}
