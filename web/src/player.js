// Plays a session's recording (GET /sessions/:id/recording, asciicast v3) with asciinema-player.
// A bundle of its own, loaded by the page only when someone asks for a replay: the player (and
// the terminal emulator it runs as WebAssembly) is larger than the rest of the page.
import * as AsciinemaPlayer from 'asciinema-player';

/**
 * Creates a player for session `id` in `element`, at `speed`, from `startAt` seconds (playing at
 * once if given); returns asciinema-player's player object.
 */
export function playRecording(id, element, token, { speed = 1, startAt } = {}) {
  return AsciinemaPlayer.create(
    {
      url: `/sessions/${encodeURIComponent(id)}/recording`,
      fetchOpts: { headers: { authorization: `Bearer ${token}` } },
    },
    element,
    // Long pauses (an agent thinking) are shortened to 2 s; the player fits its box.
    { fit: 'both', idleTimeLimit: 2, controls: true, speed, startAt, autoPlay: startAt !== undefined },
  );
}
