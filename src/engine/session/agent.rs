//! The session's agent, when it runs one (see `crate::agent`): its tracker, fed by the agent's
//! reports, by the screen at each pause of output and by the exit; every change is published
//! at once, in order, as an `agent` event (and wakes waiters).

use super::super::events::EventKind;
use super::super::keys::parse_key;
use super::{InputError, Session, lock};
use crate::agent::report::Report;
use crate::agent::{Agent, Tracker};

/// Why a permission prompt could not be answered.
#[derive(Debug)]
pub enum AnswerError {
    /// The agent is not waiting for a permission (or the session runs no agent).
    NotWaiting,
    Input(InputError),
}

impl Session {
    /// The agent's state, if the session runs one.
    pub fn agent(&self) -> Option<Agent> {
        self.agent
            .as_ref()
            .map(|tracker| lock(tracker).agent().clone())
    }

    /// Takes a report from the agent's hook; `false` if the secret is not this session's (or
    /// it runs no agent).
    pub fn agent_report(&self, report: &Report) -> bool {
        self.update_agent(|tracker| {
            if !tracker.is_secret(&report.secret) {
                return Err(());
            }
            Ok(tracker.on_report(report))
        })
        .is_ok()
    }

    /// Reads the agent's state off the screen (at a pause of output).
    pub(super) fn agent_reads_screen(&self) {
        if self.agent.is_none() {
            return;
        }
        let text = self.lock_state().screen.text().lines.join("\n");
        let _ = self.update_agent(|tracker| Ok(tracker.on_screen(&text)));
    }

    /// The program ended.
    pub(super) fn agent_exited(&self) {
        let _ = self.update_agent(|tracker| Ok(tracker.on_exit()));
    }

    /// Answers the permission prompt the agent waits at with the keys its kind expects.
    pub async fn answer_permission(&self, approve: bool) -> Result<(), AnswerError> {
        let keys = self
            .agent
            .as_ref()
            .and_then(|tracker| lock(tracker).answer_keys(approve))
            .ok_or(AnswerError::NotWaiting)?;
        let keys: Vec<_> = keys.iter().filter_map(|k| parse_key(k).ok()).collect();
        self.send_keys(&keys).await.map_err(AnswerError::Input)?;
        let _ = self.update_agent(|tracker| Ok(tracker.on_answered()));
        Ok(())
    }

    /// Applies `change` to the tracker and publishes the new state, if any, before anyone can
    /// change it again.
    fn update_agent(
        &self,
        change: impl FnOnce(&mut Tracker) -> Result<Option<Agent>, ()>,
    ) -> Result<(), ()> {
        let tracker = self.agent.as_ref().ok_or(())?;
        let mut tracker = lock(tracker);
        let answer_before = tracker.agent().last_answer.clone();
        if let Some(agent) = change(&mut tracker)? {
            let new_answer = agent.last_answer != answer_before;
            self.emit(EventKind::Agent(agent));
            drop(tracker);
            self.publish();
            if new_answer && let Some(store) = &self.store {
                // The last answer outlives the server too. (Called off the async workers:
                // by the hooks' thread or at a pause of output.)
                self.save_record(store);
            }
        }
        Ok(())
    }
}
