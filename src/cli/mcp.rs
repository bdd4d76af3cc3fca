//! `monkeyproof mcp`: an MCP server on stdin/stdout that forwards every tool listing and call to
//! a running server's `/mcp` (URL from `--url`/`MONKEYPROOF_URL`, token from `AGENT_WS_TOKEN` or
//! `--token-file`), so a client that starts MCP servers as programs — `claude mcp add
//! monkeyproof -- monkeyproof mcp`, Codex's `mcp_servers` — gets the same tools. A call's
//! progress token goes along, and the server's progress notifications come back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ServerCapabilities,
    ServerConfig, ServerResult,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt};

use super::Target;

/// `monkeyproof mcp`'s options.
#[derive(Debug, clap::Parser)]
#[command(
    name = "monkeyproof mcp",
    about = "An MCP stdio bridge to a running monkeyproof server"
)]
pub struct McpArgs {
    #[command(flatten)]
    pub target: Target,
}

/// Forwards to the server's MCP endpoint.
struct Bridge {
    remote: RunningService<RoleClient, Upstream>,
    relay: Arc<Relay>,
}

/// What relaying progress needs: the stdio client, and which of its progress tokens each of
/// our calls to the server (which have tokens of their own) stands for.
#[derive(Default)]
struct Relay {
    downstream: OnceLock<Peer<RoleServer>>,
    tokens: Mutex<HashMap<ProgressToken, ProgressToken>>,
}

/// The bridge as the server's client: relays the server's progress notifications.
#[derive(Clone)]
struct Upstream {
    relay: Arc<Relay>,
}

impl ClientHandler for Upstream {
    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let relay = &self.relay;
        let Some(token) = relay
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&params.progress_token)
            .cloned()
        else {
            return;
        };
        if let Some(peer) = relay.downstream.get() {
            params.progress_token = token;
            let _ = peer.notify_progress(params).await;
        }
    }
}

fn forwarded(err: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("the monkeyproof server: {err}"), None)
}

impl ServerHandler for Bridge {
    fn get_info(&self) -> ServerConfig {
        let remote = self.remote.peer_info();
        let mut config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        if let Some(instructions) = remote.and_then(|info| info.instructions.clone()) {
            config = config.with_instructions(instructions);
        }
        config
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.remote.list_tools(request).await.map_err(forwarded)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let relay = &self.relay;
        relay.downstream.get_or_init(|| context.peer.clone());
        let call = ClientRequest::CallToolRequest(CallToolRequest::new(request));
        let handle = self
            .remote
            .send_cancellable_request(call, PeerRequestOptions::no_options())
            .await
            .map_err(forwarded)?;
        let ours = handle.progress_token.clone();
        let tokens = || relay.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(theirs) = context.meta.get_progress_token() {
            tokens().insert(ours.clone(), theirs);
        }
        let answer = handle.await_response().await;
        tokens().remove(&ours);
        match answer.map_err(forwarded)? {
            ServerResult::CallToolResult(result) => Ok(CallToolResponse::Complete(result)),
            other => Err(forwarded(format!("unexpected answer {other:?}"))),
        }
    }
}

/// Runs the bridge until stdin closes. `Err` is a one-line message for stderr.
pub async fn run(args: McpArgs) -> Result<(), String> {
    let server = args.target.resolve()?;
    let token = server.token;
    let url = format!("{}/mcp", server.url);
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.clone()).auth_header(token),
    );
    let relay = Arc::new(Relay::default());
    let upstream = Upstream {
        relay: relay.clone(),
    };
    let remote = upstream
        .serve(transport)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let bridge = Bridge { remote, relay }
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("cannot serve MCP on stdio: {e}"))?;
    bridge
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("the MCP bridge failed: {e}"))
}
