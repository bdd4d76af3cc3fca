//! One agent's state, from what its hooks (or notify program) report and what its screen shows.
//!
//! Hooks are exact and win, with two exceptions: a login or trust screen (which no hook
//! reports) wins while it is on screen, and Codex, which reports only finished turns, is
//! working again as soon as its screen says so. Without any report the screen rules decide;
//! before either says anything the agent is `starting`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::launch::AgentSpec;
use super::report::Report;
use super::rules::{Reading, Rules, StateRules};
use super::state::{Agent, AgentKind, AgentState, WaitingFor};

/// What outlives the server (in the session's record): enough to follow the agent again after
/// a restart — its hooks still hold the same secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRecord {
    pub kind: AgentKind,
    pub secret: String,
    pub states: Option<StateRules>,
    pub last_answer: Option<String>,
}

/// What a report or the screen says the agent does.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Doing {
    state: AgentState,
    waiting_for: Option<WaitingFor>,
    message: Option<String>,
    tool: Option<String>,
}

impl Doing {
    fn new(state: AgentState) -> Self {
        Self {
            state,
            waiting_for: None,
            message: None,
            tool: None,
        }
    }

    fn waiting(waiting_for: WaitingFor, message: Option<String>, tool: Option<String>) -> Self {
        Self {
            state: AgentState::Waiting,
            waiting_for: Some(waiting_for),
            message,
            tool,
        }
    }
}

impl From<&Reading> for Doing {
    fn from(reading: &Reading) -> Self {
        Self {
            state: reading.state,
            waiting_for: reading.waiting_for,
            message: reading.message.clone(),
            tool: None,
        }
    }
}

/// One agent session's state.
pub struct Tracker {
    spec: AgentSpec,
    rules: Rules,
    secret: String,
    /// The last report's reading, once any came.
    reported: Option<Doing>,
    /// What the screen showed at the last pause of output.
    screen: Option<Reading>,
    current: Agent,
}

impl Tracker {
    pub fn new(spec: AgentSpec, secret: String) -> Self {
        let kind = spec.kind;
        Self {
            rules: spec.rules(),
            spec,
            secret,
            reported: None,
            screen: None,
            current: Agent {
                kind,
                state: AgentState::Starting,
                waiting_for: None,
                message: None,
                tool: None,
                last_answer: None,
                since: SystemTime::now(),
            },
        }
    }

    pub fn agent(&self) -> &Agent {
        &self.current
    }

    /// What the session's record keeps.
    pub fn record(&self) -> AgentRecord {
        AgentRecord {
            kind: self.spec.kind,
            secret: self.secret.clone(),
            states: self.spec.states.clone(),
            last_answer: self.current.last_answer.clone(),
        }
    }

    /// The tracker of a session taken over from an earlier server: `starting` until its
    /// screen or its hooks say more, with the last answer it had.
    pub fn restore(record: AgentRecord) -> Self {
        let spec = AgentSpec {
            kind: record.kind,
            states: record.states,
        };
        let mut tracker = Self::new(spec, record.secret);
        tracker.current.last_answer = record.last_answer;
        tracker
    }

    /// The session's hook secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Whether `secret` is this session's (in constant time).
    pub fn is_secret(&self, secret: &str) -> bool {
        bool::from(self.secret.as_bytes().ct_eq(secret.as_bytes()))
    }

    /// Takes a report; the new state if it changed.
    pub fn on_report(&mut self, report: &Report) -> Option<Agent> {
        let tool = report.tool.clone();
        let message = report.message.clone();
        let doing = match (report.kind, report.event.as_str()) {
            (AgentKind::Claude, "SessionStart") => Doing::new(AgentState::Idle),
            (AgentKind::Claude, "UserPromptSubmit" | "PostToolUse") => {
                Doing::new(AgentState::Working)
            }
            (AgentKind::Claude, "PreToolUse") if tool.as_deref() == Some("AskUserQuestion") => {
                Doing::waiting(WaitingFor::Question, message, tool)
            }
            (AgentKind::Claude, "PreToolUse") => Doing {
                tool,
                ..Doing::new(AgentState::Working)
            },
            (AgentKind::Claude, "PermissionRequest") => {
                Doing::waiting(WaitingFor::Permission, message, tool)
            }
            (AgentKind::Claude, "Notification") => match report.notification_type.as_deref() {
                Some("permission_prompt") => Doing::waiting(
                    WaitingFor::Permission,
                    message,
                    self.reported.as_ref().and_then(|d| d.tool.clone()),
                ),
                Some("elicitation_dialog") => Doing::waiting(WaitingFor::Question, message, None),
                Some("idle_prompt") => Doing {
                    message,
                    ..Doing::new(AgentState::Idle)
                },
                _ => return None,
            },
            (AgentKind::Claude, "Stop") | (AgentKind::Codex, "agent-turn-complete") => {
                if report.last_answer.is_some() {
                    self.current.last_answer = report.last_answer.clone();
                }
                Doing::new(AgentState::Idle)
            }
            (AgentKind::Claude, "SessionEnd") => Doing::new(AgentState::Exited),
            _ => return None,
        };
        self.reported = Some(doing);
        self.settle(true)
    }

    /// Reads the screen's `text` (at a pause of output); the new state if it changed.
    pub fn on_screen(&mut self, text: &str) -> Option<Agent> {
        self.screen = self.rules.read(text);
        if self.current.kind == AgentKind::Codex
            && self
                .screen
                .as_ref()
                .is_some_and(|r| r.state == AgentState::Working)
        {
            // Codex reports finished turns only: its screen says when the next one starts.
            self.reported = None;
        }
        self.settle(false)
    }

    /// The program ended.
    pub fn on_exit(&mut self) -> Option<Agent> {
        self.reported = Some(Doing::new(AgentState::Exited));
        self.settle(false)
    }

    /// A waiting prompt was answered (see `answer_keys`): the agent works on — until its next
    /// report, or, for an agent that does not report, until the screen is read again.
    pub fn on_answered(&mut self) -> Option<Agent> {
        let working = Reading {
            state: AgentState::Working,
            waiting_for: None,
            message: None,
        };
        match &mut self.reported {
            Some(reported) => *reported = Doing::from(&working),
            None => self.screen = Some(working),
        }
        self.settle(false)
    }

    /// The keys that answer the permission prompt yes (`approve`) or no, if the agent waits
    /// for permission.
    pub fn answer_keys(&self, approve: bool) -> Option<Vec<String>> {
        if self.current.waiting_for != Some(WaitingFor::Permission) {
            return None;
        }
        let keys = if approve {
            &self.rules.approve
        } else {
            &self.rules.deny
        };
        (!keys.is_empty()).then(|| keys.clone())
    }

    /// Decides the state from the report and the screen; the new state if it changed
    /// (`answered`: a report with a new last answer counts as a change).
    fn settle(&mut self, reported: bool) -> Option<Agent> {
        if self.current.state == AgentState::Exited {
            return None;
        }
        let modal = self.screen.as_ref().filter(|r| {
            r.state == AgentState::Waiting
                && matches!(r.waiting_for, Some(WaitingFor::Login | WaitingFor::Trust))
        });
        let doing = match (modal, &self.reported, &self.screen) {
            (Some(screen), _, _) => Doing::from(screen),
            (None, Some(reported), _) => reported.clone(),
            (None, None, Some(screen)) => Doing::from(screen),
            (None, None, None) => return None,
        };
        let current = &self.current;
        let same = doing.state == current.state
            && doing.waiting_for == current.waiting_for
            && doing.message == current.message
            && doing.tool == current.tool;
        // A finished turn is news even when the agent was idle already.
        let new_answer = reported && doing.state == AgentState::Idle;
        if same && !new_answer {
            return None;
        }
        self.current = Agent {
            state: doing.state,
            waiting_for: doing.waiting_for,
            message: doing.message,
            tool: doing.tool,
            since: if doing.state == current.state && doing.waiting_for == current.waiting_for {
                current.since
            } else {
                SystemTime::now()
            },
            ..current.clone()
        };
        Some(self.current.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(kind: AgentKind, event: &str) -> Report {
        Report {
            session: "s".into(),
            secret: "k".into(),
            kind,
            event: event.into(),
            tool: None,
            message: None,
            notification_type: None,
            last_answer: None,
        }
    }

    #[test]
    fn claude_hooks_drive_the_state_and_login_screens_win() {
        let spec = AgentSpec {
            kind: AgentKind::Claude,
            states: None,
        };
        let mut t = Tracker::new(spec, "k".into());
        assert_eq!(t.agent().state, AgentState::Starting);
        t.on_screen("Select login method:");
        assert_eq!(t.agent().waiting_for, Some(WaitingFor::Login));
        t.on_report(&report(AgentKind::Claude, "SessionStart"));
        assert_eq!(
            t.agent().waiting_for,
            Some(WaitingFor::Login),
            "the screen still asks"
        );
        t.on_screen("> \n? for shortcuts");
        assert_eq!(t.agent().state, AgentState::Idle);
        t.on_report(&report(AgentKind::Claude, "UserPromptSubmit"));
        assert_eq!(t.agent().state, AgentState::Working);
        // The screen's idle prompt does not override a hook's working.
        t.on_screen("> \n? for shortcuts");
        assert_eq!(t.agent().state, AgentState::Working);
        let ask = Report {
            tool: Some("Bash".into()),
            message: Some("rm x".into()),
            ..report(AgentKind::Claude, "PermissionRequest")
        };
        let changed = t.on_report(&ask).unwrap();
        assert_eq!(changed.waiting_for, Some(WaitingFor::Permission));
        assert_eq!(changed.tool.as_deref(), Some("Bash"));
        assert_eq!(t.answer_keys(true), Some(vec!["1".to_owned()]));
        t.on_answered();
        assert_eq!(t.answer_keys(true), None);
        let stop = Report {
            last_answer: Some("done".into()),
            ..report(AgentKind::Claude, "Stop")
        };
        assert_eq!(
            t.on_report(&stop).unwrap().last_answer.as_deref(),
            Some("done")
        );
        t.on_exit();
        assert_eq!(t.agent().state, AgentState::Exited);
        assert!(
            t.on_report(&report(AgentKind::Claude, "UserPromptSubmit"))
                .is_none()
        );
    }

    #[test]
    fn codex_works_again_when_its_screen_says_so() {
        let spec = AgentSpec {
            kind: AgentKind::Codex,
            states: None,
        };
        let mut t = Tracker::new(spec, "k".into());
        t.on_screen("Working (1s • esc to interrupt)");
        assert_eq!(t.agent().state, AgentState::Working);
        t.on_report(&report(AgentKind::Codex, "agent-turn-complete"));
        assert_eq!(t.agent().state, AgentState::Idle);
        t.on_screen("Working (1s • esc to interrupt)");
        assert_eq!(t.agent().state, AgentState::Working);
        assert!(t.is_secret("k") && !t.is_secret("kk"));
    }
}
