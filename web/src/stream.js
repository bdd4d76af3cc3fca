// The client side of the raw WebSocket protocol that needs no browser: offsets, redraw frames,
// acknowledgements and reconnect backoff. Unit-tested with node --test.

/** WebSocket subprotocol of the raw protocol. */
export const RAW_SUBPROTOCOL = 'monkeyproof.tty.v1';
/** Prefix of the subprotocol entry that carries the token. */
export const TOKEN_SUBPROTOCOL_PREFIX = 'monkeyproof.token.';

/**
 * Tracks where a client is in a session's output, so that it can resume without gap or duplicate.
 *
 * Binary frames are output counted from `hello.offset`, except the one frame after a `hello` with
 * `snapshot: true` or after a `resync`, which is a screen redraw and is not counted.
 */
export class OutputStream {
  constructor() {
    /** Offset of the next output byte; null before the first hello. */
    this.offset = null;
    this.redrawNext = false;
    /** Highest offset acknowledged to the server. */
    this.acked = 0;
    this.exited = false;
  }

  /**
   * Takes a control message. Returns what the terminal must do:
   * `reset` (clear before the coming redraw), `resize`, `exit`, `error`, or null.
   */
  control(msg) {
    switch (msg.type) {
      case 'hello':
        this.offset = msg.offset;
        this.acked = msg.offset;
        this.redrawNext = msg.snapshot;
        return msg.snapshot ? { reset: true } : null;
      case 'resync':
        this.offset = msg.offset;
        this.acked = msg.offset;
        this.redrawNext = true;
        return { reset: true };
      case 'resize':
        return { resize: { cols: msg.cols, rows: msg.rows } };
      case 'exit':
        this.exited = true;
        return { exit: msg };
      case 'error':
        return { error: msg.error };
      default:
        return null;
    }
  }

  /**
   * Takes a binary frame of `length` bytes. Returns `{redraw, end}`: whether it is a redraw, and
   * the stream offset reached once it is written.
   */
  bytes(length) {
    if (this.redrawNext) {
      this.redrawNext = false;
      return { redraw: true, end: this.offset };
    }
    this.offset += length;
    return { redraw: false, end: this.offset };
  }

  /** The ack message to send once the terminal has consumed output up to `end`, or null. */
  consumed(end) {
    if (end <= this.acked) return null;
    this.acked = end;
    return { type: 'ack', offset: end };
  }

  /** The query string to connect with: flow control on, and where to resume. */
  resumeQuery() {
    return this.offset === null ? '?flow=1' : `?flow=1&since=${this.offset}`;
  }
}

/** Exponential reconnect delays with jitter: 250 ms doubling up to `max`. */
export class Backoff {
  constructor(base = 250, max = 5000, random = Math.random) {
    this.base = base;
    this.max = max;
    this.random = random;
    this.attempt = 0;
  }

  next() {
    const ceiling = Math.min(this.max, this.base * 2 ** this.attempt);
    this.attempt += 1;
    return Math.round(ceiling / 2 + (ceiling / 2) * this.random());
  }

  reset() {
    this.attempt = 0;
  }
}

/** Reads `token=` from a URL fragment such as `#token=abc&x=y`. */
export function tokenFromHash(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  return params.get('token');
}

/** The WebSocket subprotocol list carrying `token`, or null when the token cannot be one. */
export function subprotocols(token) {
  return /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(token)
    ? [RAW_SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX + token]
    : null;
}
