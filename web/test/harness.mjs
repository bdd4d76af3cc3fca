// What the real-browser tests share: the real server binary on an ephemeral port with its own
// data directory, Chromium driven by playwright-core, and helpers that look at the page as a
// person sees it.
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

export const TOKEN = 'e2e-token-0123456789abcdef';
const BIN = process.env.MONKEYPROOF_BIN ?? new URL('../../target/debug/monkeyproof', import.meta.url).pathname;
/** Debian's chromium-headless-shell: the browser of most tests. */
const HEADLESS_SHELL = process.env.CHROMIUM ?? '/usr/bin/chromium-headless-shell';
/** Debian's full chromium (headless): the headless shell refuses notifications outright. */
export const FULL_CHROMIUM = process.env.FULL_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = new URL('../test-artifacts/', import.meta.url).pathname;
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

/** The server and the browser of this test file; set before the tests run. */
export const env = { base: null, browser: null };
let server;
let dataDir;
const browsers = [];

before(async () => {
  assert.ok(existsSync(BIN), `server binary missing: ${BIN} (run cargo build first)`);
  assert.ok(existsSync(HEADLESS_SHELL), `browser missing: ${HEADLESS_SHELL} (apt-get install chromium-headless-shell)`);
  dataDir = mkdtempSync(join(tmpdir(), 'mp-e2e-'));
  server = spawn(BIN, [], {
    env: { ...process.env, PORT: '0', AGENT_WS_TOKEN: TOKEN, MONKEYPROOF_DATA_DIR: dataDir, KILL_GRACE_MS: '1000', MONKEYPROOF_ON_EXIT: 'kill' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  env.base = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: server.stdout });
    lines.on('line', (line) => {
      const m = line.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    server.on('exit', (code) => reject(new Error(`server exited: ${code}`)));
  });
  env.browser = await launch(HEADLESS_SHELL);
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  for (const browser of browsers) await browser.close();
  server?.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A browser, closed after the file's tests. */
export async function launch(executablePath) {
  const browser = await chromium.launch({ executablePath, args: ARGS });
  browsers.push(browser);
  return browser;
}

export async function api(method, path, body) {
  const res = await fetch(env.base + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}` },
    body: body && JSON.stringify(body),
  });
  return res.json();
}

/** Collects what a person would call an error on `page`: uncaught exceptions and console errors. */
export function errorsOf(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  return errors;
}

/** The terminal in front (the visible pane's). */
export const FRONT = '.pane:not([hidden])';

/** Waits until the terminal in front shows a screen matching `pattern`; returns the match. */
export async function waitForScreen(page, pattern, timeout = 15000) {
  const deadline = Date.now() + timeout;
  let text = '';
  while (Date.now() < deadline) {
    text = await page.evaluate(() => window.monkeyproof.screenText());
    const m = text.match(pattern);
    if (m) return m;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`screen never matched ${pattern}:\n${text}`);
}

export async function run(page, command) {
  await page.keyboard.type(command);
  await page.keyboard.press('Enter');
}

/** The session id in the address bar (`#session=`). */
export async function frontId(page) {
  return new URLSearchParams((await page.evaluate(() => location.hash)).slice(1)).get('session');
}

/** Whether the element at `selector` is what a person sees at its centre (nothing covers it). */
export async function onTop(page, selector) {
  const box = await page.locator(selector).first().boundingBox();
  if (!box) return false;
  return page.evaluate(
    ({ selector, x, y }) => !!document.elementFromPoint(x, y)?.closest(selector),
    { selector, x: box.x + box.width / 2, y: box.y + box.height / 2 },
  );
}

/** The terminal in front's drawn box. */
export function terminalBox(page) {
  return page.evaluate((front) => {
    const r = document.querySelector(`${front} .xterm-screen`).getBoundingClientRect();
    return { left: r.left, top: r.top, right: r.right, bottom: r.bottom, width: r.width, height: r.height };
  }, FRONT);
}
