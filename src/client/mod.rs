//! A client of a running server, for the CLI, the tests and the benchmark: REST requests (here)
//! and WebSocket connections (`ws.rs`), the token on every one, and a failure as the server's
//! own one-line message; and starting a server of one's own (`launch.rs`).

mod launch;
mod ws;

pub use launch::{LISTENING, Launched, launch};
pub use ws::Socket;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What went wrong: the server's message (with its status), or why it could not be reached.
#[derive(Debug)]
pub struct ClientError {
    pub status: Option<StatusCode>,
    pub message: String,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{} ({})", self.message, status.as_u16()),
            None => f.write_str(&self.message),
        }
    }
}

impl ClientError {
    /// A refusal: the server's `{"error": …}` message, or its body as it is.
    fn refused(status: StatusCode, body: &[u8]) -> Self {
        let message = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        Self {
            status: Some(status),
            message,
        }
    }
}

/// A server and its token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// The URL of `path` on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request; the response if it succeeded, else the server's message.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<reqwest::Response, ClientError> {
        self.send_with(method, path, body, &[]).await
    }

    /// The same with extra `headers`.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let response = self.answer(method, path, body, headers).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.bytes().await.unwrap_or_default();
        Err(ClientError::refused(status, &text))
    }

    /// A request whatever its answer: the status and the JSON body (`Null` when it is not
    /// JSON). `Err` only when the server cannot be reached.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let response = self.answer(method, path, body, &[]).await?;
        let status = response.status();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    async fn answer(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|e| self.unreachable(e.without_url()))
    }

    fn unreachable(&self, err: impl std::fmt::Display) -> ClientError {
        ClientError {
            status: None,
            message: format!("cannot reach {}: {err}", self.base),
        }
    }

    /// A JSON request and its JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        self.send(method, path, body)
            .await?
            .json()
            .await
            .map_err(|e| ClientError {
                status: None,
                message: format!("unexpected answer: {e}"),
            })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.json(Method::POST, path, Some(body)).await
    }

    /// A GET whose answer is bytes (a screen as text, a transcript).
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let response = self.send(Method::GET, path, None::<&()>).await?;
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| ClientError {
                status: None,
                message: e.without_url().to_string(),
            })
    }
}

/// `id` made safe for a URL path.
pub fn escape(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}
