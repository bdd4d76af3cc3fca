//! What is known of an agent: which kind it is, what it is doing, and what it waits for.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which agent a session runs, and so how its state is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Claude Code: its hooks, and the built-in screen rules as a fallback.
    Claude,
    /// Codex: its `notify` program, and the built-in screen rules.
    Codex,
    /// Any program whose preset declares screen rules (`[presets.NAME.states]`).
    Custom,
}

/// What an agent is doing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    /// Started; nothing known yet.
    Starting,
    /// Working on a task: thinking or running a tool.
    Working,
    /// Stopped until someone answers: see `waitingFor`.
    Waiting,
    /// Done with its turn; ready for the next task.
    Idle,
    /// The program ended.
    Exited,
}

/// What a waiting agent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitingFor {
    /// Permission to run a tool (answer with `{"approve": true|false}`).
    Permission,
    /// An answer to a question the agent asked.
    Question,
    /// A sign-in.
    Login,
    /// Trust in the working directory.
    Trust,
}

/// An agent's state, as `SessionInfo.agent`, the `agent` event and agent waits show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub kind: AgentKind,
    pub state: AgentState,
    pub waiting_for: Option<WaitingFor>,
    /// The prompt or notification text, when waiting (or the notice of going idle).
    pub message: Option<String>,
    /// The tool being run (or asked permission for).
    pub tool: Option<String>,
    /// The agent's last reply, when known.
    pub last_answer: Option<String>,
    /// When it entered this state (ISO 8601 UTC with milliseconds).
    #[serde(with = "crate::protocol::iso")]
    #[schema(value_type = String)]
    pub since: SystemTime,
}

impl AgentState {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Working => "working",
            Self::Waiting => "waiting",
            Self::Idle => "idle",
            Self::Exited => "exited",
        }
    }
}
