// End-to-end tests of the terminal in the page, in a real browser (Debian's
// chromium-headless-shell, driven by playwright-core) against the real server binary and real
// PTYs. The workspace around it (tabs, the list, phones, notifications): workspace.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ARTIFACTS, FRONT, TOKEN, api, env, errorsOf, frontId, run, terminalBox, waitForScreen } from './harness.mjs';

test('a wrong token is refused with a clear message', async () => {
  const page = await env.browser.newPage();
  await page.goto(`${env.base}/#token=wrong-token-0123456789`);
  await page.waitForSelector('#login:not([hidden])');
  await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0);
  assert.match(await page.textContent('#login-error'), /Wrong token/);
  assert.ok(!page.url().includes('token'), 'the token must leave the address bar');
  // Signing in through the form works.
  await page.fill('#login-token', TOKEN);
  await page.click('#login-form button');
  await page.waitForSelector('#workspace:not([hidden])');
  await page.close();
});

test('the page serves security headers and no inline script', async () => {
  const res = await fetch(`${env.base}/`, { headers: { accept: 'text/html' } });
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy');
  for (const part of ["default-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "script-src 'self'"]) {
    assert.ok(csp.includes(part), `${part} missing from ${csp}`);
  }
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
  const html = await res.text();
  assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(html), 'inline script in the page');
  // API clients still get the JSON banner, with the token.
  const banner = await fetch(`${env.base}/`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal((await banner.json()).name, 'monkeyproof');
});

test('start, type, resize, full screen, reload, flood, exit', async () => {
  const context = await env.browser.newContext({ viewport: { width: 1100, height: 700 } });
  const page = await context.newPage();
  const errors = errorsOf(page);
  await page.goto(`${env.base}/#token=${TOKEN}`);
  await page.waitForSelector('#workspace:not([hidden])');

  // Start a bash session from the form; the page attaches to it.
  await page.fill('#new-task', "PS1='mp$ ' exec bash --norc --noprofile -i");
  await page.click('#new-session button[type=submit]');
  await page.waitForSelector(`${FRONT} .xterm`);
  await waitForScreen(page, /^mp\$ $/m);
  const id = await frontId(page);
  assert.ok(id);
  // The terminal alone, without the list beside it (full-screen programs want the width).
  await page.click('#toggle-list');

  // Typing reaches the program; the server's screen agrees with the page's.
  await run(page, 'echo hello-$RANDOM');
  const [hello] = await waitForScreen(page, /^hello-\d+$/m);
  const detail = await api('GET', `/sessions/${id}`);
  assert.ok(detail.screen.lines.includes(hello), `${hello} not in ${detail.screen.lines}`);

  // The terminal follows the window: the program sees the new size.
  const before = await page.evaluate(() => window.monkeyproof.size());
  await page.setViewportSize({ width: 760, height: 420 });
  await page.waitForFunction((b) => window.monkeyproof.size().cols !== b.cols, before);
  const size = await page.evaluate(() => window.monkeyproof.size());
  await run(page, 'clear; stty size');
  await waitForScreen(page, new RegExp(`^${size.rows} ${size.cols}$`, 'm'));
  assert.ok(size.cols < before.cols && size.rows < before.rows);

  // A full-screen program renders (alternate screen), then gives the screen back.
  await run(page, 'vim -u NONE -N');
  await waitForScreen(page, /^~ +VIM - Vi IMproved/m);
  const vimDetail = await api('GET', `/sessions/${id}`);
  assert.equal(vimDetail.screen.alternateScreen, true);
  await run(page, ':q!');
  await waitForScreen(page, /^mp\$ $/m);

  // Reload: the page reattaches and the earlier output is still there.
  await run(page, 'echo before-reload');
  await waitForScreen(page, /^before-reload$/m);
  await page.reload();
  await page.waitForSelector(`${FRONT} .xterm`);
  await waitForScreen(page, /^before-reload$/m);

  // Dropped connections: the page reconnects and resumes at its offset, losing and repeating
  // nothing.
  await run(page, 'clear; for i in $(seq 1 150); do echo n-$i; sleep 0.01; done; echo counted');
  for (let drop = 0; drop < 3; drop++) {
    await new Promise((r) => setTimeout(r, 300));
    await page.evaluate(() => window.monkeyproof.dropConnection());
  }
  await waitForScreen(page, /^counted$/m);
  const numbered = (await page.evaluate(() => window.monkeyproof.bufferText()))
    .split('\n')
    .filter((l) => /^n-\d+$/.test(l));
  assert.deepEqual(numbered, Array.from({ length: 150 }, (_, i) => `n-${i + 1}`));

  // Paste goes to the program (as one piece); Ctrl+Shift+C copies the selection.
  await page.evaluate(() => {
    const data = new DataTransfer();
    data.setData('text/plain', 'echo pasted-$((2+3))');
    document.querySelector('.pane:not([hidden]) textarea').dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
  });
  await page.keyboard.press('Enter');
  await waitForScreen(page, /^pasted-5$/m);
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: env.base });
  await page.evaluate(() => window.monkeyproof.selectAll());
  await page.keyboard.press('Control+Shift+KeyC');
  await page.waitForFunction(async () => (await navigator.clipboard.readText()).includes('pasted-5'));

  // A second tab on the same session sees the same thing.
  const tab2 = await context.newPage();
  await tab2.goto(`${env.base}/#token=${TOKEN}&session=${id}`);
  await tab2.waitForSelector(`${FRONT} .xterm`);
  await run(page, 'echo two-tabs');
  await waitForScreen(tab2, /^two-tabs$/m);
  await tab2.close();

  // A flood keeps the tab responsive, and Ctrl-C stops it.
  await run(page, 'yes flood-flood-flood');
  await waitForScreen(page, /flood-flood-flood\nflood-flood-flood/);
  const t0 = Date.now();
  assert.equal(await page.evaluate(() => 1 + 1), 2);
  assert.ok(Date.now() - t0 < 1000, `page blocked for ${Date.now() - t0} ms during the flood`);
  const pressed = Date.now();
  await page.keyboard.press('Control+C');
  // The output stops growing within a second: find the first moment it reached its final size.
  let last = -1;
  let since = 0;
  for (;;) {
    const { outputBytes } = await api('GET', `/sessions/${id}`);
    const now = Date.now();
    if (outputBytes !== last) {
      last = outputBytes;
      since = now;
    } else if (now - since >= 500) {
      break;
    }
    assert.ok(now - pressed < 5000, 'the flood did not stop after Ctrl-C');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(since - pressed < 1000, `the flood stopped ${since - pressed} ms after Ctrl-C`);
  await run(page, 'clear; echo after-$((40+2))');
  await waitForScreen(page, /^after-42$/m);
  await page.screenshot({ path: `${ARTIFACTS}terminal.png` });

  // Exit shows a banner with the code.
  await run(page, 'exit 5');
  await page.waitForSelector(`${FRONT} .banner:not([hidden])`);
  assert.match(await page.textContent(`${FRONT} .banner`), /exited with code 5/);
  // The banner took rows from the terminal, which was fitted again: its last row still shows.
  const { bottom } = await terminalBox(page);
  const height = await page.evaluate(() => window.innerHeight);
  assert.ok(bottom <= height + 1, `terminal bottom ${bottom} below the window (${height})`);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a finished session plays back with asciinema-player: play, seek, speed', async () => {
  const context = await env.browser.newContext({ viewport: { width: 1000, height: 640 } });
  const page = await context.newPage();
  const errors = errorsOf(page);
  const session = await api('POST', '/sessions', {
    task: "printf 'first-line\\n'; sleep 0.8; printf 'second-line\\n'; exit 3",
  });
  await page.goto(`${env.base}/#token=${TOKEN}&session=${session.id}`);
  await page.waitForSelector(`${FRONT} .banner:not([hidden])`);
  await page.click('#replay');
  await page.waitForSelector('.ap-player');
  const termText = () => page.evaluate(() => document.querySelector('.ap-term')?.textContent ?? '');

  // The player is what a person sees where the terminal was: on top at its centre, in the window.
  const box = await page.locator('.ap-player').boundingBox();
  assert.ok(box.width > 500 && box.height > 200, `player box ${JSON.stringify(box)}`);
  assert.ok(box.y + box.height <= 640 + 1, `player below the window: ${JSON.stringify(box)}`);
  const onTop = await page.evaluate(({ x, y }) => !!document.elementFromPoint(x, y)?.closest('.ap-player'), {
    x: box.x + box.width / 2,
    y: box.y + box.height / 2,
  });
  assert.ok(onTop, 'something covers the player');

  // Play: the output comes back, with its real timing (the 0.8 s pause is in the recording).
  await page.click('.ap-player');
  await page.waitForFunction(() => document.querySelector('.ap-term')?.textContent.includes('second-line'));
  const duration = await page.evaluate(() => window.monkeyproof.player().getDuration());
  assert.ok(duration >= 0.7 && duration < 5, `duration ${duration}`);

  // Seek back to before the pause: only the first line shows.
  await page.evaluate(async () => {
    await window.monkeyproof.player().pause();
    await window.monkeyproof.player().seek(0.3);
  });
  await page.waitForFunction(() => !document.querySelector('.ap-term')?.textContent.includes('second-line'));
  assert.match(await termText(), /first-line/);
  await page.screenshot({ path: `${ARTIFACTS}replay.png` });

  // Speed: 4× plays on from where it was, and gets to the end.
  await page.selectOption('#replay-speed', '4');
  await page.waitForFunction(() => document.querySelector('.ap-term')?.textContent.includes('second-line'));
  assert.deepEqual(errors, []);
  await context.close();
});

test('a pasted #token link signs in without a reload, and rows show agents', async () => {
  const claude = new URL('../../tests/fixtures/agents/claude', import.meta.url).pathname;
  const session = await api('POST', '/sessions', { type: 'interactive', command: claude, task: 'please run it' });
  const page = await env.browser.newPage({ viewport: { width: 1100, height: 700 } });
  await page.goto(`${env.base}/`);
  await page.waitForSelector('#login:not([hidden])');
  await page.evaluate((token) => { location.hash = `#token=${token}`; }, TOKEN);
  await page.waitForSelector('#workspace:not([hidden])');
  // Signed in, the sign-in form is gone from the screen, not only from the DOM's idea of it.
  assert.equal(await page.isVisible('#login'), false);
  const box = await page.locator('#session-table').boundingBox();
  const onTop = await page.evaluate(({ x, y }) => !!document.elementFromPoint(x, y)?.closest('#session-table'), {
    x: box.x + 20,
    y: box.y + 10,
  });
  assert.ok(onTop, 'something covers the session list');
  assert.match(await page.textContent('#sessions-status'), /^(1 session|\d+ sessions)$/);
  // The agent's state is in its row.
  const row = page.locator(`tr[data-id="${session.id}"]`);
  await page.waitForFunction(
    (id) => document.querySelector(`tr[data-id="${id}"]`)?.textContent.includes('waiting: permission'),
    session.id,
    { timeout: 15000 },
  );
  assert.ok(await row.isVisible());
  await api('DELETE', `/sessions/${session.id}`);
  await page.close();
});

test('rows open on a click or Enter, the filter narrows the list, read-only sends nothing', async () => {
  const one = await api('POST', '/sessions', { task: 'echo row-one; exec cat', labels: ['alpha'] });
  const two = await api('POST', '/sessions', { task: 'echo row-two; exec cat', labels: ['beta'] });
  const page = await env.browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors = errorsOf(page);
  await page.goto(`${env.base}/#token=${TOKEN}`);
  await page.waitForSelector(`tr[data-id="${two.id}"]`);

  // The filter: only the rows whose words match.
  await page.fill('#filter', 'beta');
  const shown = await page.$$eval('#session-table tbody tr', (rows) => rows.map((r) => r.dataset.id));
  assert.deepEqual(shown, [two.id]);
  await page.fill('#filter', '');

  // A click on the row (not its buttons) opens the session.
  await page.click(`tr[data-id="${one.id}"] td.task`);
  await page.waitForSelector(`${FRONT} .xterm`);
  await waitForScreen(page, /^row-one$/m);

  // Keyboard, in the list beside the terminal: a focused row opens on Enter, with a visible
  // focus ring.
  await page.waitForSelector(`tr[data-id="${two.id}"]`);
  await page.focus(`tr[data-id="${two.id}"]`);
  const outline = await page.$eval(`tr[data-id="${two.id}"]`, (r) => getComputedStyle(r).outlineStyle);
  assert.notEqual(outline, 'none');
  await page.keyboard.press('Enter');
  await page.waitForSelector(`${FRONT} .xterm`);
  await waitForScreen(page, /^row-two$/m);

  // Read-only: keys and sizes go nowhere.
  await page.check('#readonly');
  const before = (await api('GET', `/sessions/${two.id}`)).outputBytes;
  const size = await api('GET', `/sessions/${two.id}`);
  await page.keyboard.type('typed-while-read-only');
  await page.keyboard.press('Enter');
  await page.setViewportSize({ width: 700, height: 400 });
  await new Promise((r) => setTimeout(r, 500));
  const after = await api('GET', `/sessions/${two.id}`);
  assert.equal(after.outputBytes, before, 'read-only sent keys');
  assert.deepEqual([after.cols, after.rows], [size.cols, size.rows], 'read-only sent a size');
  // Unchecked, keys go through again.
  await page.uncheck('#readonly');
  await page.click(`${FRONT} .terminal`);
  await page.keyboard.type('typed-again');
  await page.keyboard.press('Enter');
  await waitForScreen(page, /^typed-again$/m);
  assert.deepEqual(errors, []);
  await api('DELETE', `/sessions/${one.id}`);
  await api('DELETE', `/sessions/${two.id}`);
  await page.close();
});

test('the list follows the event feed instead of polling', async () => {
  const page = await env.browser.newPage({ viewport: { width: 1100, height: 700 } });
  const listReads = [];
  page.on('request', (req) => {
    if (req.method() === 'GET' && new URL(req.url()).pathname === '/sessions') listReads.push(Date.now());
  });
  await page.goto(`${env.base}/#token=${TOKEN}`);
  await page.waitForSelector('#workspace:not([hidden])');
  // Let what earlier tests left settle, then nothing happens: nothing is read.
  await new Promise((r) => setTimeout(r, 1500));
  const quietFrom = listReads.length;
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(listReads.length, quietFrom, 'the list was read though nothing happened');
  // A session starts: its row appears, read once after the event.
  const started = Date.now();
  const session = await api('POST', '/sessions', { task: 'sleep 30', labels: ['feed'] });
  await page.waitForSelector(`tr[data-id="${session.id}"]`, { timeout: 5000 });
  assert.ok(Date.now() - started < 1500, `row appeared after ${Date.now() - started} ms`);
  // It ends: the row says so.
  await api('DELETE', `/sessions/${session.id}`);
  await page.waitForFunction(
    (id) => document.querySelector(`tr[data-id="${id}"] .status-killed`),
    session.id,
    { timeout: 10000 },
  );
  await page.close();
});

test('name, labels and owner are given at start; rows show the title and the bell', async () => {
  const page = await env.browser.newPage({ viewport: { width: 1100, height: 700 } });
  await page.goto(`${env.base}/#token=${TOKEN}`);
  await page.waitForSelector('#workspace:not([hidden])');
  await page.fill('#new-task', "printf '\\033]0;my-title\\007\\a'; exec cat");
  await page.fill('#new-labels', 'one, two');
  await page.fill('#new-owner', 'ana');
  await page.fill('#new-name', 'titled one');
  await page.click('#new-session button[type=submit]');
  await page.waitForSelector(`${FRONT} .xterm`);
  const id = await frontId(page);
  const info = await api('GET', `/sessions/${id}`);
  assert.deepEqual([info.labels, info.owner, info.name], [['one', 'two'], 'ana', 'titled one']);
  assert.equal(await page.textContent('#tabs .front .tab-open'), 'titled one');
  // The list is beside the terminal; the wide columns (labels, owner) show once it is closed.
  await page.click('#tabs .tab-close');
  const row = `tr[data-id="${id}"]`;
  await page.waitForFunction((row) => document.querySelector(row)?.textContent.includes('— my-title') && document.querySelector(row).textContent.includes('🔔1'), row);
  const text = await page.textContent(row);
  assert.ok(text.includes('🔔1') && text.includes('one, two') && text.includes('ana'), text);
  await api('DELETE', `/sessions/${id}`);
  await page.close();
});
