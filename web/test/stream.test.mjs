// Unit tests of the page's protocol logic (no browser needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, OutputStream, subprotocols, tokenFromHash } from '../src/stream.js';

test('offsets count output frames but not redraws', () => {
  const s = new OutputStream();
  assert.equal(s.resumeQuery(), '?flow=1');
  assert.deepEqual(s.control({ type: 'hello', offset: 100, snapshot: true }), { reset: true });
  assert.deepEqual(s.bytes(5000), { redraw: true, end: 100 });
  assert.deepEqual(s.bytes(10), { redraw: false, end: 110 });
  assert.deepEqual(s.bytes(5), { redraw: false, end: 115 });
  assert.equal(s.resumeQuery(), '?flow=1&since=115');
});

test('resuming without snapshot counts from the first frame', () => {
  const s = new OutputStream();
  assert.equal(s.control({ type: 'hello', offset: 115, snapshot: false }), null);
  assert.deepEqual(s.bytes(3), { redraw: false, end: 118 });
});

test('a resync jumps to its offset and the next frame is a redraw', () => {
  const s = new OutputStream();
  s.control({ type: 'hello', offset: 0, snapshot: false });
  s.bytes(10);
  assert.deepEqual(s.control({ type: 'resync', missed: 10, offset: 9000 }), { reset: true });
  assert.deepEqual(s.bytes(777), { redraw: true, end: 9000 });
  assert.deepEqual(s.bytes(1), { redraw: false, end: 9001 });
  assert.equal(s.resumeQuery(), '?flow=1&since=9001');
});

test('acks are sent once per new consumed offset', () => {
  const s = new OutputStream();
  s.control({ type: 'hello', offset: 50, snapshot: false });
  const { end } = s.bytes(20);
  assert.deepEqual(s.consumed(end), { type: 'ack', offset: 70 });
  assert.equal(s.consumed(end), null);
  assert.equal(s.consumed(60), null);
});

test('exit, resize and errors are reported', () => {
  const s = new OutputStream();
  assert.deepEqual(s.control({ type: 'resize', cols: 10, rows: 5 }), { resize: { cols: 10, rows: 5 } });
  assert.deepEqual(s.control({ type: 'exit', code: 3 }).exit.code, 3);
  assert.equal(s.exited, true);
  assert.deepEqual(s.control({ type: 'error', error: 'no' }), { error: 'no' });
  assert.equal(s.control({ type: 'from-the-future' }), null);
});

test('backoff doubles up to its ceiling and resets', () => {
  const b = new Backoff(250, 5000, () => 1);
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next(), b.next()],
    [250, 500, 1000, 2000, 4000, 5000, 5000]);
  b.reset();
  assert.equal(b.next(), 250);
  const low = new Backoff(250, 5000, () => 0);
  assert.equal(low.next(), 125);
});

test('token from the fragment and as a subprotocol', () => {
  assert.equal(tokenFromHash('#token=abc_DEF-123'), 'abc_DEF-123');
  assert.equal(tokenFromHash('#other=1'), null);
  assert.deepEqual(subprotocols('abc'), ['monkeyproof.tty.v1', 'monkeyproof.token.abc']);
  assert.equal(subprotocols('has space'), null);
  assert.equal(subprotocols('a,b'), null);
});
