//! The REST routes: sessions, input, resize, transcripts, presets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::AppState;
use super::error::{ApiError, JsonBody};
use crate::engine::{
    EngineError, Fired, Session, SessionKind, SessionStatus, SpawnError, SpawnSpec, TermSize,
    WaitFor, parse_key,
};
use crate::presets::{LaunchRequest, TaskDelivery};
use crate::protocol::{
    Activity, Banner, CreateSessionRequest, Cursor, ErrorBody, Health, InputRequest, InputSent,
    Killed, ListQuery, PresetInfo, ResizeRequest, ScreenQuery, ScreenView, SessionDetail,
    SessionInfo, WaitRequest, WaitResult,
};

/// Characters of the task shown in `taskPreview`.
const TASK_PREVIEW_CHARS: usize = 500;
/// Longest label kept, in characters.
const MAX_LABEL_CHARS: usize = 64;

pub async fn banner(State(app): State<AppState>) -> Json<Banner> {
    Json(Banner {
        name: "monkeyproof".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        status: "operational".into(),
        sessions: app.engine.list().len(),
        running: app.engine.running_count(),
    })
}

#[utoipa::path(get, path = "/health", tag = "server", security(()), responses((status = 200, description = "Always", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { ok: true })
}

#[utoipa::path(get, path = "/presets", tag = "server", responses((status = 200, description = "Every preset", body = Vec<PresetInfo>), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody)))]
pub async fn presets(State(app): State<AppState>) -> Json<Vec<PresetInfo>> {
    Json(
        app.presets
            .presets
            .iter()
            .map(|(name, p)| PresetInfo {
                name: name.clone(),
                kind: p.kind,
                command: p.command.clone(),
                args: p.args.clone(),
                description: p.description.clone(),
            })
            .collect(),
    )
}

#[utoipa::path(post, path = "/sessions", tag = "sessions", request_body = CreateSessionRequest, responses((status = 201, description = "Started", body = SessionInfo), (status = 400, description = "Bad request or nothing to run", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 413, description = "Request body too large", body = ErrorBody), (status = 429, description = "MAX_SESSIONS running", body = ErrorBody)))]
pub async fn create_session(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<CreateSessionRequest>,
) -> Result<(StatusCode, Json<SessionInfo>), ApiError> {
    let task = req
        .task
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("task is required"))?;
    let kind = match req.kind.as_deref() {
        None | Some("exec") => SessionKind::Exec,
        Some("print") => SessionKind::Print,
        Some("interactive") => SessionKind::Interactive,
        Some(_) => {
            return Err(ApiError::bad_request(
                "type/mode must be \"exec\", \"print\", or \"interactive\"",
            ));
        }
    };
    let default_size = match kind {
        SessionKind::Interactive => (200, 50),
        SessionKind::Exec | SessionKind::Print => (80, 24),
    };
    let size = term_size(
        req.cols.unwrap_or(default_size.0),
        req.rows.unwrap_or(default_size.1),
    )?;
    let args = req.args.unwrap_or_default();
    let launch = app
        .presets
        .launch(
            kind,
            &LaunchRequest {
                task: &task,
                command: req.command.as_deref().filter(|c| !c.is_empty()),
                args: &args,
                preset: req.preset.as_deref(),
                max_turns: req.max_turns,
            },
        )
        .map_err(ApiError::bad_request)?;
    let env = req.env.unwrap_or_default();
    if let Some(key) = env
        .iter()
        .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
        .map(|(k, _)| k)
    {
        return Err(ApiError::bad_request(format!(
            "env: invalid variable {key:?}"
        )));
    }
    if launch.argv.iter().any(|a| a.contains('\0')) {
        return Err(ApiError::bad_request(
            "task, command and args must not contain NUL",
        ));
    }
    let spec = SpawnSpec {
        kind,
        task,
        argv: launch.argv,
        task_typed: launch.delivery == TaskDelivery::Typed,
        requested_by: client.to_string(),
        cwd: resolve_cwd(req.cwd.as_deref())?,
        env: env.into_iter().collect(),
        owner: req.owner.filter(|o| !o.is_empty()),
        labels: normalize_labels(req.labels.unwrap_or_default()),
        size,
    };
    let engine = app.engine.clone();
    let session = tokio::task::spawn_blocking(move || engine.spawn(spec))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|err| match err {
            EngineError::TooManySessions { max, running } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Max sessions reached ({max}). {running} running."),
            ),
            EngineError::Spawn(SpawnError::Invalid(msg)) => ApiError::bad_request(msg),
            EngineError::Spawn(SpawnError::Exhausted(msg)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg)
            }
            EngineError::Spawn(SpawnError::Internal(msg)) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, msg)
            }
        })?;
    if launch.delivery == TaskDelivery::Typed {
        let session = session.clone();
        tokio::spawn(async move { session.deliver_task_typed().await });
    }
    tracing::info!(
        session = %session.id, client = %client, pid = session.pid, owner = ?session.owner,
        command = %display_command(&session.argv), cwd = %session.cwd.display(),
        "audit: session started"
    );
    Ok((StatusCode::CREATED, Json(app.info(&session))))
}

#[utoipa::path(get, path = "/sessions", tag = "sessions", params(ListQuery), responses((status = 200, description = "Oldest first", body = Vec<SessionInfo>), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody)))]
pub async fn list_sessions(
    State(app): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
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
    let label = query.label.map(|l| normalize_label(&l));
    let infos = app
        .engine
        .list()
        .iter()
        .filter(|s| query.owner.is_none() || s.owner == query.owner)
        .filter(|s| label.as_ref().is_none_or(|l| s.labels.contains(l)))
        .map(|s| app.info(s))
        .filter(|info| status.is_none_or(|st| info.status == st))
        .collect();
    Ok(Json(infos))
}

#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "The session and its screen", body = SessionDetail), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn get_session(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let session = app.session(&id)?;
    let info = app.info(&session);
    let (screen, offset) = session.screen_text();
    let recent = session.recent_output_lines(app.output_buffer_lines);
    let (transcript, _) = session.transcript();
    Ok(Json(SessionDetail {
        info,
        recent_output: crate::engine::plain_text_tail(&recent, app.output_buffer_lines),
        transcript_path: transcript.display().to_string(),
        screen: screen_view(screen, Vec::new(), offset),
    }))
}

/// Rows of scrollback `GET /sessions/:id/screen` returns at most.
const MAX_SCROLLBACK_ROWS: usize = crate::engine::SCREEN_SCROLLBACK_ROWS;

/// `GET /sessions/:id/screen?format=text|ansi|json&scrollback=N`.
#[utoipa::path(get, path = "/sessions/{id}/screen", tag = "orchestration", params(("id" = String, Path, description = "Session id"), ScreenQuery), responses((status = 200, description = "The screen: text or ANSI (text/plain, header x-output-offset), or JSON", content((String = "text/plain"), (ScreenView = "application/json"))), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn screen(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<ScreenQuery>,
) -> Result<Response, ApiError> {
    let session = app.session(&id)?;
    let scrollback = optional_number::<usize>(
        query.scrollback.as_deref(),
        "scrollback must be a non-negative number of rows",
    )?
    .unwrap_or(0)
    .min(MAX_SCROLLBACK_ROWS);
    let offset_header = |offset: u64| {
        (
            header::HeaderName::from_static("x-output-offset"),
            HeaderValue::from(offset),
        )
    };
    match query.format.as_deref().unwrap_or("text") {
        "text" => {
            let (screen, above, offset) = session.screen_with_scrollback(scrollback);
            let mut lines = above;
            lines.extend(screen.lines);
            while lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
            let text = lines.join("\n");
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    ),
                    offset_header(offset),
                ],
                text,
            )
                .into_response())
        }
        "ansi" => {
            let (ansi, offset) = session.screen_ansi();
            Ok((
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    ),
                    offset_header(offset),
                ],
                ansi,
            )
                .into_response())
        }
        "json" => {
            let (screen, above, offset) = session.screen_with_scrollback(scrollback);
            Ok(Json(screen_view(screen, above, offset)).into_response())
        }
        _ => Err(ApiError::bad_request(
            "format must be \"text\", \"ansi\", or \"json\"",
        )),
    }
}

fn screen_view(
    screen: crate::engine::ScreenText,
    scrollback: Vec<String>,
    offset: u64,
) -> ScreenView {
    ScreenView {
        cols: screen.size.cols,
        rows: screen.size.rows,
        cursor: Cursor {
            row: screen.cursor_row,
            col: screen.cursor_col,
        },
        title: screen.title,
        alternate_screen: screen.alternate_screen,
        lines: screen.lines,
        scrollback,
        offset,
    }
}

/// Longest wait accepted.
const MAX_WAIT_MS: u64 = 3_600_000;
/// Wait used when the request gives none.
const DEFAULT_WAIT_MS: u64 = 30_000;
/// Largest compiled pattern accepted.
const MAX_PATTERN_BYTES: usize = 1 << 20;

/// `POST /sessions/:id/wait`.
#[utoipa::path(post, path = "/sessions/{id}/wait", tag = "orchestration", params(("id" = String, Path, description = "Session id")), request_body = WaitRequest, responses((status = 200, description = "A condition held, or the timeout passed", body = WaitResult), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn wait(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<WaitRequest>,
) -> Result<Json<WaitResult>, ApiError> {
    let session = app.session(&id)?;
    let exit = req.exit.unwrap_or(false);
    if req.idle_ms.is_none() && req.pattern.is_none() && !exit {
        return Err(ApiError::bad_request(
            "one of idle_ms, match or exit is required",
        ));
    }
    let timeout_ms = req.timeout_ms.unwrap_or(DEFAULT_WAIT_MS);
    if timeout_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(format!(
            "timeout_ms must be at most {MAX_WAIT_MS}"
        )));
    }
    let pattern = req
        .pattern
        .as_deref()
        .map(|p| {
            regex::RegexBuilder::new(p)
                .size_limit(MAX_PATTERN_BYTES)
                .build()
        })
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("match: {e}")))?;
    let outcome = session
        .wait(&WaitFor {
            idle: req.idle_ms.map(Duration::from_millis),
            pattern,
            since: req.since,
            exit,
            timeout: Duration::from_millis(timeout_ms),
        })
        .await;
    let (condition, matched) = match outcome.fired {
        Fired::Idle => ("idle", None),
        Fired::Match(text) => ("match", Some(text)),
        Fired::Exit => ("exit", None),
        Fired::Timeout => ("timeout", None),
    };
    Ok(Json(WaitResult {
        condition: condition.into(),
        timed_out: condition == "timeout",
        offset: outcome.offset,
        screen: outcome.screen.lines.join("\n").trim_end().to_owned(),
        matched,
        status: session.status(),
    }))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "Killing (idempotent)", body = Killed), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn delete_session(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Killed>, ApiError> {
    let session = app.session(&id)?;
    let engine = app.engine.clone();
    tracing::info!(session = %session.id, client = %client, "audit: session kill requested");
    tokio::spawn(async move { engine.kill(&session).await });
    Ok(Json(Killed { killed: true }))
}

#[utoipa::path(post, path = "/sessions/{id}/input", tag = "sessions", params(("id" = String, Path, description = "Session id")), request_body = InputRequest, responses((status = 200, description = "Written", body = InputSent), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Not running", body = ErrorBody)))]
pub async fn send_input(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<InputRequest>,
) -> Result<Json<InputSent>, ApiError> {
    let session = app.session(&id)?;
    let enter = req
        .enter
        .unwrap_or(session.kind == SessionKind::Interactive);
    let sent = match (req.input, req.text, req.keys) {
        (Some(input), None, None) => session.type_text(input.into_bytes(), enter).await,
        (None, Some(text), None) if req.paste.unwrap_or(false) => session.paste(&text, enter).await,
        (None, Some(text), None) => session.type_text(text.into_bytes(), enter).await,
        (None, None, Some(names)) => {
            // Every name is checked before anything is sent.
            let keys = names
                .iter()
                .map(|name| parse_key(name))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ApiError::bad_request)?;
            session.send_keys(&keys).await
        }
        (None, None, None) => return Err(ApiError::bad_request("input is required")),
        _ => {
            return Err(ApiError::bad_request(
                "give only one of input, text or keys",
            ));
        }
    };
    sent.map_err(|_| ApiError::not_running())?;
    Ok(Json(InputSent { sent: true }))
}

#[utoipa::path(post, path = "/sessions/{id}/resize", tag = "sessions", params(("id" = String, Path, description = "Session id")), request_body = ResizeRequest, responses((status = 200, description = "Resized", body = SessionInfo), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict: the session is not running", body = ErrorBody)))]
pub async fn resize(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<ResizeRequest>,
) -> Result<Json<SessionInfo>, ApiError> {
    let session = app.session(&id)?;
    let size = term_size(req.cols, req.rows)?;
    session.resize(size).map_err(|_| ApiError::not_running())?;
    Ok(Json(app.info(&session)))
}

/// Query of `GET /sessions/:id/transcript`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TranscriptQuery {
    /// Byte offset to start at (default 0).
    since: Option<String>,
}

#[utoipa::path(get, path = "/sessions/{id}/transcript", tag = "sessions", params(("id" = String, Path, description = "Session id"), TranscriptQuery), responses((status = 200, description = "Output from the offset; headers x-transcript-offset, x-transcript-total-size, x-transcript-next-offset", content_type = "text/plain", body = String), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn transcript(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<TranscriptQuery>,
) -> Result<Response, ApiError> {
    let session = app.session(&id)?;
    let since = optional_number::<u64>(query.since.as_deref(), SINCE_ERROR)?.unwrap_or(0);
    let (path, total) = session.transcript();
    let since = since.min(total);
    let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("transcript: {e}"),
        )
    })?;
    file.seek(std::io::SeekFrom::Start(since))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("transcript: {e}"),
            )
        })?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(total - since)));
    let header_value = |n: u64| HeaderValue::from(n);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (
                header::HeaderName::from_static("x-transcript-offset"),
                header_value(since),
            ),
            (
                header::HeaderName::from_static("x-transcript-total-size"),
                header_value(total),
            ),
            (
                header::HeaderName::from_static("x-transcript-next-offset"),
                header_value(total),
            ),
        ],
        body,
    )
        .into_response())
}

/// A session as the API shows it; `busy_window` decides `activity`.
pub fn session_info(session: &Session, busy_window: Duration) -> SessionInfo {
    let snap = session.snapshot();
    let busy = snap.is_busy(busy_window);
    let exit = snap.exit.unwrap_or(crate::engine::ExitInfo {
        code: None,
        signal: None,
    });
    SessionInfo {
        id: session.id.clone(),
        task: session.task.clone(),
        task_preview: session.task.chars().take(TASK_PREVIEW_CHARS).collect(),
        cwd: session.cwd.display().to_string(),
        command: display_command(&session.argv),
        kind: session.kind,
        status: snap.status,
        exit_code: exit.code,
        signal: exit.signal,
        pid: session.pid,
        created_at: iso_time(session.created_at),
        ended_at: snap.ended_at.map(iso_time),
        output_lines: snap.output_lines,
        output_bytes: snap.output_bytes,
        ws_clients: snap.viewers,
        owner: session.owner.clone(),
        labels: session.labels.clone(),
        cols: snap.size.cols,
        rows: snap.size.rows,
        last_output_at: snap.last_output_at.map(iso_time),
        idle_ms: snap.quiet_for.as_millis() as u64,
        activity: if busy { Activity::Busy } else { Activity::Idle },
        title: snap.title,
        bells: snap.bells,
        task_delivered_at: snap.task_delivered_at.map(iso_time),
    }
}

/// The message for a bad `since` (transcript and WebSocket alike).
pub const SINCE_ERROR: &str = "since must be a non-negative byte offset";

/// An optional number from a query string: absent or empty is `None`, anything unparsable is 400
/// with `error`.
pub fn optional_number<T: std::str::FromStr>(
    raw: Option<&str>,
    error: &str,
) -> Result<Option<T>, ApiError> {
    raw.filter(|v| !v.is_empty())
        .map(|v| v.parse::<T>().map_err(|_| ApiError::bad_request(error)))
        .transpose()
}

/// A checked terminal size, or 400.
pub fn term_size(cols: i64, rows: i64) -> Result<TermSize, ApiError> {
    u16::try_from(cols)
        .ok()
        .zip(u16::try_from(rows).ok())
        .and_then(|(c, r)| TermSize::new(c, r))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "cols and rows must be integers from 1 to {}",
                crate::engine::MAX_DIMENSION
            ))
        })
}

/// `argv` as a shell would need it typed.
fn display_command(argv: &[String]) -> String {
    shell_words::join(argv)
}

/// ISO 8601 UTC with milliseconds, like JavaScript's `Date.toISOString()`.
pub fn iso_time(t: SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(t)
        .format(&format)
        .unwrap_or_default()
}

/// The working directory: `$HOME` by default, relative paths against the server's cwd.
fn resolve_cwd(cwd: Option<&str>) -> Result<PathBuf, ApiError> {
    let path = match cwd.filter(|c| !c.is_empty()) {
        Some(c) if c.contains('\0') => {
            return Err(ApiError::bad_request("cwd must not contain NUL"));
        }
        Some(c) => PathBuf::from(c),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into()),
    };
    std::path::absolute(&path)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Trimmed, lowercased, cut to 64 characters, empties dropped, de-duplicated in order.
fn normalize_labels(labels: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for label in labels.iter().map(|l| normalize_label(l)) {
        if !label.is_empty() && !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

fn normalize_label(label: &str) -> String {
    label
        .trim()
        .to_lowercase()
        .chars()
        .take(MAX_LABEL_CHARS)
        .collect()
}

impl AppState {
    /// A session as the API shows it.
    pub fn info(&self, session: &Session) -> SessionInfo {
        session_info(session, self.engine.config().busy_window)
    }

    /// The session with this id, or 404.
    pub fn session(&self, id: &str) -> Result<Arc<Session>, ApiError> {
        self.engine.get(id).ok_or_else(ApiError::not_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_normalized() {
        let long = "x".repeat(100);
        let labels = vec![
            " Foo ".into(),
            "foo".into(),
            "".into(),
            "  ".into(),
            "Bar".into(),
            long,
        ];
        let out = normalize_labels(labels);
        assert_eq!(out[..2], ["foo", "bar"]);
        assert_eq!(out[2].len(), 64);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn iso_time_looks_like_javascript() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(iso_time(t), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn sizes_are_bounded() {
        assert!(term_size(80, 24).is_ok());
        assert!(term_size(0, 24).is_err());
        assert!(term_size(-1, 24).is_err());
        assert!(term_size(80, 100_000).is_err());
    }
}
