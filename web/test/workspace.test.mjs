// End-to-end tests of the workspace around the terminals, as a person sees it in Chromium: the
// list beside (desktop) or over (phone) the terminals, tabs, switching without a reload,
// removal of finished sessions, the phone's key bar and soft keyboard, opt-in notifications,
// labels on every control. Screenshots at 1280×800 and 390×844 go to web/test-artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ARTIFACTS, FRONT, FULL_CHROMIUM, TOKEN, api, env, errorsOf, frontId, launch, onTop, run, terminalBox, waitForScreen } from './harness.mjs';

const KEYLOG = new URL('../../tests/fixtures/keylog.py', import.meta.url).pathname;
const CLAUDE = new URL('../../tests/fixtures/agents/claude', import.meta.url).pathname;
const shell = (name) => ({ task: `PS1='${name}$ ' exec bash --norc --noprofile -i`, labels: [name] });

/** Every visible control without a name a screen reader could say. */
function unnamedControls(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('button, input, select, [role=tab]')]
      .filter((el) => el.offsetParent !== null)
      .filter((el) => {
        const name = el.getAttribute('aria-label') || el.labels?.[0]?.textContent || el.textContent || el.title;
        return !name?.trim();
      })
      .map((el) => el.outerHTML.slice(0, 80)),
  );
}

test('desktop: the list beside the terminals, tabs switched without a reload, removal', async () => {
  const one = await api('POST', '/sessions', shell('one'));
  const two = await api('POST', '/sessions', shell('two'));
  const done = await api('POST', '/sessions', { task: 'echo finished-one; exit 3', labels: ['done'] });
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors = errorsOf(page);
  await page.goto(`${env.base}/#token=${TOKEN}`);
  await page.waitForSelector(`tr[data-id="${two.id}"]`);
  assert.deepEqual(await unnamedControls(page), []);
  // Arrow keys walk the list.
  await page.focus(`tr[data-id="${done.id}"]`);
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.id), two.id);

  // Two sessions open in two tabs; the list stays beside them.
  await page.click(`tr[data-id="${one.id}"] td.task`);
  await waitForScreen(page, /^one\$ $/m);
  await page.click(`tr[data-id="${two.id}"] td.task`);
  await waitForScreen(page, /^two\$ $/m);
  assert.deepEqual(await page.evaluate(() => window.monkeyproof.tabs()), { open: [one.id, two.id], front: two.id });
  const sideScroll = await page.$eval('#side', (el) => [el.scrollWidth, el.clientWidth]);
  assert.ok(sideScroll[0] <= sideScroll[1], `the list beside scrolls sideways: ${sideScroll}`);
  for (const action of await page.locator('#session-table button:visible').all()) {
    const box = await action.boundingBox();
    assert.ok(box.x + box.width <= 361, `a row's action is cut off: ${JSON.stringify(box)}`);
  }
  const side = await page.locator('#side').boundingBox();
  const term = await terminalBox(page);
  assert.ok(side.x + side.width <= term.left + 1, `list ${JSON.stringify(side)} overlaps the terminal ${JSON.stringify(term)}`);
  assert.ok(term.right >= 1280 - 40 && term.bottom >= 800 - 40, `terminal does not fill its side: ${JSON.stringify(term)}`);
  assert.ok(await onTop(page, `tr[data-id="${one.id}"] td.task`), 'the list is covered');
  assert.ok(await onTop(page, `${FRONT} .xterm-screen`), 'the terminal is covered');
  assert.deepEqual(await unnamedControls(page), []);
  await page.screenshot({ path: `${ARTIFACTS}desktop-workspace.png` });

  // Output in the tab behind marks it; switching is instant and keeps each screen.
  const loaded = await page.evaluate(() => (window.loadedOnce = performance.timeOrigin));
  await api('POST', `/sessions/${one.id}/input`, { input: 'echo behind-$((6*7))', enter: true });
  await page.waitForSelector(`#tabs .tab.unseen`);
  await page.click(`#tabs .tab:not(.front) .tab-open`);
  await waitForScreen(page, /^behind-42$/m);
  assert.equal(await page.evaluate(() => document.querySelector('#tabs .tab.unseen')), null);
  await run(page, 'echo typed-in-one');
  await waitForScreen(page, /^typed-in-one$/m);
  await page.keyboard.press('Shift+Tab'); // out of the terminal, for the tab list's keys
  await page.focus('#tabs [aria-selected=true]');
  await page.keyboard.press('ArrowRight');
  await waitForScreen(page, /^two\$ $/m);
  assert.equal(await frontId(page), two.id);
  assert.equal(await page.evaluate(() => window.loadedOnce), loaded, 'the page was reloaded');

  // Without the list, the terminal fills the window below the slim bar.
  await page.click('#toggle-list');
  await page.waitForFunction((front) => document.querySelector(`${front} .xterm-screen`).getBoundingClientRect().right > 1240, FRONT);
  const full = await terminalBox(page);
  assert.ok(full.left < 20 && full.top < 60 && full.right > 1240 && full.bottom > 760, `not full: ${JSON.stringify(full)}`);
  await page.screenshot({ path: `${ARTIFACTS}desktop-terminal.png` });
  await page.click('#toggle-list');

  // A reload reopens every tab, the front one in front.
  await page.reload();
  await waitForScreen(page, /^two\$ $/m);
  assert.deepEqual(await page.evaluate(() => window.monkeyproof.tabs()), { open: [one.id, two.id], front: two.id });

  // Removal: a finished session's row has Remove; its tab goes with it.
  await page.click(`tr[data-id="${done.id}"] td.task`);
  await page.waitForSelector(`${FRONT} .banner:not([hidden])`);
  await page.fill('#filter', 'done');
  await page.click(`tr[data-id="${done.id}"] button.remove`);
  await page.waitForSelector(`tr[data-id="${done.id}"]`, { state: 'detached' });
  assert.match((await api('GET', `/sessions/${done.id}`)).error, /not found/i);
  await page.waitForFunction((id) => !window.monkeyproof.tabs().open.includes(id), done.id);
  await page.fill('#filter', '');
  // The status filter, then "Remove N finished" for what is shown.
  await api('DELETE', `/sessions/${one.id}`);
  await page.selectOption('#filter-status', 'finished');
  await page.waitForSelector(`tr[data-id="${one.id}"] button.remove`);
  assert.ok(!(await page.isVisible(`tr[data-id="${two.id}"]`)), 'a running session passed the finished filter');
  await page.click('#remove-finished');
  await page.waitForSelector(`tr[data-id="${one.id}"]`, { state: 'detached' });
  assert.match((await api('GET', `/sessions/${one.id}`)).error, /not found/i);
  await page.selectOption('#filter-status', '');
  assert.ok(await page.isVisible(`tr[data-id="${two.id}"]`));
  assert.deepEqual(errors, []);
  await api('DELETE', `/sessions/${two.id}`);
  await context.close();
});

test('on a phone: the list fits and goes over the terminal, the key bar sends the right bytes, the keyboard keeps the cursor line in view', async () => {
  const session = await api('POST', '/sessions', { task: `python3 ${KEYLOG}`, labels: ['phone'] });
  const other = await api('POST', '/sessions', shell('other'));
  const context = await env.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const page = await context.newPage();
  const errors = errorsOf(page);
  await page.goto(`${env.base}/#token=${TOKEN}`);
  await page.waitForSelector(`tr[data-id="${session.id}"]`);
  // Nothing wider than the screen; Start and the row's actions are on it.
  const width = 390;
  // Nothing scrolls sideways: neither the page nor the list inside it.
  const fits = async () => {
    const wide = await page.evaluate(() =>
      [document.documentElement, document.getElementById('side')]
        .filter((el) => el.scrollWidth > el.clientWidth)
        .map((el) => `${el.id || el.tagName} is ${el.scrollWidth} px wide in ${el.clientWidth}`),
    );
    assert.deepEqual(wide, []);
  };
  await fits();
  const actions = page.locator(`#new-session button[type=submit], #session-table button:visible`);
  assert.ok((await actions.count()) >= 2);
  for (const action of await actions.all()) {
    const box = await action.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= width, `an action is off-screen: ${JSON.stringify(box)}`);
  }
  await page.screenshot({ path: `${ARTIFACTS}phone-list.png` });
  // One tap opens it; the list makes way.
  await page.tap(`tr[data-id="${session.id}"] td.task`);
  await waitForScreen(page, /^ready$/m);
  assert.ok(!(await page.isVisible('#side')), 'the list still covers the terminal');
  assert.ok(await onTop(page, `${FRONT} .xterm-screen`));
  // The key bar is shown, below the whole terminal.
  assert.ok(await page.isVisible('#keybar'));
  const barTop = () => page.evaluate(() => document.getElementById('keybar').getBoundingClientRect().top);
  assert.ok((await terminalBox(page)).bottom <= (await barTop()) + 2, 'the terminal runs under the key bar');
  // Each key reaches the program as the bytes a terminal sends.
  for (const [key, hex] of [['esc', '1b'], ['tab', '09'], ['up', '1b5b41'], ['ctrl-c', '03']]) {
    await page.tap(`#keybar button[data-key="${key}"]`);
    await waitForScreen(page, new RegExp(`^hex:${hex}$`, 'm'));
  }
  // Ctrl is sticky: it applies to the next key typed, once.
  await page.tap('#key-ctrl');
  assert.equal(await page.getAttribute('#key-ctrl', 'aria-pressed'), 'true');
  await page.keyboard.type('a');
  await waitForScreen(page, /^hex:01$/m);
  assert.equal(await page.getAttribute('#key-ctrl', 'aria-pressed'), 'false');
  await page.keyboard.type('b');
  await waitForScreen(page, /^hex:62$/m);
  // Drawn, not only in xterm's buffer: the DOM renderer's rows hold the text a person sees.
  await page.waitForFunction((front) => document.querySelector(`${front} .xterm-rows`)?.textContent.includes('hex:62'), FRONT);
  for (const button of await page.locator('#keybar button').all()) {
    const box = await button.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= width + 1, `key off-screen: ${JSON.stringify(box)}`);
  }
  await fits();
  assert.deepEqual(await unnamedControls(page), []);
  await page.screenshot({ path: `${ARTIFACTS}phone-terminal.png` });

  // The soft keyboard takes the bottom 340 px (the page is resized for it, as the viewport's
  // interactive-widget asks): the terminal refits and its cursor line stays above the key bar.
  const tall = await page.evaluate(() => window.monkeyproof.size());
  await page.setViewportSize({ width, height: 504 });
  await page.waitForFunction((rows) => window.monkeyproof.size().rows < rows, tall.rows);
  const cursorRow = await page.evaluate((front) => {
    const { cursorY } = window.monkeyproof.size();
    return document.querySelectorAll(`${front} .xterm-rows > div`)[cursorY].getBoundingClientRect().bottom;
  }, FRONT);
  assert.ok(cursorRow <= (await barTop()) + 1 && cursorRow > 0, `cursor line at ${cursorRow}, key bar at ${await barTop()}`);
  await page.setViewportSize({ width, height: 844 });

  // ☰ puts the list over the terminal; a tap on another row opens it in a second tab.
  await page.tap('#toggle-list');
  assert.ok(await onTop(page, `tr[data-id="${other.id}"] td.task`), 'the list is not over the terminal');
  await fits();
  await page.tap(`tr[data-id="${other.id}"] td.task`);
  await waitForScreen(page, /^other\$ $/m);
  assert.ok(!(await page.isVisible('#side')));
  assert.deepEqual(await page.evaluate(() => window.monkeyproof.tabs().open.length), 2);
  await page.tap(`#tabs .tab:not(.front) .tab-open`);
  await waitForScreen(page, /^hex:62$/m);
  await fits();
  assert.deepEqual(errors, []);
  await api('DELETE', `/sessions/${session.id}`);
  await api('DELETE', `/sessions/${other.id}`);
  await context.close();
});

test('opt-in notifications: an agent that starts waiting while its tab is behind', { skip: !existsSync(FULL_CHROMIUM) && `${FULL_CHROMIUM} missing (apt-get install chromium)` }, async () => {
  // The headless shell reports notifications as denied whatever is granted: the full browser.
  const browser = await launch(FULL_CHROMIUM);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(['notifications'], { origin: env.base });
  const page = await context.newPage();
  const errors = errorsOf(page);
  const work = await api('POST', '/sessions', shell('front'));
  await page.goto(`${env.base}/#token=${TOKEN}&session=${work.id}`);
  await waitForScreen(page, /^front\$ $/m);
  // Off until asked for.
  assert.equal(await page.getAttribute('#notify', 'aria-pressed'), 'false');
  const agent = await api('POST', '/sessions', { type: 'interactive', command: CLAUDE, task: 'please run it' });
  await page.waitForFunction((id) => document.querySelector(`tr[data-id="${id}"]`)?.textContent.includes('waiting'), agent.id, { timeout: 15000 });
  assert.deepEqual(await page.evaluate(() => window.monkeyproof.notifications()), []);
  await api('DELETE', `/sessions/${agent.id}`);

  // On: the next agent to wait, not in front, is announced, once.
  await page.click('#notify');
  assert.equal(await page.getAttribute('#notify', 'aria-pressed'), 'true');
  const second = await api('POST', '/sessions', { type: 'interactive', command: CLAUDE, task: 'please run it' });
  await page.waitForFunction(() => window.monkeyproof.notifications().length > 0, null, { timeout: 15000 });
  const [title] = await page.evaluate(() => window.monkeyproof.notifications());
  assert.match(title, /please run it is waiting for permission/);
  // The choice is kept across a reload; off again on a second click.
  await page.reload();
  await waitForScreen(page, /^front\$ $/m);
  assert.equal(await page.getAttribute('#notify', 'aria-pressed'), 'true');
  await page.click('#notify');
  assert.equal(await page.getAttribute('#notify', 'aria-pressed'), 'false');
  assert.deepEqual(errors, []);
  await api('DELETE', `/sessions/${second.id}`);
  await api('DELETE', `/sessions/${work.id}`);
  await context.close();
});
