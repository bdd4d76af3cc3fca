//! Making a session's program report its state: which agent it is (by program name, or by a
//! preset's screen rules), and the command line that makes it call `monkeyproof hook`.
//!
//! - Claude Code gets `--settings JSON` with one hook command per event this server follows.
//!   Claude merges `--settings` with the user's own settings files, hooks included, so theirs
//!   keep running; a `--settings` the request passed itself is merged with ours into one.
//! - Codex gets `-c notify=[...]` naming `monkeyproof hook codex`; a notify program the user
//!   configured (in `$CODEX_HOME/config.toml`, or `-c notify=` in the request) is run by the
//!   hook after it, as Codex would have.

use std::path::Path;

use serde_json::{Value, json};

use super::rules::{Rules, StateRules};
use super::state::AgentKind;

/// The Claude Code hook events followed (see `tracker.rs` for what each means).
const CLAUDE_EVENTS: [&str; 8] = [
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PermissionRequest",
    "Notification",
    "Stop",
    "SessionEnd",
];
/// Events whose hooks are chosen by a matcher (a tool name, or a notification type); an empty
/// matcher matches all.
const MATCHED_EVENTS: [&str; 4] = [
    "PreToolUse",
    "PostToolUse",
    "PermissionRequest",
    "Notification",
];
/// How long Claude Code lets a hook run (seconds); ours returns at once.
const HOOK_TIMEOUT_S: u64 = 5;

/// How a session's agent is followed: its kind, and the preset's screen rules if it declares
/// any (else the kind's built-in ones).
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub kind: AgentKind,
    pub states: Option<StateRules>,
}

impl AgentSpec {
    /// The screen rules it is read with.
    pub fn rules(&self) -> Rules {
        self.states
            .as_ref()
            .and_then(|states| Rules::from_preset(states).ok())
            .unwrap_or_else(|| Rules::builtin(self.kind))
    }
}

/// Recognises the agent `argv` runs and adds what makes it report; `states` is the screen
/// rules of the session's preset, if it declares any. `cwd` is where a relative `--settings` file is; `env`
/// is what the session sets over the server's environment (where the user's Codex
/// configuration is). `None`: not an agent.
pub fn prepare(
    argv: &mut Vec<String>,
    states: Option<StateRules>,
    cwd: &Path,
    env: &[(String, String)],
) -> Result<Option<AgentSpec>, String> {
    let program = argv
        .first()
        .and_then(|p| Path::new(p).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let kind = match program {
        "claude" => AgentKind::Claude,
        "codex" => AgentKind::Codex,
        _ => {
            return Ok(states.map(|states| AgentSpec {
                kind: AgentKind::Custom,
                states: Some(states),
            }));
        }
    };
    let hook = hook_program()?;
    match kind {
        AgentKind::Claude => add_claude_hooks(argv, &hook, cwd)?,
        _ => add_codex_notify(argv, &hook, env)?,
    }
    Ok(Some(AgentSpec { kind, states }))
}

/// This program, which is also the hook.
fn hook_program() -> Result<String, String> {
    std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("cannot find this program for the agent's hooks: {e}"))
}

/// The hooks settings for Claude Code, added to `settings`.
fn claude_settings(mut settings: Value, hook: &str) -> Result<Value, String> {
    let command = format!("{} hook claude", shell_words::quote(hook));
    let ours = json!({"type": "command", "command": command, "timeout": HOOK_TIMEOUT_S});
    if !settings.is_object() {
        return Err("--settings must be a JSON object".into());
    }
    let hooks = settings
        .as_object_mut()
        .expect("an object")
        .entry("hooks")
        .or_insert_with(|| json!({}));
    let hooks = hooks
        .as_object_mut()
        .ok_or("--settings: \"hooks\" must be an object")?;
    for event in CLAUDE_EVENTS {
        let group = if MATCHED_EVENTS.contains(&event) {
            json!({"matcher": "", "hooks": [ours]})
        } else {
            json!({"hooks": [ours]})
        };
        let groups = hooks.entry(event).or_insert_with(|| json!([]));
        groups
            .as_array_mut()
            .ok_or_else(|| format!("--settings: hooks.{event} must be an array"))?
            .push(group);
    }
    Ok(settings)
}

/// Gives Claude Code our hooks through `--settings`, merged with a `--settings` already there.
fn add_claude_hooks(argv: &mut Vec<String>, hook: &str, cwd: &Path) -> Result<(), String> {
    let given = argv
        .iter()
        .position(|a| a == "--settings" || a.starts_with("--settings="));
    let existing = match given {
        None => json!({}),
        Some(i) => {
            let value = match argv[i].strip_prefix("--settings=") {
                Some(value) => value.to_owned(),
                None => argv.get(i + 1).cloned().ok_or("--settings needs a value")?,
            };
            let text = if value.trim_start().starts_with('{') {
                value
            } else {
                std::fs::read_to_string(cwd.join(&value))
                    .map_err(|e| format!("cannot read --settings file {value}: {e}"))?
            };
            let parsed = serde_json::from_str(&text)
                .map_err(|e| format!("--settings is not valid JSON: {e}"))?;
            let width = if argv[i].starts_with("--settings=") {
                1
            } else {
                2
            };
            argv.drain(i..i + width);
            parsed
        }
    };
    let settings = claude_settings(existing, hook)?;
    argv.splice(1..1, ["--settings".to_owned(), settings.to_string()]);
    Ok(())
}

/// Gives Codex our notify program, running the user's after it.
fn add_codex_notify(
    argv: &mut Vec<String>,
    hook: &str,
    env: &[(String, String)],
) -> Result<(), String> {
    let given = argv
        .windows(2)
        .position(|w| (w[0] == "-c" || w[0] == "--config") && w[1].starts_with("notify="));
    let theirs: Option<Vec<String>> = match given {
        Some(i) => {
            let value = argv[i + 1]["notify=".len()..].to_owned();
            argv.drain(i..i + 2);
            Some(
                toml::from_str::<toml::Table>(&format!("notify = {value}"))
                    .ok()
                    .and_then(|t| t.get("notify")?.clone().try_into().ok())
                    .ok_or("-c notify= must be an array of strings")?,
            )
        }
        None => configured_codex_notify(env),
    };
    let mut notify = vec![hook.to_owned(), "hook".into(), "codex".into()];
    if let Some(theirs) = theirs.filter(|t| !t.is_empty()) {
        notify.push("--then".into());
        notify.extend(theirs);
    }
    // A TOML array of basic strings, which JSON's string syntax is.
    let value = serde_json::to_string(&notify).map_err(|e| e.to_string())?;
    argv.splice(1..1, ["-c".to_owned(), format!("notify={value}")]);
    Ok(())
}

/// The notify program in the user's Codex configuration, if any: `$CODEX_HOME/config.toml`, or
/// `~/.codex/config.toml`, as the session's environment has them.
fn configured_codex_notify(env: &[(String, String)]) -> Option<Vec<String>> {
    let var = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::ffi::OsString::from(v))
            .or_else(|| std::env::var_os(name))
    };
    let home = var("CODEX_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(Path::new(&var("HOME")?).join(".codex")))?;
    let text = std::fs::read_to_string(home.join("config.toml")).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table.get("notify")?.clone().try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(argv: &[&str]) -> (Vec<String>, Option<AgentKind>) {
        let mut argv: Vec<String> = argv.iter().map(|a| (*a).to_owned()).collect();
        let spec = prepare(&mut argv, None, Path::new("/"), &[]).unwrap();
        (argv, spec.map(|s| s.kind))
    }

    #[test]
    fn claude_gets_hooks_merged_with_its_own_settings() {
        let (argv, kind) = prepared(&[
            "claude",
            "--settings",
            r#"{"model":"opus","hooks":{"Stop":[{"hooks":[{"type":"command","command":"mine"}]}]}}"#,
            "task",
        ]);
        assert_eq!(kind, Some(AgentKind::Claude));
        assert_eq!(argv[1], "--settings");
        assert_eq!(argv[3], "task");
        assert_eq!(argv.iter().filter(|a| *a == "--settings").count(), 1);
        let settings: Value = serde_json::from_str(&argv[2]).unwrap();
        assert_eq!(settings["model"], "opus");
        let stop = settings["hooks"]["Stop"].as_array().unwrap();
        assert_eq!(stop.len(), 2);
        assert_eq!(stop[0]["hooks"][0]["command"], "mine");
        assert!(
            stop[1]["hooks"][0]["command"]
                .as_str()
                .unwrap()
                .ends_with(" hook claude")
        );
        for event in CLAUDE_EVENTS {
            assert!(settings["hooks"][event].is_array(), "{event}");
        }
        assert_eq!(settings["hooks"]["Notification"][0]["matcher"], "");
    }

    #[test]
    fn codex_gets_a_notify_program_that_runs_the_users_own() {
        let (argv, kind) = prepared(&[
            "codex",
            "-c",
            r#"notify=["notify-send","done"]"#,
            "exec",
            "t",
        ]);
        assert_eq!(kind, Some(AgentKind::Codex));
        assert_eq!(argv[1], "-c");
        let notify: Vec<String> =
            serde_json::from_str(argv[2].strip_prefix("notify=").unwrap()).unwrap();
        assert_eq!(notify[1..4], ["hook", "codex", "--then"]);
        assert_eq!(notify[4..], ["notify-send", "done"]);
        assert_eq!(argv[3..], ["exec", "t"]);
    }

    #[test]
    fn other_programs_are_agents_only_with_preset_rules() {
        assert_eq!(prepared(&["bash"]).1, None);
        let mut argv = vec!["aider".to_owned()];
        let states: StateRules = toml::from_str("idle = '^> $'").unwrap();
        let spec = prepare(&mut argv, Some(states), Path::new("/"), &[])
            .unwrap()
            .unwrap();
        assert_eq!((spec.kind, argv.len()), (AgentKind::Custom, 1));
    }
}
