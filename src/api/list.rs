//! `GET /sessions`: every session's `SessionInfo`, fast at 10,000 sessions.
//!
//! A list that size is 5 MB of JSON, and most of its time went to reading each session's
//! fields from memory, a cache miss per field. So each session keeps the JSON of what never
//! changes (`SessionAbout`, made at its first listing), and only what it is doing now
//! (`SessionNow`) is written afresh; the work is shared out over the cores.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::convert::{session_about, session_now};
use super::error::ApiError;
use super::params;
use crate::engine::{Session, SessionStatus};
use crate::protocol::{ErrorBody, ListQuery, SessionAbout, SessionInfo, SessionNow};

#[utoipa::path(get, path = "/sessions", tag = "sessions", params(ListQuery), responses((status = 200, description = "Oldest first", body = Vec<SessionInfo>), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody)))]
pub async fn list_sessions(
    State(app): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some("running") => Some(SessionStatus::Running),
        Some("exited") => Some(SessionStatus::Exited),
        Some("killed") => Some(SessionStatus::Killed),
        Some(_) => {
            return Err(ApiError::bad_request(
                "status must be \"running\", \"exited\", or \"killed\"",
            ));
        }
    };
    let label = query.label.map(|l| params::label(&l));
    let for_list = app.clone();
    // Off the async workers: with 10,000 sessions, sorting them is milliseconds.
    let sessions: Vec<Arc<Session>> = tokio::task::spawn_blocking(move || {
        for_list
            .engine
            .list()
            .into_iter()
            .filter(|s| query.owner.is_none() || s.owner == query.owner)
            .filter(|s| label.as_ref().is_none_or(|l| s.labels.contains(l)))
            .collect()
    })
    .await
    .map_err(ApiError::internal)?;
    // More parts than cores, so that a core busy with something else holds up less of it.
    let threads = sessions
        .len()
        .div_ceil(LISTED_PER_THREAD)
        .clamp(1, PARTS_PER_CORE * cores());
    let per_part = sessions.len().div_ceil(threads).max(1);
    let busy_window = app.engine.config().busy_window;
    let serialised = sessions.chunks(per_part).map(|chunk| {
        let chunk = chunk.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut json = Vec::with_capacity(chunk.len() * LISTED_BYTES_PER_SESSION);
            for session in &chunk {
                let now = session_now(session, busy_window);
                if status.is_some_and(|st| now.status != st) {
                    continue;
                }
                if !json.is_empty() {
                    json.push(b',');
                }
                let about = session
                    .listed_once
                    .get_or_init(|| about_json(&session_about(session)));
                push_entry(&mut json, about, &now)?;
            }
            Ok::<_, serde_json::Error>(json)
        })
    });
    let mut parts = Vec::with_capacity(threads);
    for part in futures_util::future::join_all(serialised).await {
        parts.push(
            part.map_err(ApiError::internal)?
                .map_err(ApiError::internal)?,
        );
    }
    let json = HeaderValue::from_static("application/json");
    Ok(([(header::CONTENT_TYPE, json)], json_array(&parts)).into_response())
}

/// `about` as the start of a JSON object: its fields, without the closing brace.
fn about_json(about: &SessionAbout) -> Box<[u8]> {
    // A struct of strings, numbers and flags always serialises.
    let mut json = serde_json::to_vec(about).unwrap_or_else(|_| b"{}".to_vec());
    json.pop();
    json.into_boxed_slice()
}

/// Appends the entry of a session whose fixed fields are `about` (from `about_json`) and
/// which is doing `now`: one object, as `SessionInfo` serialises.
fn push_entry(json: &mut Vec<u8>, about: &[u8], now: &SessionNow) -> serde_json::Result<()> {
    json.extend_from_slice(about);
    let brace = json.len();
    serde_json::to_writer(&mut *json, now)?;
    // `now`'s opening brace becomes the comma between the two halves' fields.
    if about.len() > 1 {
        json[brace] = b',';
    } else {
        json.remove(brace);
    }
    Ok(())
}

/// The JSON array of the entries in `parts`, each part entries joined by commas (or empty).
fn json_array(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut array = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + parts.len() + 2);
    array.push(b'[');
    for part in parts.iter().filter(|p| !p.is_empty()) {
        if array.len() > 1 {
            array.push(b',');
        }
        array.extend_from_slice(part);
    }
    array.push(b']');
    array
}

/// Sessions listed per thread at least: fewer are not worth another one.
const LISTED_PER_THREAD: usize = 1000;

/// Parts of a long list per core.
const PARTS_PER_CORE: usize = 4;

/// The cores the list is shared out over.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// About what one session takes in the list's JSON (a short task; a long one grows the buffer).
const LISTED_BYTES_PER_SESSION: usize = 640;

#[cfg(test)]
mod tests {
    use super::{about_json, json_array, push_entry};
    use crate::engine::{SessionKind, SessionStatus};
    use crate::protocol::{Activity, SessionAbout, SessionInfo, SessionNow};

    #[test]
    fn a_list_made_in_parts_is_one_json_array() {
        let parts =
            |p: &[&str]| json_array(&p.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>());
        assert_eq!(parts(&[]), b"[]");
        assert_eq!(parts(&["", ""]), b"[]");
        assert_eq!(parts(&["1,2", "", "3"]), b"[1,2,3]");
        assert_eq!(parts(&["", "1"]), b"[1]");
    }

    #[test]
    fn an_entry_is_the_session_info_as_serde_writes_it() {
        let info = SessionInfo {
            about: SessionAbout {
                id: "a1\"b".into(),
                task: "echo ü\n".into(),
                task_preview: "echo ü\n".into(),
                cwd: "/tmp".into(),
                command: "bash -lc 'echo ü'".into(),
                kind: SessionKind::Exec,
                pid: 42,
                created_at: "2026-12-07T22:39:06.123Z".into(),
                name: Some("n".into()),
                owner: None,
                labels: vec!["x=y".into()],
                record_input: true,
            },
            now: SessionNow {
                status: SessionStatus::Exited,
                exit_code: Some(3),
                signal: None,
                exit_reason: None,
                ended_at: Some("2026-12-07T22:40:00.000Z".into()),
                output_lines: 1,
                output_bytes: 4,
                ws_clients: 0,
                cols: 80,
                rows: 24,
                last_output_at: None,
                idle_ms: 7,
                activity: Activity::Idle,
                title: "t".into(),
                bells: 0,
                task_delivered_at: None,
                agent: None,
            },
        };
        let mut json = b"[".to_vec();
        push_entry(&mut json, &about_json(&info.about), &info.now).unwrap();
        json.push(b']');
        let listed: Vec<SessionInfo> = serde_json::from_slice(&json).unwrap();
        assert_eq!(listed, std::slice::from_ref(&info));
        let as_value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(as_value[0], serde_json::to_value(&info).unwrap());
    }
}
