// The signed-in token and the server's REST API. A token the server refuses signs the page out
// (see `onRefused`).
import { tokenFromHash } from './stream.js';

const TOKEN_KEY = 'monkeyproof.token';

export const auth = {
  /** The token in use, or null when signed out. */
  token: null,
  /** Called when the server refuses the token (set by the page). */
  onRefused: () => {},
};

/** Takes a `#token=` from the address bar into this tab's storage (and out of the address bar
 *  and history); returns the token to use, if any. */
export function takeTokenFromUrl() {
  const fromHash = tokenFromHash(location.hash);
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    const params = new URLSearchParams(location.hash.slice(1));
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
  }
  auth.token = sessionStorage.getItem(TOKEN_KEY);
  return auth.token;
}

export function saveToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  auth.token = null;
}

/** A REST call; the JSON answer, or an Error with the server's message. */
export async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${auth.token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    auth.onRefused();
    throw new Error('unauthorized');
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(data.error || `HTTP ${res.status}`), { status: res.status });
  return data;
}
