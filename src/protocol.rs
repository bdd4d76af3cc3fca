//! Every message that crosses the wire, as serde types: REST bodies, the raw WebSocket protocol's
//! control messages and the compat (original monkeyproof) WebSocket protocol.
//!
//! The server, the tests and clients all use these definitions; field names are the original
//! monkeyproof's (camelCase), so its clients keep working.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use crate::agent::{Agent, AgentKind, AgentState, WaitingFor};
pub use crate::engine::{SessionKind, SessionStatus};
pub use crate::presets::TaskDelivery;

/// The WebSocket subprotocol of the raw protocol: binary frames are terminal bytes both ways,
/// text frames are [`RawServerMessage`] / [`RawClientMessage`].
pub const RAW_SUBPROTOCOL: &str = "monkeyproof.tty.v1";

/// Prefix of a `Sec-WebSocket-Protocol` entry that carries the token (browsers cannot set
/// headers on WebSockets): `monkeyproof.token.<TOKEN>`. The server never selects it.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "monkeyproof.token.";

/// Every error body: `{"error": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// `GET /`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Banner {
    pub name: String,
    pub version: String,
    pub status: String,
    pub sessions: usize,
    pub running: usize,
}

/// `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub ok: bool,
}

/// `POST /sessions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub task: Option<String>,
    /// `exec` (default), `print` or `interactive`; `mode` is accepted as an alias.
    #[serde(rename = "type", alias = "mode")]
    pub kind: Option<String>,
    pub cwd: Option<String>,
    pub command: Option<String>,
    pub args: Option<Vec<String>>,
    pub preset: Option<String>,
    /// A name for people, shown in lists and tabs (at most 64 characters, no control
    /// characters; not unique and not an address: ids are).
    pub name: Option<String>,
    pub max_turns: Option<u32>,
    pub env: Option<std::collections::BTreeMap<String, String>>,
    pub owner: Option<String>,
    pub labels: Option<Vec<String>>,
    pub cols: Option<i64>,
    pub rows: Option<i64>,
    /// Also record what is typed into the program (`i` events of `/recording`); off by default,
    /// as input may hold secrets.
    pub record_input: Option<bool>,
    /// Most memory the session's processes may use, in bytes (4 MiB – 1 PiB); over it the
    /// kernel kills within the session alone. Default: `MONKEYPROOF_MEMORY_MAX`.
    pub memory_max: Option<u64>,
    /// Most processes and threads the session may have at once (1 – 4194304). Default:
    /// `MONKEYPROOF_PIDS_MAX`.
    pub pids_max: Option<u64>,
    /// The session's CPU share when the CPU is contended, 1 – 10000 (100 is a normal
    /// process's). Default: `MONKEYPROOF_CPU_WEIGHT`.
    pub cpu_weight: Option<u64>,
}

/// A session as listed and returned by the API: what was fixed when it started, and what it
/// is doing now (one flat JSON object; two structs so that a list can keep the first part's
/// JSON ready for each session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    #[serde(flatten)]
    pub about: SessionAbout,
    #[serde(flatten)]
    pub now: SessionNow,
}

/// What a session was started as: the same from its start to its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAbout {
    pub id: String,
    pub task: String,
    /// The first 500 characters of the task.
    pub task_preview: String,
    pub cwd: String,
    /// The program and arguments, shell-quoted.
    pub command: String,
    #[serde(rename = "type")]
    pub kind: SessionKind,
    pub pid: u32,
    /// ISO 8601 UTC with milliseconds, as JavaScript's `toISOString`.
    pub created_at: String,
    /// The name given at start, if any.
    pub name: Option<String>,
    pub owner: Option<String>,
    pub labels: Vec<String>,
    /// Whether input is recorded too (`recordInput` at creation).
    pub record_input: bool,
}

/// What a session is doing now, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionNow {
    pub status: SessionStatus,
    pub exit_code: Option<i32>,
    /// The terminating signal's name, e.g. `SIGKILL`.
    pub signal: Option<String>,
    /// Why the program ended when code and signal do not say: `outOfMemory` (the kernel
    /// killed processes of the session for going over its `memoryMax`).
    pub exit_reason: Option<crate::engine::ExitReason>,
    pub ended_at: Option<String>,
    pub output_lines: u64,
    pub output_bytes: u64,
    pub ws_clients: usize,
    pub cols: u16,
    pub rows: u16,
    /// When the program last printed anything.
    pub last_output_at: Option<String>,
    /// Milliseconds since the last output (or since creation, before any).
    pub idle_ms: u64,
    /// `busy` when there was output in the last `MONKEYPROOF_BUSY_MS`, else `idle`.
    pub activity: Activity,
    /// The terminal title the program set (OSC 0/2), or empty.
    pub title: String,
    /// How many times the program rang the bell.
    pub bells: u64,
    /// When the task reached the program: at start as an argument, or when it was typed in
    /// (presets with `taskDelivery = "typed"`); null until then.
    pub task_delivered_at: Option<String>,
    /// What the agent is doing, for sessions that run one (Claude Code, Codex, or a preset
    /// with screen rules); null otherwise.
    pub agent: Option<Agent>,
}

/// Whether a session is printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Activity {
    Busy,
    Idle,
}

/// `GET /sessions/:id`: the session plus what is on its screen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDetail {
    #[serde(flatten)]
    pub info: SessionInfo,
    /// Recent output as plain text (escape sequences removed), at most `OUTPUT_BUFFER_SIZE` lines.
    pub recent_output: String,
    pub transcript_path: String,
    pub screen: ScreenView,
    /// CPU time and memory of the session's processes while its program runs; null after.
    pub usage: Option<crate::engine::ResourceUse>,
}

/// The vt100 screen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScreenView {
    pub cols: u16,
    pub rows: u16,
    pub cursor: Cursor,
    pub title: String,
    pub alternate_screen: bool,
    /// One string per row, trailing blanks removed.
    pub lines: Vec<String>,
    /// Rows above the screen, oldest first, when asked for with `scrollback=N`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrollback: Vec<String>,
    /// The output offset this screen reflects.
    pub offset: u64,
}

/// Query of `GET /sessions/:id/screen`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScreenQuery {
    /// `text` (default), `ansi` or `json`.
    pub format: Option<String>,
    /// Rows of scrollback above the screen to include.
    pub scrollback: Option<String>,
}

/// `POST /sessions/:id/wait`: any condition that holds ends the wait.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitRequest {
    /// No output for this many milliseconds.
    #[serde(alias = "idleMs")]
    pub idle_ms: Option<u64>,
    /// A regular expression (Rust `regex` syntax) to find on the screen text, or in the output
    /// after `since` when that is given.
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    /// Match on output after this byte offset instead of the screen.
    pub since: Option<u64>,
    /// The program's end.
    pub exit: Option<bool>,
    /// Give up after this many milliseconds (default 30000, at most 3600000).
    #[serde(alias = "timeoutMs")]
    pub timeout_ms: Option<u64>,
    /// The agent reaching one of these states (sessions that run an agent).
    pub agent: Option<Vec<AgentState>>,
}

/// How a wait ended.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitResult {
    /// `idle`, `match`, `exit`, `agent` or `timeout`.
    pub condition: String,
    pub timed_out: bool,
    /// The output offset at that moment.
    pub offset: u64,
    /// The screen text at that moment.
    pub screen: String,
    /// The text the pattern matched.
    #[serde(rename = "match")]
    pub matched: Option<String>,
    pub status: SessionStatus,
    /// The agent's state at that moment, for sessions that run one.
    pub agent: Option<Agent>,
}

/// A zero-based cursor position.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub struct Cursor {
    pub row: u16,
    pub col: u16,
}

/// `GET /sessions` query.
#[derive(
    Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams, schemars::JsonSchema,
)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub owner: Option<String>,
    pub label: Option<String>,
    pub status: Option<String>,
}

/// `POST /sessions/:id/input`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputRequest {
    /// Text to type as it is.
    pub input: Option<String>,
    /// Text to paste: bracketed when the program enabled bracketed paste and `paste` is true.
    pub text: Option<String>,
    pub paste: Option<bool>,
    /// Keys by name (`Enter`, `C-c`, `Up`, `M-x`, `F5`, single characters…), each its own write.
    pub keys: Option<Vec<String>>,
    /// Send Enter after `input` or `text`; defaults to true for interactive sessions.
    pub enter: Option<bool>,
    /// Answer the permission prompt the agent waits at: yes or no, with the keys its kind
    /// expects (409 when it waits for no permission).
    pub approve: Option<bool>,
}

/// `{"sent": true}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InputSent {
    pub sent: bool,
}

/// `POST /sessions/:id/resize`, and the resize control message of both WebSocket protocols.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    pub cols: i64,
    pub rows: i64,
}

/// `{"killed": true}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Killed {
    pub killed: bool,
    /// Present (true) when `remove=true` forgot the finished session.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// `DELETE /sessions/:id` query.
#[derive(
    Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams, schemars::JsonSchema,
)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Forget the session now — its record, transcript and recording — instead of when it
    /// expires. Only for a finished session (409 while it runs); what is left of its process
    /// session (background jobs) is killed first.
    pub remove: Option<bool>,
}

/// A preset as listed by `GET /presets`: every field of its entry in the presets file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PresetInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: SessionKind,
    pub command: String,
    pub args: Vec<String>,
    pub description: String,
    /// How the task reaches the program: `argument` (the last argument) or `typed` (pasted in
    /// once the program is idle).
    pub task_delivery: TaskDelivery,
}

/// Query of `GET /sessions/:id/ws`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    pub token: Option<String>,
    /// Raw protocol: resume after this output offset.
    pub since: Option<String>,
    /// Raw protocol: `1` turns flow control on from the first byte (otherwise the first `ack`
    /// does).
    pub flow: Option<String>,
}

/// Raw protocol, server → client (text frames).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RawServerMessage {
    /// First message. Binary frames that follow carry output starting at `offset`; when
    /// `snapshot` is true, the first binary frame is instead a redraw of the screen as of
    /// `offset` (not counted in offsets).
    Hello {
        session: Box<SessionInfo>,
        offset: u64,
        snapshot: bool,
    },
    /// Output from `missed` up to `offset` is gone from memory (the client fell behind, or
    /// resumed too late). The next binary frame is a redraw of the screen as of `offset`
    /// (not counted); output continues from `offset`.
    Resync { missed: u64, offset: u64 },
    /// The terminal size changed.
    Resize { cols: u16, rows: u16 },
    /// The program ended; every output byte has been sent. The server then closes with 1000.
    Exit {
        code: Option<i32>,
        signal: Option<String>,
        /// As `SessionInfo::exit_reason`.
        reason: Option<crate::engine::ExitReason>,
        status: SessionStatus,
    },
    /// A message from the client was refused; the connection stays open.
    Error { error: String },
    /// An activity event of this session (`busy`, `idle`, `title`, `bell`), as on `/events`.
    Event { event: Box<SessionEvent> },
}

/// Raw protocol, client → server (text frames). Input is sent as binary frames.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum RawClientMessage {
    Resize {
        cols: i64,
        rows: i64,
    },
    /// Flow control: the client has consumed (rendered) output up to `offset`. After the first
    /// ack the server keeps at most `FLOW_WINDOW` bytes unacknowledged in flight and stops
    /// sending until more are acked; a client that fell out of memory meanwhile is resynced.
    Ack {
        offset: u64,
    },
}

/// Bytes of output a flow-controlled client may have unacknowledged.
pub const FLOW_WINDOW: u64 = 256 * 1024;

/// Compat protocol (no subprotocol), server → client, all text frames.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CompatServerMessage {
    /// First message: the output still in memory.
    #[serde(rename_all = "camelCase")]
    Catchup {
        id: String,
        task: String,
        status: SessionStatus,
        exit_code: Option<i32>,
        data: String,
    },
    /// Output, UTF-8 decoded without splitting characters across messages.
    Stdout { data: String },
    /// The program ended by itself; `duration` is milliseconds since creation.
    Exit { code: Option<i32>, duration: u64 },
    /// The session was killed.
    Killed,
    /// This client fell behind by more than the in-memory output: `skipped` bytes were dropped.
    Gap { skipped: u64 },
    /// A message from the client was refused; the connection stays open.
    Error { error: String },
}

/// Compat protocol, client → server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum CompatClientMessage {
    Stdin { data: String },
    Resize { cols: i64, rows: i64 },
}

/// One event of `GET /events` and `GET /sessions/:id/events` (Server-Sent Events: the SSE `id`
/// and `event` fields are this `id` and `type`; `data` is this JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionEvent {
    /// Grows by one with every event of the server; resume with `Last-Event-ID`.
    pub id: u64,
    pub session: String,
    /// ISO 8601 UTC with milliseconds.
    pub at: String,
    #[serde(flatten)]
    pub kind: SessionEventKind,
}

/// What happened, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SessionEventKind {
    Created,
    /// A server started again took over this running session from the keeper; what it showed
    /// before the restart is unchanged, and its output offsets go on from where they were.
    Adopted,
    /// `length` bytes of output from byte `offset`; with `?data=1`, `data` holds them (base64)
    /// while they are still in memory.
    Output {
        offset: u64,
        length: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
    },
    Busy,
    Idle,
    Title {
        title: String,
    },
    Bell {
        count: u64,
    },
    Resize {
        cols: u16,
        rows: u16,
    },
    Exit {
        status: SessionStatus,
        code: Option<i32>,
        signal: Option<String>,
        /// As `SessionInfo::exit_reason`.
        reason: Option<crate::engine::ExitReason>,
    },
    Removed,
    /// The agent's state changed.
    Agent {
        agent: Agent,
    },
    /// Sent first when the events after the requested id are no longer kept: events from
    /// `oldest` follow. (A client should re-read the sessions it follows.)
    Reset {
        oldest: u64,
    },
}

impl SessionEventKind {
    /// Every `type`, as `?types=` takes them.
    pub const TYPES: &[&str] = &[
        "created", "adopted", "output", "busy", "idle", "title", "bell", "resize", "exit",
        "removed", "agent", "reset",
    ];

    /// Its `type`.
    pub fn type_name(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Query of the event routes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct EventsQuery {
    /// `1` to include output bytes in `output` events.
    pub data: Option<String>,
    /// Only events of these types, comma-separated (e.g. `exit,agent` — or everything but
    /// `output` for a list that follows sessions); all by default. `reset` is always sent.
    pub types: Option<String>,
    /// Resume after this id (for clients that cannot send `Last-Event-ID`).
    pub last_event_id: Option<String>,
}

/// Times on the wire: ISO 8601 UTC with milliseconds, like JavaScript's `Date.toISOString()`
/// (`#[serde(with = "crate::protocol::iso")]` for a `SystemTime` field).
pub mod iso {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );

    /// `t` as the wire writes it.
    pub fn format(t: SystemTime) -> String {
        let t = time::OffsetDateTime::from(t);
        let year = t.year();
        if !(0..=9999).contains(&year) {
            return described(t);
        }
        // Digit by digit: each listing writes a session's last output, end and task delivery
        // times afresh (its start is kept), and walking `FORMAT` took a seventh of the list's
        // time.
        let (hour, minute, second, milli) = t.to_hms_milli();
        let mut text = String::with_capacity(24);
        for (value, digits, then) in [
            (year as u32, 4, '-'),
            (u8::from(t.month()).into(), 2, '-'),
            (t.day().into(), 2, 'T'),
            (hour.into(), 2, ':'),
            (minute.into(), 2, ':'),
            (second.into(), 2, '.'),
            (milli.into(), 3, 'Z'),
        ] {
            for place in (0..digits).rev() {
                text.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
            }
            text.push(then);
        }
        text
    }

    /// `t` formatted by `FORMAT` (the reference; and for years before 0).
    fn described(t: time::OffsetDateTime) -> String {
        t.format(FORMAT).unwrap_or_default()
    }

    pub fn serialize<S: Serializer>(t: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        time::PrimitiveDateTime::parse(&text, FORMAT)
            .map(|t| t.assume_utc().into())
            .map_err(serde::de::Error::custom)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn times_look_like_javascript_and_read_back() {
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
            assert_eq!(format(t), "2023-11-14T22:13:20.123Z");
            let json = serde_json::Value::String(format(t));
            assert_eq!(deserialize(json).unwrap(), t);
        }

        #[test]
        fn times_are_written_as_the_format_describes_them() {
            let mut ms: u64 = 1;
            for _ in 0..10_000 {
                // Any time through 2^47 ms (the year 6429).
                ms = ms
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms >> 17);
                assert_eq!(format(t), described(t.into()), "{ms}");
            }
            let leap = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(951_782_400_007);
            assert_eq!(format(leap), "2000-02-29T00:00:00.007Z");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_is_listed() {
        use SessionEventKind::*;
        let agent: crate::agent::Agent = serde_json::from_value(serde_json::json!({
            "kind": "claude", "state": "idle", "since": "2023-11-14T22:13:20.123Z"
        }))
        .unwrap();
        let samples = [
            Created,
            Adopted,
            Output {
                offset: 0,
                length: 0,
                data: None,
            },
            Busy,
            Idle,
            Title { title: "t".into() },
            Bell { count: 1 },
            Resize { cols: 1, rows: 1 },
            Exit {
                status: SessionStatus::Exited,
                code: None,
                signal: None,
                reason: None,
            },
            Removed,
            Agent { agent },
            Reset { oldest: 1 },
        ];
        for kind in &samples {
            // A new variant fails to compile here until it is sampled above.
            match kind {
                Created
                | Adopted
                | Output { .. }
                | Busy
                | Idle
                | Title { .. }
                | Bell { .. }
                | Resize { .. }
                | Exit { .. }
                | Removed
                | Agent { .. }
                | Reset { .. } => {}
            }
            assert!(SessionEventKind::TYPES.contains(&kind.type_name().as_str()));
        }
        assert_eq!(samples.len(), SessionEventKind::TYPES.len());
    }
}
