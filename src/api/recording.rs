//! `GET /sessions/:id/recording`: the session as an asciicast file (v3, or v2 with
//! `?format=v2`), streamed as it is rendered from the transcript and the recording's marks.

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::AppState;
use super::error::ApiError;
use crate::engine::recording::{self, CastVersion};
use crate::protocol::ErrorBody;

/// Query of `GET /sessions/:id/recording`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordingQuery {
    /// `v3` (default) or `v2` (asciicast v2, for older players).
    format: Option<String>,
}

/// Lines rendered ahead of the client.
const LINES_AHEAD: usize = 64;

#[utoipa::path(get, path = "/sessions/{id}/recording", tag = "sessions", params(("id" = String, Path, description = "Session id"), RecordingQuery), responses((status = 200, description = "The session as an asciicast file (header line, then one JSON event per line)", content_type = "application/x-asciicast", body = String), (status = 400, description = "Bad request", body = ErrorBody), (status = 401, description = "Unauthorized (missing or wrong token)", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody)))]
pub async fn recording(
    State(app): State<AppState>,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<RecordingQuery>,
) -> Result<Response, ApiError> {
    let version = match query.format.as_deref() {
        None | Some("v3") => CastVersion::V3,
        Some("v2") => CastVersion::V2,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format must be v3 or v2, not {other:?}"
            )));
        }
    };
    let session = app.session(&id)?;
    let engine = app.engine.clone();
    let (lines, body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(LINES_AHEAD);
    // The first line is awaited, so that a transcript that cannot be read is an error status.
    let (first, first_line) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let marks = engine.marks(&session.id);
        let mut first = Some(first);
        let rendered = recording::render(&session, &marks, version, &mut |line| {
            let bytes = Bytes::from(line + "\n");
            match first.take() {
                Some(first) => first.send(bytes).is_ok(),
                None => lines.blocking_send(Ok(bytes)).is_ok(),
            }
        });
        if let Err(err) = rendered {
            match first.take() {
                Some(first) => drop(first),
                None => {
                    let _ = lines.blocking_send(Err(err));
                }
            }
        }
    });
    let first = first_line.await.map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the transcript cannot be read",
        )
    })?;
    let rest = futures_util::stream::unfold(body, |mut lines| async move {
        lines.recv().await.map(|line| (line, lines))
    });
    let stream = futures_util::stream::once(async move { Ok(first) }).chain(rest);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-asciicast"),
        )],
        Body::from_stream(stream),
    )
        .into_response())
}
