// What the page shows of a session, and the event feed's wire format: pure functions, no DOM,
// unit-tested with node --test.

/** An agent's state in a few words: "working", "waiting: permission", "idle". */
export function agentText(agent) {
  if (!agent) return '';
  return agent.waitingFor ? `${agent.state}: ${agent.waitingFor}` : agent.state;
}

/** What the list's task cell says: the name (if any), the task, and the title the program set. */
export function taskText(s) {
  const task = s.title ? `${s.taskPreview} — ${s.title}` : s.taskPreview;
  return s.name ? `${s.name}: ${task}` : task;
}

/** A duration in ms as people say it: "42s", "5m", "2h3m". */
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** How long ago an ISO time was, as `duration` says it. */
export function age(iso, now = Date.now()) {
  return duration(now - Date.parse(iso));
}

/** A session's status with its activity and bells: "running · busy", "running · idle 5m 🔔2",
 *  "exited". */
export function statusText(s) {
  let text = s.status;
  if (s.status === 'running') text += s.activity === 'busy' ? ' · busy' : ` · idle ${duration(s.idleMs ?? 0)}`;
  if (s.bells) text += ` 🔔${s.bells}`;
  return text;
}

export const finished = (s) => s.status !== 'running';

/** Whether session `s` passes the filter: `status` ('', 'running' or 'finished') and every word
 *  of `text` found in its id, name, task, title, type, status, agent, owner or labels. */
export function matches(s, text, status) {
  if (status === 'running' && finished(s)) return false;
  if (status === 'finished' && !finished(s)) return false;
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  const haystack = [s.id, s.name ?? '', s.task, s.title ?? '', s.type, s.status, agentText(s.agent), s.owner ?? '', ...s.labels]
    .join(' ')
    .toLowerCase();
  return words.every((w) => haystack.includes(w));
}

/** A tab's label: the session's name, else its title, else the task's first words; at most
 *  `max` characters. */
export function tabLabel(s, max = 24) {
  const text = (s.name || s.title || s.taskPreview || s.task || s.id).replace(/\s+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * Splits Server-Sent Events text: the complete events in `buffer` (each `{type, data}`, data
 * parsed as JSON when it is) and the unfinished `rest`.
 */
export function parseSse(buffer) {
  const events = [];
  const text = buffer.replaceAll('\r\n', '\n');
  let start = 0;
  let end;
  while ((end = text.indexOf('\n\n', start)) >= 0) {
    const block = text.slice(start, end);
    start = end + 2;
    let type = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) continue;
    let parsed = data.join('\n');
    try {
      parsed = JSON.parse(parsed);
    } catch {
      // Not JSON: kept as text.
    }
    events.push({ type, data: parsed });
  }
  return { events, rest: text.slice(start) };
}
