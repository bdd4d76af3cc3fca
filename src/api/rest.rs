//! The REST routes: sessions, input, resize, transcripts, presets. (Screen and wait, the
//! orchestration routes, are in `orchestrate.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::AppState;
use super::convert::{screen_view, session_info};
use super::error::{ApiError, JsonBody};
use super::params::{self, SINCE_ERROR, optional_number, term_size};
use crate::engine::{
    AnswerError, EngineError, Session, SessionKind, SpawnError, SpawnSpec, parse_key,
};
use crate::presets::{LaunchRequest, TaskDelivery};
use crate::protocol::{
    Banner, CreateSessionRequest, DeleteQuery, ErrorBody, Health, InputRequest, InputSent, Killed,
    PresetInfo, ResizeRequest, SessionDetail, SessionInfo,
};

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
                task_delivery: p.task_delivery,
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
    let cwd = params::resolve_cwd(req.cwd.as_deref())?;
    let env: Vec<(String, String)> = env.into_iter().collect();
    let mut argv = launch.argv;
    let agent = crate::agent::launch::prepare(&mut argv, launch.states, &cwd, &env)
        .map_err(ApiError::bad_request)?;
    let spec = SpawnSpec {
        kind,
        task,
        argv,
        task_typed: launch.delivery == TaskDelivery::Typed,
        requested_by: client.to_string(),
        cwd,
        env,
        name: params::name(req.name)?,
        owner: params::owner(req.owner)?,
        labels: params::labels(req.labels.unwrap_or_default())?,
        size,
        record_input: req.record_input.unwrap_or(false),
        agent,
        limits: params::limits(req.memory_max, req.pids_max, req.cpu_weight)?,
    };
    let engine = app.engine.clone();
    let session = tokio::task::spawn_blocking(move || engine.spawn(spec))
        .await
        .map_err(ApiError::internal)?
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
        command = %session.command_line, cwd = %session.cwd.display(),
        "audit: session started"
    );
    Ok((StatusCode::CREATED, Json(app.info(&session))))
}

#[utoipa::path(get, path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "The session and its screen", body = SessionDetail), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn get_session(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    let session = app.session(&id)?;
    let info = app.info(&session);
    let (screen, offset) = session.screen_text();
    let recent = session.recent_output_lines(app.output_buffer_lines).await;
    let (transcript, _) = session.transcript();
    Ok(Json(SessionDetail {
        info,
        recent_output: crate::engine::plain_text_tail(&recent, app.output_buffer_lines),
        transcript_path: transcript.display().to_string(),
        screen: screen_view(screen, Vec::new(), offset),
        usage: session.resource_use().await,
    }))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", params(("id" = String, Path, description = "Session id"), DeleteQuery), responses((status = 200, description = "Killing (idempotent); with remove=true, removed", body = Killed), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "remove=true while the program runs", body = ErrorBody)))]
pub async fn delete_session(
    State(app): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<DeleteQuery>,
) -> Result<Json<Killed>, ApiError> {
    let session = app.session(&id)?;
    let engine = app.engine.clone();
    if query.remove != Some(true) {
        tracing::info!(session = %session.id, client = %client, "audit: session kill requested");
        tokio::spawn(async move { engine.kill(&session).await });
        return Ok(Json(Killed {
            killed: true,
            removed: false,
        }));
    }
    if session.ended_at().is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the session is still running: kill it first (DELETE without remove)",
        ));
    }
    tracing::info!(session = %session.id, client = %client, "audit: session removal requested");
    // What is left of its process session (background jobs) goes with it.
    engine.kill(&session).await;
    let removed = tokio::task::spawn_blocking(move || engine.forget(&session))
        .await
        .unwrap_or(false);
    Ok(Json(Killed {
        killed: true,
        removed,
    }))
}

#[utoipa::path(post, path = "/sessions/{id}/input", tag = "sessions", params(("id" = String, Path, description = "Session id")), request_body = InputRequest, responses((status = 200, description = "Written", body = InputSent), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Not running", body = ErrorBody)))]
pub async fn send_input(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<InputRequest>,
) -> Result<Json<InputSent>, ApiError> {
    let session = app.session(&id)?;
    if let Some(approve) = req.approve {
        if req.input.is_some() || req.text.is_some() || req.keys.is_some() {
            return Err(ApiError::bad_request(
                "give approve alone, without input, text or keys",
            ));
        }
        session
            .answer_permission(approve)
            .await
            .map_err(|err| match err {
                AnswerError::NotWaiting => ApiError::new(
                    StatusCode::CONFLICT,
                    "no permission prompt is waiting for an answer",
                ),
                AnswerError::Input(err) => err.into(),
            })?;
        return Ok(Json(InputSent { sent: true }));
    }
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
    sent?;
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
    session.resize(size)?;
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
    let transcript_error = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("transcript: {e}"),
        )
    };
    let (file, total) = tokio::task::spawn_blocking(move || session.open_transcript())
        .await
        .map_err(ApiError::internal)?
        .map_err(transcript_error)?;
    let since = since.min(total);
    let mut file = tokio::fs::File::from_std(file);
    file.seek(std::io::SeekFrom::Start(since))
        .await
        .map_err(transcript_error)?;
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
