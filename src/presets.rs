//! Agent presets and the rule that turns a session request into the program to run.
//!
//! The built-in presets are `presets.toml` at the repository root, embedded at build time; a file
//! given in config replaces them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::agent::rules::{Rules, StateRules};
use crate::engine::SessionKind;

/// The presets file compiled into the binary.
pub const BUILTIN_PRESETS: &str = include_str!("../presets.toml");

/// The preset a print session uses when it names neither preset nor command.
pub const DEFAULT_PRINT_PRESET: &str = "claude";
/// The preset an interactive session uses when it names neither preset nor command.
pub const DEFAULT_INTERACTIVE_PRESET: &str = "claude-interactive";

/// One agent preset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    #[serde(rename = "type")]
    pub kind: SessionKind,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// How the task reaches the program (interactive presets): `argument` (default) or `typed`.
    #[serde(default, rename = "taskDelivery")]
    pub task_delivery: TaskDelivery,
    /// Screen rules that tell the agent's state (`[presets.NAME.states]`, see `agent::rules`).
    pub states: Option<StateRules>,
}

/// How a session's task reaches its program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskDelivery {
    /// As the last argument.
    #[default]
    Argument,
    /// Typed in once the program is idle after start: pasted (bracketed when the program asks
    /// for it), then Enter.
    Typed,
}

/// What to run, and how the task gets there.
#[derive(Debug, Clone)]
pub struct Launch {
    pub argv: Vec<String>,
    pub delivery: TaskDelivery,
    /// The preset's screen rules, if it declares any.
    pub states: Option<StateRules>,
}

impl Preset {
    fn parts(&self) -> (String, Vec<String>, TaskDelivery) {
        (self.command.clone(), self.args.clone(), self.task_delivery)
    }

    fn rules(&self) -> Result<Option<Rules>, String> {
        self.states.as_ref().map(Rules::from_preset).transpose()
    }
}

/// All presets, by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presets {
    pub presets: BTreeMap<String, Preset>,
}

/// What a request says about the program to run.
#[derive(Debug, Clone, Default)]
pub struct LaunchRequest<'a> {
    pub task: &'a str,
    pub command: Option<&'a str>,
    pub args: &'a [String],
    pub preset: Option<&'a str>,
    pub max_turns: Option<u32>,
}

impl Presets {
    /// Parses a presets file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let presets: Presets = toml::from_str(text).map_err(|e| e.to_string())?;
        if let Some((name, _)) = presets
            .presets
            .iter()
            .find(|(_, p)| p.kind == SessionKind::Exec || p.command.is_empty())
        {
            return Err(format!(
                "preset {name}: type must be \"print\" or \"interactive\" and command non-empty"
            ));
        }
        if let Some((name, _)) = presets.presets.iter().find(|(_, p)| {
            p.task_delivery == TaskDelivery::Typed && p.kind != SessionKind::Interactive
        }) {
            return Err(format!(
                "preset {name}: taskDelivery \"typed\" is for interactive presets"
            ));
        }
        for (name, preset) in &presets.presets {
            preset
                .rules()
                .map_err(|e| format!("preset {name}: states: {e}"))?;
        }
        Ok(presets)
    }

    /// The presets from `path`, or the built-in ones.
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        match path {
            None => Self::parse(BUILTIN_PRESETS),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read presets file {}: {e}", path.display()))?;
                Self::parse(&text).map_err(|e| format!("presets file {}: {e}", path.display()))
            }
        }
    }

    /// What to run for a session of `kind`; `Err` is a message for a 400.
    pub fn launch(&self, kind: SessionKind, req: &LaunchRequest) -> Result<Launch, String> {
        let argument = |argv| Launch {
            argv,
            delivery: TaskDelivery::Argument,
            states: None,
        };
        let mut states = None;
        let (program, mut args, delivery) = match (kind, req.preset, req.command) {
            (SessionKind::Exec, Some(_), _) => {
                return Err(
                    "preset is only valid for type \"print\" or \"interactive\"; omit \
                            preset for exec sessions"
                        .into(),
                );
            }
            (SessionKind::Exec, None, None) => {
                return Ok(argument(vec![
                    "/bin/sh".into(),
                    "-lc".into(),
                    req.task.into(),
                ]));
            }
            (_, Some(name), _) => {
                let preset = self.get(name)?;
                if preset.kind != kind {
                    return Err(format!(
                        "preset {name:?} is for type \"{}\", not \"{}\"",
                        kind_name(preset.kind),
                        kind_name(kind)
                    ));
                }
                states = preset.states.clone();
                preset.parts()
            }
            (_, None, Some(command)) => (
                command.to_owned(),
                req.args.to_vec(),
                TaskDelivery::Argument,
            ),
            (SessionKind::Print, None, None) => self.get(DEFAULT_PRINT_PRESET)?.parts(),
            (SessionKind::Interactive, None, None) => self.get(DEFAULT_INTERACTIVE_PRESET)?.parts(),
        };
        if kind != SessionKind::Exec
            && let Some(turns) = req.max_turns
            && Path::new(&program)
                .file_name()
                .is_some_and(|n| n == "claude")
        {
            args.extend(["--max-turns".to_owned(), turns.to_string()]);
        }
        let mut argv = vec![program];
        argv.append(&mut args);
        if delivery == TaskDelivery::Argument {
            argv.push(req.task.to_owned());
        }
        Ok(Launch {
            argv,
            delivery,
            states,
        })
    }

    fn get(&self, name: &str) -> Result<&Preset, String> {
        self.presets.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.presets.keys().map(String::as_str).collect();
            format!(
                "Unknown preset \"{name}\". Known presets: {}",
                known.join(", ")
            )
        })
    }
}

/// The wire name of a session type.
pub fn kind_name(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Exec => "exec",
        SessionKind::Print => "print",
        SessionKind::Interactive => "interactive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(kind: SessionKind, req: LaunchRequest) -> Result<Vec<String>, String> {
        Presets::parse(BUILTIN_PRESETS)
            .unwrap()
            .launch(kind, &req)
            .map(|launch| launch.argv)
    }

    #[test]
    fn builtin_presets_build_the_documented_commands() {
        let task = "fix it";
        let req = |preset| LaunchRequest {
            task,
            preset,
            ..Default::default()
        };
        assert_eq!(
            argv(SessionKind::Print, req(None)).unwrap(),
            [
                "claude",
                "--print",
                "--permission-mode",
                "bypassPermissions",
                task
            ]
        );
        assert_eq!(
            argv(SessionKind::Print, req(Some("codex-auto"))).unwrap(),
            ["codex", "exec", "--full-auto", task]
        );
        assert_eq!(
            argv(
                SessionKind::Interactive,
                req(Some("claude-interactive-opus"))
            )
            .unwrap(),
            [
                "claude",
                "--permission-mode",
                "bypassPermissions",
                "--model",
                "opus",
                task
            ]
        );
        let with_turns = LaunchRequest {
            max_turns: Some(3),
            preset: Some("claude-sonnet"),
            task,
            ..Default::default()
        };
        assert_eq!(
            argv(SessionKind::Print, with_turns).unwrap()[4..],
            ["--model", "sonnet", "--max-turns", "3", task]
        );
        let codex_turns = LaunchRequest {
            max_turns: Some(3),
            preset: Some("codex"),
            task,
            ..Default::default()
        };
        assert_eq!(
            argv(SessionKind::Print, codex_turns).unwrap(),
            ["codex", "exec", task]
        );
    }

    #[test]
    fn exec_runs_a_login_shell_or_the_given_command() {
        let args = vec!["-n".to_owned()];
        assert_eq!(
            argv(
                SessionKind::Exec,
                LaunchRequest {
                    task: "ls",
                    ..Default::default()
                }
            )
            .unwrap(),
            ["/bin/sh", "-lc", "ls"]
        );
        let with_command = LaunchRequest {
            task: "x",
            command: Some("echo"),
            args: &args,
            ..Default::default()
        };
        assert_eq!(
            argv(SessionKind::Exec, with_command).unwrap(),
            ["echo", "-n", "x"]
        );
    }

    #[test]
    fn refuses_wrong_or_unknown_presets() {
        let with = |preset| LaunchRequest {
            task: "t",
            preset: Some(preset),
            ..Default::default()
        };
        assert!(
            argv(SessionKind::Exec, with("claude"))
                .unwrap_err()
                .contains("only valid")
        );
        let unknown = argv(SessionKind::Print, with("nope")).unwrap_err();
        assert!(
            unknown.contains("nope") && unknown.contains("codex-auto"),
            "{unknown}"
        );
        assert!(argv(SessionKind::Print, with("claude-interactive")).is_err());
    }
}
