// The monkeyproof page: sign in, then a workspace — the session list beside (desktop) or over
// (phone) the terminals open in tabs. Each room of it has its module: api.js (token, REST),
// list.js, workspace.js (tabs), terminal.js (one xterm.js), keybar.js, notify.js, model.js.
import { api, auth, forgetToken, saveToken, takeTokenFromUrl } from './api.js';
import { setUpKeyBar } from './keybar.js';
import { SessionList } from './list.js';
import { tabLabel } from './model.js';
import { notifier } from './notify.js';
import { tokenFromHash } from './stream.js';
import { Workspace } from './workspace.js';

/** Whether, on a wide screen, the list stays beside the terminals (a person's choice, kept). */
const LIST_KEY = 'monkeyproof.list';
const $ = (id) => document.getElementById(id);
/** Narrow screens put the list over the terminals instead of beside them. */
const narrow = matchMedia('(max-width: 700px)');

const layout = {
  besideOnWide: localStorage.getItem(LIST_KEY) !== 'hidden',
  overOnNarrow: false,
};

const workspace = new Workspace(arrange);
const list = new SessionList({
  open: openSession,
  onRead: (sessions) => sessions.forEach((s) => workspace.update(s)),
  onEvent: ({ type, data }) => {
    if (type === 'removed') workspace.close(data.session);
    if (type === 'agent') {
      const info = list.sessions.find((s) => s.id === data.session);
      notifier.agentChanged(data.session, data.agent, {
        inFront: workspace.active === data.session,
        label: info ? tabLabel(info, 40) : data.session.slice(0, 8),
      });
    }
  },
});

/** Shows the list and the terminals as the screen and the tabs open call for. */
function arrange() {
  const tabs = workspace.tabs.size > 0;
  const listShown = !tabs || (narrow.matches ? layout.overOnNarrow : layout.besideOnWide);
  $('workspace').classList.toggle('has-tabs', tabs);
  $('workspace').classList.toggle('list-shown', listShown);
  $('toggle-list').hidden = !tabs;
  $('toggle-list').setAttribute('aria-expanded', String(listShown));
  $('panes').hidden = !tabs;
}

function toggleList() {
  if (narrow.matches) layout.overOnNarrow = !layout.overOnNarrow;
  else {
    layout.besideOnWide = !layout.besideOnWide;
    localStorage.setItem(LIST_KEY, layout.besideOnWide ? 'shown' : 'hidden');
  }
  arrange();
  if (!$('workspace').classList.contains('list-shown')) workspace.front()?.focus();
}

async function openSession(id) {
  $('new-error').textContent = '';
  // On a phone the list makes way for the terminal.
  const wasOver = layout.overOnNarrow;
  layout.overOnNarrow = false;
  try {
    await workspace.open(id);
  } catch (e) {
    layout.overOnNarrow = wasOver;
    arrange();
    $('new-error').textContent = `cannot open ${id}: ${e.message}`;
  }
}

function show(id) {
  for (const section of ['login', 'workspace']) $(section).hidden = section !== id;
}

function signOut(message = '') {
  forgetToken();
  workspace.closeAll();
  list.stop();
  show('login');
  $('login-error').textContent = message;
}
auth.onRefused = () => signOut('Wrong token: the server refused it.');

async function loadPresets() {
  const presets = await api('GET', '/presets');
  const select = $('new-preset');
  const update = () => {
    const type = $('new-type').value;
    select.replaceChildren(new Option('(preset)', ''));
    for (const p of presets.filter((p) => p.type === type)) select.append(new Option(p.name, p.name));
    select.disabled = type === 'exec';
  };
  $('new-type').onchange = update;
  update();
}

async function startSession(event) {
  event.preventDefault();
  $('new-error').textContent = '';
  const body = { task: $('new-task').value, type: $('new-type').value };
  if ($('new-cwd').value) body.cwd = $('new-cwd').value;
  if ($('new-preset').value) body.preset = $('new-preset').value;
  if ($('new-owner').value.trim()) body.owner = $('new-owner').value.trim();
  if ($('new-name').value.trim()) body.name = $('new-name').value.trim();
  const labels = $('new-labels').value.split(',').map((l) => l.trim()).filter(Boolean);
  if (labels.length) body.labels = labels;
  try {
    const session = await api('POST', '/sessions', body);
    await openSession(session.id);
  } catch (e) {
    $('new-error').textContent = e.message;
  }
}

async function start() {
  if (!takeTokenFromUrl()) {
    show('login');
    return;
  }
  try {
    await loadPresets();
  } catch {
    return; // signOut already showed why
  }
  show('workspace');
  arrange();
  notifier.render();
  list.follow();
  await list.refresh();
  const front = new URLSearchParams(location.hash.slice(1)).get('session');
  try {
    await workspace.restore(front);
  } catch (e) {
    $('new-error').textContent = `cannot open ${front}: ${e.message}`;
  }
  layout.overOnNarrow = false;
  arrange();
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  saveToken($('login-token').value.trim());
  $('login-error').textContent = '';
  start();
});
$('sign-out').addEventListener('click', () => signOut());
$('new-session').addEventListener('submit', startSession);
$('toggle-list').addEventListener('click', toggleList);
$('notify').addEventListener('click', () => notifier.toggle());
notifier.onOpen = openSession;
narrow.addEventListener('change', arrange);
setUpKeyBar(() => workspace.front());
// The visible height, which a phone's soft keyboard shrinks (where the browser does not resize
// the page for it): the workspace keeps to it, so the terminal refits above the keyboard.
window.visualViewport?.addEventListener('resize', () => {
  document.documentElement.style.setProperty('--visible-height', `${window.visualViewport.height}px`);
});
// A #token= (or #session=) link pasted into the open page takes effect without a reload.
window.addEventListener('hashchange', () => {
  const params = new URLSearchParams(location.hash.slice(1));
  if (tokenFromHash(location.hash)) start();
  else if (params.has('session') && auth.token) openSession(params.get('session'));
});

// For the end-to-end test and the curious: read-only views of the terminal in front.
window.monkeyproof = {
  screenText: () => {
    const t = workspace.front();
    const b = t?.term.buffer.active;
    return b ? t.text(b.viewportY, b.viewportY + t.term.rows) : '';
  },
  bufferText: () => {
    const t = workspace.front();
    return t ? t.text(0, t.term.buffer.active.length) : '';
  },
  selectAll: () => workspace.front()?.term.selectAll(),
  /** Drops the connection as a network failure would; the page reconnects and resumes. */
  dropConnection: () => workspace.front()?.ws.close(),
  size: () => {
    const t = workspace.front();
    return t ? { cols: t.term.cols, rows: t.term.rows, cursorY: t.term.buffer.active.cursorY } : null;
  },
  offset: () => workspace.front()?.stream.offset ?? null,
  /** The open tabs' session ids, in order, and the one in front. */
  tabs: () => ({ open: [...workspace.tabs.keys()], front: workspace.active }),
  /** The recording's player (play, pause, seek, getCurrentTime, getDuration), once replaying. */
  player: () => workspace.frontTab()?.player ?? null,
  /** Titles of the notifications shown. */
  notifications: () => notifier.shown,
};

start();
