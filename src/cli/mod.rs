//! The binary's client side: subcommands that talk to a running server rather than being one —
//! the shell's (`commands.rs`: ls, new, attach, send, keys, screen, wait, logs, events, resize,
//! kill) and the MCP stdio bridge (`mcp.rs`).

pub mod attach;
pub mod commands;
pub mod contexts;
pub mod mcp;

use std::path::PathBuf;

/// The server a subcommand talks to when none is named.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3200";

/// Whether `args` (the program's name first) name one of `commands::Cli`'s subcommands (else
/// they start the server), skipping the global options that may come before it (`--url U`,
/// `--context C`, `--token-file F`, `--json`).
pub fn is_command(args: &[std::ffi::OsString]) -> bool {
    use clap::CommandFactory;
    let mut rest = args.iter().skip(1).filter_map(|a| a.to_str());
    while let Some(arg) = rest.next() {
        match arg {
            "--url" | "--context" | "--token-file" => {
                rest.next();
            }
            "--json" => {}
            _ if arg.starts_with("--url=")
                || arg.starts_with("--context=")
                || arg.starts_with("--token-file=") => {}
            _ => {
                return commands::Cli::command()
                    .get_subcommands()
                    .any(|c| c.get_name() == arg);
            }
        }
    }
    false
}

/// Where the server is and how to prove we may use it, as given on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The server's base URL (default: the context's, else http://127.0.0.1:3200).
    #[arg(long, env = "MONKEYPROOF_URL", global = true)]
    pub url: Option<String>,
    /// A file whose first line is the token (else `AGENT_WS_TOKEN`, else the context's).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// A named server from the config file (see `contexts.rs`).
    #[arg(long, env = "MONKEYPROOF_CONTEXT", global = true)]
    pub context: Option<String>,
}

/// A server to talk to.
#[derive(Debug, Clone)]
pub struct Server {
    pub url: String,
    pub token: String,
}

impl Target {
    /// The server: what the command line and environment say, then the context, then the
    /// local default.
    pub fn resolve(&self) -> Result<Server, String> {
        let contexts = contexts::Contexts::load()?;
        let context = contexts.pick(self.context.as_deref())?;
        let url = self
            .url
            .clone()
            .or_else(|| context.and_then(|c| c.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let token = match (
            &self.token_file,
            std::env::var("AGENT_WS_TOKEN").ok(),
            context,
        ) {
            (Some(path), _, _) => crate::config::read_token_file(path)?,
            (None, Some(token), _) => token,
            (
                None,
                None,
                Some(Context {
                    token: Some(token), ..
                }),
            ) => token.clone(),
            (
                None,
                None,
                Some(Context {
                    token_file: Some(path),
                    ..
                }),
            ) => crate::config::read_token_file(path)?,
            _ => {
                return Err(
                    "no token: set AGENT_WS_TOKEN, give --token-file, or use a --context".into(),
                );
            }
        };
        Ok(Server {
            url: url.trim_end_matches('/').to_owned(),
            token,
        })
    }
}

use contexts::Context;
