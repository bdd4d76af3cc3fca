//! The binary's client side: subcommands that talk to a running server rather than being one —
//! the shell's (`commands.rs`: ls, new, send, keys, screen, wait, logs, events, resize, kill)
//! and the MCP stdio bridge (`mcp.rs`).

pub mod attach;
pub mod commands;
pub mod mcp;

/// The subcommands `commands.rs` runs (anything else starts the server).
pub const COMMANDS: [&str; 11] = [
    "ls", "new", "attach", "send", "keys", "screen", "wait", "logs", "events", "resize", "kill",
];

use std::path::PathBuf;

/// The server a subcommand talks to when none is named.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3200";

/// Where the server is and how to prove we may use it.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The server's base URL.
    #[arg(long, env = "MONKEYPROOF_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// A file whose first line is the token (else `AGENT_WS_TOKEN`).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
}

impl Target {
    /// The token: from `--token-file`, else `AGENT_WS_TOKEN`.
    pub fn token(&self) -> Result<String, String> {
        match &self.token_file {
            Some(path) => crate::config::read_token_file(path),
            None => std::env::var("AGENT_WS_TOKEN")
                .map_err(|_| "no token: set AGENT_WS_TOKEN or give --token-file".to_owned()),
        }
    }

    /// `path` on the server.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }
}
