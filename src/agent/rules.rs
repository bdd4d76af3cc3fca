//! Screen rules: what an agent is doing, read from its screen. Built in for Claude Code and
//! Codex (the fallback when their hooks or notify program are unavailable, and the only source
//! for their login and trust screens), and declared by presets for any other program
//! (`[presets.NAME.states]`). Every rule is a regular expression matched against the screen's
//! text (rows joined by newlines); a waiting rule beats a working one, which beats an idle one.

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::state::{AgentKind, AgentState, WaitingFor};

/// The largest compiled rule accepted (as for wait patterns).
const MAX_RULE_BYTES: usize = 32 * 1024;

/// One or several patterns, as a preset writes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Patterns {
    One(String),
    Many(Vec<String>),
}

/// `[presets.NAME.states]`: a preset's screen rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateRules {
    pub working: Option<Patterns>,
    pub waiting: Option<Patterns>,
    pub idle: Option<Patterns>,
    /// Keys (names as in `keys`) that answer a waiting prompt yes; with them, a waiting screen
    /// is a permission prompt.
    #[serde(default)]
    pub approve: Vec<String>,
    /// Keys that answer it no.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// What the rules read on a screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub state: AgentState,
    pub waiting_for: Option<WaitingFor>,
    /// The screen line that matched, for waiting states.
    pub message: Option<String>,
}

/// Compiled rules of one agent kind, and the keys that answer its permission prompts.
#[derive(Debug, Clone)]
pub struct Rules {
    waiting: Vec<(Option<WaitingFor>, Regex)>,
    working: Vec<Regex>,
    idle: Vec<Regex>,
    pub approve: Vec<String>,
    pub deny: Vec<String>,
}

fn compile(pattern: &str) -> Result<Regex, String> {
    compile_within(pattern, MAX_RULE_BYTES)
}

fn compile_within(pattern: &str, size_limit: usize) -> Result<Regex, String> {
    regex::RegexBuilder::new(pattern)
        .multi_line(true)
        .size_limit(size_limit)
        .build()
        .map_err(|e| format!("bad screen rule {pattern:?}: {e}"))
}

fn compile_all(patterns: &Option<Patterns>) -> Result<Vec<Regex>, String> {
    match patterns {
        None => Ok(Vec::new()),
        Some(Patterns::One(one)) => Ok(vec![compile(one)?]),
        Some(Patterns::Many(many)) => many.iter().map(|p| compile(p)).collect(),
    }
}

impl Rules {
    /// A preset's rules.
    pub fn from_preset(states: &StateRules) -> Result<Self, String> {
        for key in states.approve.iter().chain(&states.deny) {
            crate::engine::keys::parse_key(key).map_err(|e| format!("approve/deny: {e}"))?;
        }
        let waiting_for = (!states.approve.is_empty()).then_some(WaitingFor::Permission);
        Ok(Self {
            waiting: compile_all(&states.waiting)?
                .into_iter()
                .map(|re| (waiting_for, re))
                .collect(),
            working: compile_all(&states.working)?,
            idle: compile_all(&states.idle)?,
            approve: states.approve.clone(),
            deny: states.deny.clone(),
        })
    }

    /// The built-in rules of Claude Code or Codex (see the README's Agents section).
    pub fn builtin(kind: AgentKind) -> Self {
        let waiting: &[(WaitingFor, &str)];
        let (working, idle, approve, deny): (&str, &str, &[&str], &[&str]);
        match kind {
            AgentKind::Claude => {
                waiting = &[
                    (
                        WaitingFor::Trust,
                        r"(?i)do you trust the files in this folder|is this a project you created or one you trust",
                    ),
                    (
                        WaitingFor::Login,
                        r"(?i)select login method|please run /login|invalid api key",
                    ),
                    (
                        WaitingFor::Permission,
                        r"(?i)(do you want to|would you like to) [^\n]*\?(\n.*)*\n\W*1\. yes",
                    ),
                ];
                working = r"(?i)esc to interrupt";
                idle = r"(?i)\? for shortcuts";
                approve = &["1"];
                deny = &["Escape"];
            }
            AgentKind::Codex => {
                waiting = &[
                    (
                        WaitingFor::Trust,
                        r"(?i)do you trust the (files|contents) (in|of) this (folder|directory)|allow codex to work in this folder",
                    ),
                    (
                        WaitingFor::Login,
                        r"(?i)sign in with chatgpt|provide your own api key",
                    ),
                    (
                        WaitingFor::Permission,
                        r"(?i)would you like to (run the following command|make the following edits)\?|allow command\?",
                    ),
                ];
                working = r"(?i)esc to interrupt";
                idle = r"(?i)⏎ send";
                approve = &["y"];
                deny = &["n"];
            }
            AgentKind::Custom => {
                waiting = &[];
                (working, idle, approve, deny) = ("", "", &[], &[]);
            }
        }
        // Ours may be larger than a preset's (case-insensitive Unicode classes).
        let built = |p: &str| compile_within(p, 1 << 20).expect("built-in rules compile");
        let nonempty = |p: &str| (!p.is_empty()).then(|| built(p)).into_iter().collect();
        Self {
            waiting: waiting
                .iter()
                .map(|(why, p)| (Some(*why), built(p)))
                .collect(),
            working: nonempty(working),
            idle: nonempty(idle),
            approve: approve.iter().map(|k| (*k).to_owned()).collect(),
            deny: deny.iter().map(|k| (*k).to_owned()).collect(),
        }
    }

    /// What `screen` shows, if any rule matches.
    pub fn read(&self, screen: &str) -> Option<Reading> {
        for (waiting_for, rule) in &self.waiting {
            if let Some(found) = rule.find(screen) {
                return Some(Reading {
                    state: AgentState::Waiting,
                    waiting_for: *waiting_for,
                    message: Some(line_at(screen, found.start())),
                });
            }
        }
        let reading = |state| {
            Some(Reading {
                state,
                waiting_for: None,
                message: None,
            })
        };
        if self.working.iter().any(|rule| rule.is_match(screen)) {
            return reading(AgentState::Working);
        }
        if self.idle.iter().any(|rule| rule.is_match(screen)) {
            return reading(AgentState::Idle);
        }
        None
    }
}

/// The screen line that holds byte `at`, trimmed.
fn line_at(screen: &str, at: usize) -> String {
    let start = screen[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = screen[at..].find('\n').map_or(screen.len(), |i| at + i);
    screen[start..end].trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_screens_are_read_as_documented() {
        let rules = Rules::builtin(AgentKind::Claude);
        let state = |screen: &str| rules.read(screen).map(|r| (r.state, r.waiting_for));
        assert_eq!(
            state("✻ Thinking… (12s · esc to interrupt)"),
            Some((AgentState::Working, None))
        );
        assert_eq!(
            state("Bash command\n  rm -rf build\nDo you want to proceed?\n❯ 1. Yes\n  2. No"),
            Some((AgentState::Waiting, Some(WaitingFor::Permission)))
        );
        assert_eq!(
            state("Select login method:\n❯ 1. Claude account"),
            Some((AgentState::Waiting, Some(WaitingFor::Login)))
        );
        assert_eq!(
            state("Do you trust the files in this folder?"),
            Some((AgentState::Waiting, Some(WaitingFor::Trust)))
        );
        assert_eq!(
            state("> \n  ? for shortcuts"),
            Some((AgentState::Idle, None))
        );
        assert_eq!(state("$ ls"), None);
        let reading = rules.read("x\nDo you want to proceed?\n❯ 1. Yes").unwrap();
        assert_eq!(reading.message.as_deref(), Some("Do you want to proceed?"));
    }

    #[test]
    fn codex_screens_are_read_as_documented() {
        let rules = Rules::builtin(AgentKind::Codex);
        let state = |screen: &str| rules.read(screen).map(|r| (r.state, r.waiting_for));
        assert_eq!(
            state("• Working (3s • esc to interrupt)"),
            Some((AgentState::Working, None))
        );
        assert_eq!(
            state("Would you like to run the following command?\n$ make"),
            Some((AgentState::Waiting, Some(WaitingFor::Permission)))
        );
        assert_eq!(
            state("Sign in with ChatGPT"),
            Some((AgentState::Waiting, Some(WaitingFor::Login)))
        );
        assert_eq!(state("⏎ send   ⌃J newline"), Some((AgentState::Idle, None)));
    }

    #[test]
    fn preset_rules_compile_and_bad_ones_are_refused() {
        let states: StateRules = toml::from_str(
            "working = 'Running'\nwaiting = ['\\(y/n\\)', 'Continue\\?']\nidle = '^> $'\napprove = ['y', 'Enter']\ndeny = ['n']",
        )
        .unwrap();
        let rules = Rules::from_preset(&states).unwrap();
        assert_eq!(
            rules.read("Delete it? (y/n)").map(|r| r.waiting_for),
            Some(Some(WaitingFor::Permission))
        );
        assert_eq!(rules.read("x\n> ").map(|r| r.state), Some(AgentState::Idle));
        let bad: StateRules = toml::from_str("working = '('").unwrap();
        assert!(
            Rules::from_preset(&bad)
                .unwrap_err()
                .contains("bad screen rule")
        );
        let bad_key: StateRules = toml::from_str("approve = ['NoSuchKey']").unwrap();
        assert!(Rules::from_preset(&bad_key).is_err());
    }
}
