//! Waiting for something to happen in a session: no output for a while, a pattern on the screen
//! or in the output, or the end of the program.
//!
//! A waiter is a task parked on the session's watch channel and one timer, so thousands of them
//! cost nothing while they wait; it wakes on output (coalesced) and at the idle deadline.

use std::time::{Duration, Instant};

use regex::Regex;

use super::screen::ScreenText;
use super::session::{Session, State};

/// After output, pattern waiters let more arrive for this long before matching again, so a
/// flood costs one match per interval rather than one per read.
const MATCH_COALESCE: Duration = Duration::from_millis(15);

/// What to wait for. Any condition that holds ends the wait.
#[derive(Debug, Clone)]
pub struct WaitFor {
    /// No output for this long.
    pub idle: Option<Duration>,
    /// This pattern, on the screen text, or on the output (escape sequences removed) from
    /// `since` when that is given.
    pub pattern: Option<Regex>,
    pub since: Option<u64>,
    /// The program's end.
    pub exit: bool,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Which condition ended a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fired {
    Idle,
    /// The pattern matched this text.
    Match(String),
    /// The program ended (also when only other conditions were asked: nothing else can change).
    Exit,
    Timeout,
}

/// How a wait ended, and the session as it was then.
#[derive(Debug, Clone)]
pub struct WaitOutcome {
    pub fired: Fired,
    /// Output offset at that moment.
    pub offset: u64,
    pub screen: ScreenText,
}

impl Session {
    /// Waits until one of `wait`'s conditions holds, or its timeout.
    pub async fn wait(&self, wait: &WaitFor) -> WaitOutcome {
        let mut changes = self.subscribe();
        let deadline = Instant::now() + wait.timeout;
        loop {
            changes.borrow_and_update();
            let idle_at = {
                let mut state = self.lock_state();
                let (fired, idle_at) = self.check(&mut state, wait);
                if let Some(fired) = fired {
                    return outcome(&mut state, fired);
                }
                if Instant::now() >= deadline {
                    return outcome(&mut state, Fired::Timeout);
                }
                idle_at
            };
            let wake = idle_at.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_ok() && wait.pattern.is_some() {
                        tokio::time::sleep(MATCH_COALESCE).await;
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Which condition holds now, and when the idle condition would hold if nothing is printed.
    fn check(&self, state: &mut State, wait: &WaitFor) -> (Option<Fired>, Option<Instant>) {
        if let Some(pattern) = &wait.pattern {
            let text = match wait.since {
                Some(since) => {
                    let from = since.max(state.log.ring_start());
                    let bytes = state.log.read_from(from, usize::MAX).unwrap_or_default();
                    super::plain::plain_text(&bytes)
                }
                None => state.screen.text().lines.join("\n"),
            };
            if let Some(m) = pattern.find(&text) {
                return (Some(Fired::Match(m.as_str().to_owned())), None);
            }
        }
        if state.exit.is_some() {
            return (Some(Fired::Exit), None);
        }
        let Some(idle) = wait.idle else {
            return (None, None);
        };
        let quiet_for = self.quiet_for(state.last_output_at);
        if quiet_for >= idle {
            (Some(Fired::Idle), None)
        } else {
            (None, Some(Instant::now() + (idle - quiet_for)))
        }
    }
}

fn outcome(state: &mut State, fired: Fired) -> WaitOutcome {
    WaitOutcome {
        fired,
        offset: state.log.total(),
        screen: state.screen.text(),
    }
}
