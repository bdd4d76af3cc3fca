//! What `monkeyproof hook` tells the server: one report per hook call (Claude Code) or finished
//! turn (Codex), made from the agent's own JSON, bounded, and sent as one datagram (see
//! `channel.rs`).

use std::io::{Read, Seek, SeekFrom};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::state::AgentKind;

/// The longest text field kept (prompts, messages); longer ones are cut.
const MAX_FIELD: usize = 2 * 1024;
/// The longest last answer kept.
pub const MAX_ANSWER: usize = 16 * 1024;
/// How much of the end of a Claude transcript is read to find the last answer.
const TRANSCRIPT_TAIL: u64 = 1024 * 1024;

/// One report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The session (`MONKEYPROOF_SESSION_ID`) and its secret (`MONKEYPROOF_HOOK_SECRET`).
    pub session: String,
    pub secret: String,
    pub kind: AgentKind,
    /// Claude Code's `hook_event_name`, or Codex's notification `type`.
    pub event: String,
    pub tool: Option<String>,
    pub message: Option<String>,
    pub notification_type: Option<String>,
    pub last_answer: Option<String>,
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key)?.as_str().map(|s| cut(s, MAX_FIELD))
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Report {
    /// The report of a Claude Code hook call, from the JSON on its stdin.
    pub fn from_claude(session: String, secret: String, input: &Value) -> Self {
        let event = text(input, "hook_event_name").unwrap_or_default();
        let tool_input = input.get("tool_input");
        let message = match event.as_str() {
            "UserPromptSubmit" => text(input, "prompt"),
            "Notification" => text(input, "message"),
            "PreToolUse" | "PermissionRequest" => tool_input.and_then(describe_tool_input),
            _ => None,
        };
        let last_answer = (event == "Stop")
            .then(|| text(input, "transcript_path"))
            .flatten()
            .and_then(|path| last_claude_answer(std::path::Path::new(&path)));
        Self {
            session,
            secret,
            kind: AgentKind::Claude,
            event,
            tool: text(input, "tool_name"),
            message,
            notification_type: text(input, "notification_type"),
            last_answer,
        }
    }

    /// The report of a Codex notification, from the JSON argument it passes.
    pub fn from_codex(session: String, secret: String, notification: &Value) -> Self {
        Self {
            session,
            secret,
            kind: AgentKind::Codex,
            event: text(notification, "type").unwrap_or_default(),
            tool: None,
            message: None,
            notification_type: None,
            last_answer: notification
                .get("last-assistant-message")
                .and_then(Value::as_str)
                .map(|s| cut(s, MAX_ANSWER)),
        }
    }
}

/// What a tool call is about, in one line: the question asked (AskUserQuestion), the command,
/// the file, or the description.
fn describe_tool_input(input: &Value) -> Option<String> {
    if let Some(question) = input
        .get("questions")
        .and_then(|q| q.get(0))
        .and_then(|q| q.get("question"))
        .and_then(Value::as_str)
    {
        return Some(cut(question, MAX_FIELD));
    }
    ["command", "file_path", "url", "description", "prompt"]
        .iter()
        .find_map(|key| text(input, key))
}

/// The text of the last assistant message in a Claude Code transcript (JSON lines), read from
/// its end.
pub fn last_claude_answer(path: &std::path::Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let from = len.saturating_sub(TRANSCRIPT_TAIL);
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = Vec::new();
    file.take(TRANSCRIPT_TAIL).read_to_end(&mut tail).ok()?;
    let tail = String::from_utf8_lossy(&tail);
    tail.lines().rev().find_map(|line| {
        let entry: Value = serde_json::from_str(line).ok()?;
        if entry.get("type")?.as_str()? != "assistant" {
            return None;
        }
        let content = entry.get("message")?.get("content")?;
        let text = match content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text")?.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => return None,
        };
        (!text.is_empty()).then(|| cut(&text, MAX_ANSWER))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claude_hook_input_becomes_a_bounded_report() {
        let input = json!({
            "session_id": "abc", "hook_event_name": "PermissionRequest", "cwd": "/tmp",
            "tool_name": "Bash", "tool_input": {"command": "rm -rf build", "description": "clean"},
        });
        let report = Report::from_claude("s".into(), "k".into(), &input);
        assert_eq!(report.event, "PermissionRequest");
        assert_eq!(report.tool.as_deref(), Some("Bash"));
        assert_eq!(report.message.as_deref(), Some("rm -rf build"));
        let long = json!({"hook_event_name": "UserPromptSubmit", "prompt": "é".repeat(5000)});
        let report = Report::from_claude("s".into(), "k".into(), &long);
        assert!(report.message.unwrap().len() <= MAX_FIELD + "…".len());
    }

    #[test]
    fn the_last_answer_is_the_last_assistant_text_in_the_transcript() {
        let path = std::env::temp_dir().join(format!("mp-transcript-{}.jsonl", std::process::id()));
        let lines = [
            json!({"type": "user", "message": {"role": "user", "content": "hi"}}),
            json!({"type": "assistant", "message": {"content": [{"type": "text", "text": "first"}]}}),
            json!({"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash"}, {"type": "text", "text": "All done."}]}}),
            json!({"type": "system", "content": "x"}),
        ];
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        std::fs::write(&path, text.join("\n")).unwrap();
        assert_eq!(last_claude_answer(&path).as_deref(), Some("All done."));
        std::fs::remove_file(&path).unwrap();
    }
}
