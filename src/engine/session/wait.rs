//! Waiting for something to happen in a session: no output for a while, a pattern on the screen
//! or in the output, or the end of the program.
//!
//! A waiter is a task parked on the session's watch channel and one timer, so thousands of them
//! cost nothing while they wait; it wakes on output (coalesced) and at the idle deadline.
//!
//! Matching never runs under the session lock or on the async workers: the text is copied out
//! and matched on the blocking pool, one match at a time server-wide (`MATCHING`). Its cost is
//! bounded by the pattern's compiled size (`MAX_PATTERN_BYTES`) times the text matched (at most
//! the ring, or the screen): about 0.7 s per MB of non-ASCII text at the limit, the worst case
//! (Unicode word boundaries make the regex engine fall back to its slowest matcher). A wait
//! whose match was slow waits proportionally longer before matching again.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use tokio::sync::Semaphore;

use super::super::plain::plain_text;
use super::super::screen::ScreenText;
use super::{Session, State};

/// After output, pattern waiters let more arrive for this long before matching again, so a
/// flood costs one match per interval rather than one per read.
const MATCH_COALESCE: Duration = Duration::from_millis(15);
/// After a match that took `t`, the next one waits at least this many times `t`, so one costly
/// wait uses a fraction of a core.
const SLOW_MATCH_BACKOFF: u32 = 4;
/// The largest compiled pattern accepted (regex's `size_limit`).
pub const MAX_PATTERN_BYTES: usize = 32 * 1024;

/// Matches running at once, server-wide: one, so that costly patterns leave the other core to
/// everything else.
static MATCHING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(1));

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
    /// The agent reaching one of these states.
    pub agent: Vec<crate::agent::AgentState>,
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
    /// The agent reached one of the states asked for.
    Agent,
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
        let mut match_took = Duration::ZERO;
        loop {
            changes.borrow_and_update();
            if let Some(pattern) = &wait.pattern {
                let started = Instant::now();
                let found = self.find(pattern, wait.since).await;
                match_took = started.elapsed();
                if let Some(text) = found {
                    return outcome(&mut self.lock_state(), Fired::Match(text));
                }
            }
            let idle_at = {
                let mut state = self.lock_state();
                let (fired, idle_at) = self.check(&state, wait);
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
                        let pause = MATCH_COALESCE.max(match_took * SLOW_MATCH_BACKOFF);
                        tokio::time::sleep_until(deadline.min(Instant::now() + pause).into()).await;
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Whether the program ended or has been quiet long enough, and when the idle condition
    /// would hold if nothing is printed.
    fn check(&self, state: &State, wait: &WaitFor) -> (Option<Fired>, Option<Instant>) {
        if !wait.agent.is_empty()
            && let Some(agent) = &self.agent
            && wait.agent.contains(&super::lock(agent).agent().state)
        {
            return (Some(Fired::Agent), None);
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

    /// The text `pattern` matches on the screen, or in the output after `since`, if any.
    async fn find(&self, pattern: &Regex, since: Option<u64>) -> Option<String> {
        let text = match since {
            Some(since) => Text::Output(self.output_window(Some(since)).await.1),
            None => Text::Screen(self.lock_state().screen.text().lines),
        };
        let pattern = pattern.clone();
        let _turn = MATCHING.acquire().await.ok()?;
        tokio::task::spawn_blocking(move || {
            let text = match text {
                Text::Output(bytes) => plain_text(&bytes),
                Text::Screen(lines) => lines.join("\n"),
            };
            pattern.find(&text).map(|m| m.as_str().to_owned())
        })
        .await
        .ok()
        .flatten()
    }
}

/// What a pattern is matched on, copied out of the session.
enum Text {
    Output(Vec<u8>),
    Screen(Vec<String>),
}

fn outcome(state: &mut State, fired: Fired) -> WaitOutcome {
    WaitOutcome {
        fired,
        offset: state.log.total(),
        screen: state.screen.text(),
    }
}
