// Unit tests of what the page shows of a session and of its event-feed parser (no browser).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentText, age, duration, matches, parseSse, statusText, tabLabel, taskText } from '../src/model.js';

const session = (over = {}) => ({
  id: 'abc123', task: 'npm test', taskPreview: 'npm test', title: '', type: 'exec', status: 'running',
  activity: 'idle', idleMs: 0, bells: 0, owner: null, labels: [], agent: null, createdAt: '2026-01-01T00:00:00.000Z',
  ...over,
});

test('durations and ages read as people say them', () => {
  assert.equal(duration(4_400), '4s');
  assert.equal(duration(125_000), '2m');
  assert.equal(duration(3_780_000), '1h3m');
  assert.equal(age('2026-01-01T00:00:00.000Z', Date.parse('2026-01-01T00:00:42.000Z')), '42s');
});

test('status says activity and bells; agent says what it waits for', () => {
  assert.equal(statusText(session({ activity: 'busy', bells: 2 })), 'running · busy 🔔2');
  assert.equal(statusText(session({ idleMs: 300_000 })), 'running · idle 5m');
  assert.equal(statusText(session({ status: 'exited' })), 'exited');
  assert.equal(agentText({ state: 'waiting', waitingFor: 'permission' }), 'waiting: permission');
  assert.equal(agentText({ state: 'working' }), 'working');
  assert.equal(agentText(null), '');
});

test('the filter takes every word, anywhere, and a status', () => {
  const s = session({ labels: ['alpha'], owner: 'ana', agent: { state: 'waiting', waitingFor: 'permission' } });
  assert.ok(matches(s, 'npm ALPHA', ''));
  assert.ok(matches(s, 'ana waiting', 'running'));
  assert.ok(!matches(s, 'npm beta', ''));
  assert.ok(!matches(s, '', 'finished'));
  assert.ok(matches(session({ status: 'killed' }), '', 'finished'));
});

test('tab labels prefer the name, then the title, and stay short; the task cell says all three', () => {
  assert.equal(tabLabel(session({ title: 'vim notes.md' })), 'vim notes.md');
  assert.equal(tabLabel(session({ name: 'docs', title: 'vim notes.md' })), 'docs');
  assert.equal(taskText(session({ name: 'docs', title: 'vim' })), 'docs: npm test — vim');
  assert.ok(matches(session({ name: 'Nightly' }), 'nightly', ''));
  assert.equal(tabLabel(session({ taskPreview: 'a'.repeat(40) }), 10), `${'a'.repeat(9)}…`);
});

test('SSE text splits into events, keeping the unfinished rest', () => {
  const { events, rest } = parseSse('id: 1\r\nevent: exit\r\ndata: {"session":"x","code":0}\r\n\r\n: keep-alive\n\nevent: agent\ndata: {"ses');
  assert.deepEqual(events, [{ type: 'exit', data: { session: 'x', code: 0 } }]);
  const more = parseSse(`${rest}sion":"y"}\n\n`);
  assert.deepEqual(more.events, [{ type: 'agent', data: { session: 'y' } }]);
  assert.equal(more.rest, '');
});
