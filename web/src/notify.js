// Opt-in desktop notifications: when an agent starts waiting for a person (a permission prompt,
// a question) and that person is not looking at it. Off until asked for; the choice is kept
// in this browser.
const KEY = 'monkeyproof.notify';
const $ = (id) => document.getElementById(id);

export const notifier = {
  /** Titles of the notifications the browser showed, newest last (for the end-to-end test and
   *  the curious). */
  shown: [],
  /** Called with a session's id when a notification is clicked (set by the page). */
  onOpen: () => {},

  get supported() {
    return typeof Notification !== 'undefined';
  },

  get enabled() {
    return this.supported && Notification.permission === 'granted' && localStorage.getItem(KEY) === '1';
  },

  /** Shows the button as it stands: on, off, or why it cannot be on. */
  render() {
    const button = $('notify');
    button.setAttribute('aria-pressed', String(this.enabled));
    if (!this.supported) {
      button.disabled = true;
      button.title = 'This browser cannot show notifications';
    } else if (Notification.permission === 'denied') {
      button.title = 'Notifications are blocked for this page in the browser’s site settings';
    } else {
      button.title = this.enabled ? 'Notifying when an agent starts waiting (click to stop)' : 'Notify me when an agent starts waiting';
    }
  },

  /** The button: asks the browser's permission the first time, then turns notifications on/off. */
  async toggle() {
    if (!this.supported) return;
    if (this.enabled) {
      localStorage.removeItem(KEY);
    } else {
      const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
      if (permission === 'granted') localStorage.setItem(KEY, '1');
    }
    this.render();
    return this.enabled;
  },

  /**
   * An agent's state changed (an `agent` event). Notifies when it starts waiting and its
   * session is not the one in front of a person looking at the page.
   */
  agentChanged(session, agent, { inFront, label }) {
    if (!this.enabled || agent?.state !== 'waiting') return;
    if (inFront && document.visibilityState === 'visible') return;
    const title = `${label} is waiting${agent.waitingFor ? ` for ${agent.waitingFor}` : ''}`;
    const notification = new Notification(title, { body: agent.message ?? '', tag: session });
    notification.onclick = () => {
      window.focus();
      this.onOpen(session);
      notification.close();
    };
    notification.onshow = () => this.shown.push(title);
  },
};
