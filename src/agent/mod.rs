//! Agent awareness: whether each agent session is working, waiting for someone (a permission,
//! a question, a sign-in, trust) or idle, and its last answer. Known exactly from the agent's
//! own reports — Claude Code's hooks and Codex's notify program, both calling `monkeyproof hook`
//! (`hook.rs`) over a per-session channel (`channel.rs`) — and from screen rules (`rules.rs`)
//! where those say nothing. Each session's `Tracker` combines them; the engine publishes its
//! changes as `agent` events, and `webhook.rs` tells the outside world.

pub mod channel;
pub mod hook;
pub mod launch;
pub mod report;
pub mod rules;
pub mod state;
pub mod tracker;
pub mod webhook;

pub use launch::AgentSpec;
pub use state::{Agent, AgentKind, AgentState, WaitingFor};
pub use tracker::Tracker;

/// The session's id, in every session's environment.
pub const SESSION_ID_VAR: &str = "MONKEYPROOF_SESSION_ID";
/// The session's hook secret, in agent sessions' environment.
pub const HOOK_SECRET_VAR: &str = "MONKEYPROOF_HOOK_SECRET";
/// The hooks' socket, in agent sessions' environment.
pub const HOOK_SOCKET_VAR: &str = "MONKEYPROOF_HOOK_SOCKET";
