//! MCP at `/mcp` (Streamable HTTP, the official Rust SDK `rmcp`): the REST API as tools for
//! models, behind the same token and Origin/Host rules as every route. Each tool calls the
//! handler of its REST route, so arguments use the REST vocabulary and results and errors are
//! the REST ones: a result's `structuredContent` is the REST answer (a list is wrapped as
//! `{"sessions": [...]}`, as MCP wants an object) and its text the same JSON (the screen's text
//! for `read_screen`); a failure is a tool error with the REST message.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path as UrlPath, Query, State};
use axum::response::IntoResponse;
use rmcp::handler::server::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::JsonBody;
use super::{AppState, list, orchestrate, rest};
use crate::protocol::{
    CreateSessionRequest, DeleteQuery, InputRequest, ListQuery, ResizeRequest, ScreenQuery,
    WaitRequest,
};

/// The longest a `wait_for` call waits: MCP clients commonly give up on a call after ~60 s.
const MAX_WAIT_MS: u64 = 50_000;
/// How often a waiting `wait_for` sends a progress notification.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// `read_output`'s default and largest `max_bytes`.
const DEFAULT_OUTPUT_BYTES: u64 = 64 * 1024;
const MAX_OUTPUT_BYTES: u64 = 1024 * 1024;
/// The largest REST answer a tool passes on.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// A session, by id.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SessionId {
    /// The session's id (from `start_session` or `list_sessions`).
    pub id: String,
}

/// `read_screen`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReadScreen {
    /// The session's id.
    pub id: String,
    /// Rows of scrollback above the screen to include (default none).
    pub scrollback: Option<u32>,
}

/// `send_input`'s arguments: the id and the `POST /sessions/:id/input` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SendInput {
    /// The session's id.
    pub id: String,
    #[serde(flatten)]
    pub input: InputRequest,
}

/// `wait_for`'s arguments: the id and the `POST /sessions/:id/wait` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WaitFor {
    /// The session's id.
    pub id: String,
    #[serde(flatten)]
    pub wait: WaitRequest,
}

/// `read_output`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReadOutput {
    /// The session's id.
    pub id: String,
    /// Byte offset to read from (default 0): pass the previous call's `next` to read on.
    pub since: Option<u64>,
    /// The most output bytes to read (default 65536, at most 1048576).
    pub max_bytes: Option<u64>,
}

/// `resize_session`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Resize {
    /// The session's id.
    pub id: String,
    #[serde(flatten)]
    pub size: ResizeRequest,
}

/// `kill_session`'s arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct Kill {
    /// The session's id.
    pub id: String,
    #[serde(flatten)]
    pub query: DeleteQuery,
}

/// The tools, over the server's state.
#[derive(Clone)]
pub struct Tools {
    app: AppState,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    pub fn new(app: AppState) -> Self {
        Self {
            app,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "List the terminal sessions (running and recently finished), oldest first. \
        Filter by `owner`, `label` or `status` (running, exited, killed). Returns {\"sessions\": \
        [SessionInfo]}: each with id, task, type, status, exitCode, activity (busy/idle), title, \
        and `agent` (what a coding agent is doing: working, waiting for permission or an answer, \
        idle) for agent sessions."
    )]
    async fn list_sessions(&self, Parameters(query): Parameters<ListQuery>) -> CallToolResult {
        let answer = list::list_sessions(State(self.app.clone()), Query(query)).await;
        let mut result = respond(answer).await;
        if let Some(list @ Value::Array(_)) = result.structured_content.take() {
            let wrapped = json!({ "sessions": list });
            result = CallToolResult::structured(wrapped);
        }
        result
    }

    #[tool(
        description = "Start a program in a new real terminal (PTY) and return its SessionInfo \
        (keep its `id`). `type`: `exec` (default: runs `task` with /bin/sh -lc), `print` (a \
        one-shot agent run, preset `claude` by default) or `interactive` (a long-lived agent, \
        preset `claude-interactive` by default). Optional: `preset`, `command` + `args` (run \
        this program with the task as its last argument), `cwd`, `cols`/`rows`, `env`, `owner`, \
        `labels`. Use `send_input`, `wait_for` and `read_screen` to drive it."
    )]
    async fn start_session(
        &self,
        Parameters(body): Parameters<CreateSessionRequest>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let client = ConnectInfo(client_address(&context));
        let answer = rest::create_session(State(self.app.clone()), client, JsonBody(body)).await;
        respond(answer).await
    }

    #[tool(
        description = "One session's SessionInfo plus its screen (`screen.lines`, as a person \
        would see it now), `recentOutput` (recent output as plain text) and `transcriptPath`."
    )]
    async fn get_session(
        &self,
        Parameters(SessionId { id }): Parameters<SessionId>,
    ) -> CallToolResult {
        respond(rest::get_session(State(self.app.clone()), UrlPath(id)).await).await
    }

    #[tool(
        description = "What is on the session's terminal screen right now, as text (the \
        program's full-screen UI included), with `scrollback` rows above it if asked. The \
        structured result also has the cursor position, the title, whether the alternate screen \
        is on, and `offset`: the output byte the screen reflects."
    )]
    async fn read_screen(&self, Parameters(args): Parameters<ReadScreen>) -> CallToolResult {
        let query = ScreenQuery {
            format: Some("json".into()),
            scrollback: args.scrollback.map(|n| n.to_string()),
        };
        let answer =
            orchestrate::screen(State(self.app.clone()), UrlPath(args.id), Query(query)).await;
        let mut result = respond(answer).await;
        if let Some(screen) = &result.structured_content {
            let rows = |key: &str| {
                screen[key]
                    .as_array()
                    .map(|lines| lines.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            let text = [rows("scrollback"), rows("lines")].concat().join("\n");
            result.content = vec![ContentBlock::text(text.trim_end().to_owned())];
        }
        result
    }

    #[tool(
        description = "Type into the session. Give exactly one of: `input` (text typed as is), \
        `text` with `paste: true` (pasted as one piece, bracketed when the program asked for \
        it: use this for multi-line prompts to coding agents), or `keys` (names like Enter, \
        Escape, Tab, Up, C-c, M-x, F5). `enter` sends Enter after `input`/`text` (default true \
        for interactive sessions). `approve: true|false` answers an agent's permission prompt \
        with the keys that agent expects."
    )]
    async fn send_input(&self, Parameters(args): Parameters<SendInput>) -> CallToolResult {
        let answer = rest::send_input(
            State(self.app.clone()),
            UrlPath(args.id),
            JsonBody(args.input),
        )
        .await;
        respond(answer).await
    }

    #[tool(
        description = "Wait until something happens in the session: `idle_ms` (no output for \
        that long), `match` (a regular expression on the screen, or on the output after byte \
        `since`), `exit: true` (the program ended), or `agent` (the agent reaching one of these \
        states: working, waiting, idle, exited). Returns which `condition` fired, the screen at \
        that moment, `status`, and `agent`. Waits at most 50 s per call (`timeout_ms`, default \
        30000): if it returns `timedOut` with `continue`, call wait_for again with those \
        arguments. Sends progress notifications while it waits."
    )]
    async fn wait_for(
        &self,
        Parameters(args): Parameters<WaitFor>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let WaitFor { id, mut wait } = args;
        let asked = wait.timeout_ms.unwrap_or(30_000);
        let capped = asked > MAX_WAIT_MS;
        let mut rest_of_wait = wait.clone();
        if capped {
            wait.timeout_ms = Some(MAX_WAIT_MS);
            rest_of_wait.timeout_ms = Some(asked - MAX_WAIT_MS);
        }
        let progress = context.meta.get_progress_token().map(|token| {
            let peer = context.peer.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(PROGRESS_EVERY).await;
                    let waited = started.elapsed().as_secs_f64();
                    let note = ProgressNotificationParam::new(token.clone(), waited)
                        .with_message(format!("waiting ({waited:.0} s)"));
                    if peer.notify_progress(note).await.is_err() {
                        return;
                    }
                }
            })
        });
        let answer =
            orchestrate::wait(State(self.app.clone()), UrlPath(id.clone()), JsonBody(wait)).await;
        if let Some(progress) = progress {
            progress.abort();
        }
        let mut result = respond(answer).await;
        if capped
            && let Some(Value::Object(outcome)) = &mut result.structured_content
            && outcome.get("timedOut") == Some(&Value::Bool(true))
        {
            let mut next = serde_json::to_value(&rest_of_wait).unwrap_or_default();
            next["id"] = Value::String(id);
            outcome.insert("continue".into(), next);
            result = CallToolResult::structured(Value::Object(outcome.clone()));
        }
        result
    }

    #[tool(
        description = "Read the session's output as plain text (escape sequences removed) from \
        byte offset `since` (default 0), at most `max_bytes` (default 65536). Returns `text`, \
        `next` (the offset to pass as `since` to read on), `total` (bytes so far) and `more`."
    )]
    async fn read_output(&self, Parameters(args): Parameters<ReadOutput>) -> CallToolResult {
        let session = match self.app.session(&args.id) {
            Ok(session) => session,
            Err(err) => return respond(Err::<(), _>(err)).await,
        };
        let since = args.since.unwrap_or(0);
        let max = args
            .max_bytes
            .unwrap_or(DEFAULT_OUTPUT_BYTES)
            .clamp(1, MAX_OUTPUT_BYTES);
        let read = tokio::task::spawn_blocking(move || {
            let (path, total) = session.transcript();
            let from = since.min(total);
            let len = (total - from).min(max) as usize;
            crate::engine::output::read_transcript(&path, from, len)
                .map(|bytes| (bytes, from, total))
        })
        .await;
        match read {
            Ok(Ok((bytes, from, total))) => {
                let next = from + bytes.len() as u64;
                CallToolResult::structured(json!({
                    "text": crate::engine::plain_text(&bytes),
                    "since": from,
                    "next": next,
                    "total": total,
                    "more": next < total,
                }))
            }
            Ok(Err(err)) => {
                CallToolResult::error(vec![ContentBlock::text(format!("transcript: {err}"))])
            }
            Err(err) => CallToolResult::error(vec![ContentBlock::text(err.to_string())]),
        }
    }

    #[tool(
        description = "Resize the session's terminal to `cols` x `rows` (the program gets \
        SIGWINCH). Returns the SessionInfo."
    )]
    async fn resize_session(&self, Parameters(args): Parameters<Resize>) -> CallToolResult {
        let answer = rest::resize(
            State(self.app.clone()),
            UrlPath(args.id),
            JsonBody(args.size),
        )
        .await;
        respond(answer).await
    }

    #[tool(
        description = "Kill the session's whole process tree (SIGTERM, then SIGKILL after a \
        grace period). Idempotent; the session stays listed as `killed` until it expires. With \
        `remove: true` a finished session is forgotten now (an error while it runs)."
    )]
    async fn kill_session(
        &self,
        Parameters(Kill { id, query }): Parameters<Kill>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let client = ConnectInfo(client_address(&context));
        let answer =
            rest::delete_session(State(self.app.clone()), client, UrlPath(id), Query(query)).await;
        respond(answer).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "monkeyproof runs programs — shells, build scripts, coding agents such as Claude Code \
             and Codex — in real terminals. Start one with start_session, type with send_input, \
             wait with wait_for (idle, a pattern, exit, or an agent state), look with \
             read_screen or read_output, and stop it with kill_session.",
        )
    }
}

/// The REST answer `answer` as a tool result.
async fn respond(answer: impl IntoResponse) -> CallToolResult {
    let response = answer.into_response();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
        .await
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if status.is_success() {
        CallToolResult::structured(json)
    } else {
        let message = json["error"]
            .as_str()
            .map_or_else(|| json.to_string(), str::to_owned);
        CallToolResult::error(vec![ContentBlock::text(message)])
    }
}

/// The address of the client calling, for the audit log.
fn client_address(context: &RequestContext<RoleServer>) -> SocketAddr {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ConnectInfo<SocketAddr>>())
        .map_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)), |info| info.0)
}

/// The `/mcp` service. The token, Origin and Host are checked by the router's guard, as for
/// every route.
pub fn service(app: AppState) -> StreamableHttpService<Tools, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(app.shutdown.child_token())
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(Tools::new(app.clone())),
        LocalSessionManager::default().into(),
        config,
    )
}
