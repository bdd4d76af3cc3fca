//! Webhook notices (see `agent::webhook`) from the engine's event feed: when an agent starts
//! waiting or goes idle, and when any session exits. The JSON form is `{"event": SessionEvent,
//! "session": SessionInfo}`, as `/events` and `GET /sessions/:id` show them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::convert;
use crate::agent::webhook::{Notice, Webhooks};
use crate::agent::{Agent, AgentState, WaitingFor};
use crate::engine::{Engine, Event, EventKind, Session};

/// Characters of a task or an answer shown in a notice's text.
const SHOWN_CHARS: usize = 200;

/// Follows the feed and notifies `webhooks`, until the returned task is aborted.
pub fn start(
    engine: Arc<Engine>,
    webhooks: Webhooks,
    busy_window: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = engine.events.subscribe();
        let mut after = engine.events.latest_id();
        loop {
            let (events, next) = match engine.events.after(after, None, usize::MAX) {
                Ok(found) => found,
                Err(missed) => {
                    tracing::warn!("webhooks fell behind the event feed; some notices skipped");
                    after = missed.oldest.saturating_sub(1);
                    continue;
                }
            };
            after = next;
            for event in &events {
                if let Some(session) = engine.get(&event.session)
                    && let Some(notice) = notice(&engine, &session, event, busy_window)
                {
                    webhooks.notify(&notice);
                }
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
}

/// The notice `event` deserves, if any.
fn notice(
    engine: &Engine,
    session: &Session,
    event: &Event,
    busy_window: Duration,
) -> Option<Notice> {
    let (text, urgent) = match &event.kind {
        EventKind::Agent(agent) if agent.state == AgentState::Waiting => {
            (waiting_text(agent), true)
        }
        EventKind::Agent(agent) if agent.state == AgentState::Idle => {
            let answer = agent.last_answer.as_deref().unwrap_or("its turn is done");
            (
                format!("{:?} is idle: {}", agent.kind, shown(answer)),
                false,
            )
        }
        EventKind::Exit {
            code,
            signal,
            reason,
            ..
        } => {
            let how = match (code, signal) {
                _ if reason.is_some() => "ran out of memory (over its memoryMax)".into(),
                (_, Some(signal)) => format!("was killed by {signal}"),
                (Some(code), None) => format!("exited with code {code}"),
                (None, None) => "ended".into(),
            };
            (format!("the session {how}"), false)
        }
        _ => return None,
    };
    let info = convert::session_info(session, busy_window);
    Some(Notice {
        json: json!({
            "event": convert::event(engine, event, false),
            "session": info,
        }),
        title: format!("monkeyproof: {}", shown(&session.task)),
        text,
        urgent,
    })
}

fn waiting_text(agent: &Agent) -> String {
    let what = match agent.waiting_for {
        Some(WaitingFor::Permission) => "permission",
        Some(WaitingFor::Question) => "an answer",
        Some(WaitingFor::Login) => "a sign-in",
        Some(WaitingFor::Trust) => "trust in its folder",
        None => "you",
    };
    let detail = [agent.tool.as_deref(), agent.message.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    format!("{:?} is waiting for {what}. {}", agent.kind, shown(&detail))
        .trim_end()
        .to_owned()
}

/// `text` on one line, cut to `SHOWN_CHARS`.
fn shown(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}
