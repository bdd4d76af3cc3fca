//! monkeyproof: programs in real pseudo-terminals, driven over the network.
//!
//! - `cli`: subcommands that talk to a running server (the MCP stdio bridge).
//! - `agent`: whether each agent is working, waiting or idle (hooks, notify, screen rules).
//! - `engine`: sessions (PTY, output log, screen model, transcript); knows nothing of HTTP.
//! - `api`: REST, WebSocket and auth over the engine's public API.
//! - `protocol`: every wire message, shared by server, tests and clients.
//! - `presets`, `config`: what to run, and how the server is set up.
//! - `store`: the session database in the data directory (records that outlive the server).
//! - `server`: wires config to a running server.

pub mod agent;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod fuzzing;
pub mod keeper;
pub mod presets;
pub mod protocol;
pub mod server;
pub mod store;
