//! The orchestration routes: the screen as text, ANSI or JSON, and waiting for a condition.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::convert::screen_view;
use super::error::{ApiError, JsonBody};
use super::params::optional_number;
use crate::engine::{Fired, MAX_PATTERN_BYTES, WaitFor};
use crate::protocol::{ErrorBody, ScreenQuery, ScreenView, WaitRequest, WaitResult};

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

/// Longest wait accepted.
const MAX_WAIT_MS: u64 = 3_600_000;
/// Wait used when the request gives none.
const DEFAULT_WAIT_MS: u64 = 30_000;

/// `POST /sessions/:id/wait`.
#[utoipa::path(post, path = "/sessions/{id}/wait", tag = "orchestration", params(("id" = String, Path, description = "Session id")), request_body = WaitRequest, responses((status = 200, description = "A condition held, or the timeout passed", body = WaitResult), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn wait(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    JsonBody(req): JsonBody<WaitRequest>,
) -> Result<Json<WaitResult>, ApiError> {
    let session = app.session(&id)?;
    let exit = req.exit.unwrap_or(false);
    let agent = req.agent.unwrap_or_default();
    if req.idle_ms.is_none() && req.pattern.is_none() && !exit && agent.is_empty() {
        return Err(ApiError::bad_request(
            "one of idle_ms, match, exit or agent is required",
        ));
    }
    if !agent.is_empty() && session.agent().is_none() {
        return Err(ApiError::bad_request(
            "agent: this session runs no agent (see the README's Agents section)",
        ));
    }
    let timeout_ms = req.timeout_ms.unwrap_or(DEFAULT_WAIT_MS);
    if timeout_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(format!(
            "timeout_ms must be at most {MAX_WAIT_MS}"
        )));
    }
    if let Some(since) = req.since {
        let total = session.snapshot().output_bytes;
        if since > total {
            return Err(ApiError::bad_request(format!(
                "since is past the end of the output ({total} bytes so far)"
            )));
        }
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
            agent,
            timeout: Duration::from_millis(timeout_ms),
        })
        .await;
    let (condition, matched) = match outcome.fired {
        Fired::Idle => ("idle", None),
        Fired::Match(text) => ("match", Some(text)),
        Fired::Exit => ("exit", None),
        Fired::Agent => ("agent", None),
        Fired::Timeout => ("timeout", None),
    };
    Ok(Json(WaitResult {
        condition: condition.into(),
        timed_out: condition == "timeout",
        offset: outcome.offset,
        screen: outcome.screen.lines.join("\n").trim_end().to_owned(),
        matched,
        status: session.status(),
        agent: session.agent(),
    }))
}
