//! Server configuration: the original monkeyproof's environment variables (same names and
//! defaults), each also settable as a command-line flag.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};

/// The placeholder token of the original monkeyproof's example config; never accepted.
pub const PLACEHOLDER_TOKEN: &str = "CHANGE_ME_AGENT_WS_TOKEN";
/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Command line and environment.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "monkeyproof",
    version,
    about = "Real terminal sessions as a network service"
)]
pub struct Config {
    /// TCP port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 3200)]
    pub port: u16,

    /// Address to bind.
    #[arg(long, env = "MONKEYPROOF_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Bearer token for every route but /health. Unset: a random one is generated and printed.
    /// On the command line it is readable by every local user (/proc/PID/cmdline): prefer the
    /// environment or --token-file.
    #[arg(long, env = "AGENT_WS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// A file whose first line is the bearer token (instead of AGENT_WS_TOKEN / --token).
    #[arg(long, env = "MONKEYPROOF_TOKEN_FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,

    /// Set when the token came on the command line, to warn about it.
    #[arg(skip)]
    pub token_on_command_line: bool,

    /// Most sessions running at once.
    #[arg(long, env = "MAX_SESSIONS", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_sessions: u64,

    /// Lines of recent output kept in memory per session.
    #[arg(long, env = "OUTPUT_BUFFER_SIZE", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub output_buffer_size: u64,

    /// How long a finished exec/print session's record and transcript are kept (ms).
    #[arg(long, env = "SESSION_TTL_MS", default_value_t = 3_600_000)]
    pub session_ttl_ms: u64,

    /// How long a finished interactive session's record and transcript are kept (ms).
    #[arg(long, env = "INTERACTIVE_SESSION_TTL_MS", default_value_t = 7_200_000)]
    pub interactive_session_ttl_ms: u64,

    /// Time between SIGTERM and SIGKILL when a session is killed (ms).
    #[arg(long, env = "KILL_GRACE_MS", default_value_t = 5000)]
    pub kill_grace_ms: u64,

    /// Extra host names requests may use when bound to loopback (comma-separated); localhost,
    /// 127.0.0.1 and [::1] always work. Other binds accept any Host.
    #[arg(
        long = "allowed-host",
        env = "MONKEYPROOF_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// How often WebSocket peers are pinged (ms); one silent for two intervals is dropped.
    #[arg(long, env = "MONKEYPROOF_WS_PING_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub ws_ping_ms: u64,

    /// What a stop of the server (SIGTERM, SIGINT) does to the running sessions: `keep` leaves
    /// them running for the next server on this data directory, `kill` kills them.
    #[arg(long, env = "MONKEYPROOF_ON_EXIT", value_enum, default_value_t = OnExit::Keep)]
    pub on_exit: OnExit,

    /// URLs (comma-separated) told when an agent starts waiting or goes idle and when a session
    /// exits: JSON POSTs, or ntfy's form for `ntfy+https://…` URLs (see the README's Agents).
    #[arg(long, env = "MONKEYPROOF_WEBHOOK", value_delimiter = ',')]
    pub webhook: Vec<String>,

    /// A session with output within this many ms is `busy`, else `idle`.
    #[arg(long, env = "MONKEYPROOF_BUSY_MS", default_value_t = 1000)]
    pub busy_ms: u64,

    /// Most finished sessions kept; beyond it the oldest are removed before their TTL.
    #[arg(long, env = "MONKEYPROOF_MAX_FINISHED_SESSIONS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub max_finished_sessions: u64,

    /// Most connections open at once from one client address (more are refused at once).
    #[arg(long, env = "MONKEYPROOF_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections_per_client: u64,

    /// How long a client may take to send a request's headers once it started (ms).
    #[arg(long, env = "MONKEYPROOF_HEADER_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_ms: u64,

    /// How long a connection may sit with no request in flight and nothing sent (ms).
    #[arg(long, env = "MONKEYPROOF_IDLE_TIMEOUT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_ms: u64,

    /// A presets file replacing the built-in presets.
    #[arg(long, env = "MONKEYPROOF_PRESETS")]
    pub presets: Option<PathBuf>,

    /// Where transcripts are kept [default: $XDG_STATE_HOME/monkeyproof,
    /// ~/.local/state/monkeyproof, or /tmp/monkeyproof-UID without HOME].
    #[arg(long, env = "MONKEYPROOF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Extra origins allowed to open WebSockets (comma-separated, e.g. https://ops.example.com).
    #[arg(
        long = "allowed-origin",
        env = "MONKEYPROOF_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Give each session a cgroup with the limits below (when the server may make cgroups).
    #[arg(long, env = "MONKEYPROOF_CGROUPS", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub cgroups: bool,

    /// A session's memory limit when its request gives none: bytes, or with a K, M, G or T
    /// suffix (powers of 1024), or `max` for none [default: half of the machine's memory].
    #[arg(long, env = "MONKEYPROOF_MEMORY_MAX", value_parser = memory_max)]
    pub memory_max: Option<MemoryMax>,

    /// A session's limit on processes and threads when its request gives none.
    #[arg(long, env = "MONKEYPROOF_PIDS_MAX", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(crate::engine::cgroup::PIDS_MAX_RANGE))]
    pub pids_max: u64,

    /// A session's CPU weight when its request gives none (100 is a normal process's share).
    #[arg(long, env = "MONKEYPROOF_CPU_WEIGHT", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(crate::engine::cgroup::CPU_WEIGHT_RANGE))]
    pub cpu_weight: u64,
}

/// `MONKEYPROOF_MEMORY_MAX`: a number of bytes, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryMax(pub Option<u64>);

fn memory_max(text: &str) -> Result<MemoryMax, String> {
    if text == "max" {
        return Ok(MemoryMax(None));
    }
    memory_bytes(text).map(|n| MemoryMax(Some(n)))
}

/// An amount of memory for a session's limit: bytes, or with a K, M, G or T suffix (powers of
/// 1024), within `cgroup::MEMORY_MAX_RANGE`.
pub fn memory_bytes(text: &str) -> Result<u64, String> {
    let (digits, unit) = match text.strip_suffix(['K', 'M', 'G', 'T']) {
        Some(digits) => (digits, text.as_bytes()[text.len() - 1]),
        None => (text, b'B'),
    };
    let shift = match unit {
        b'K' => 10,
        b'M' => 20,
        b'G' => 30,
        b'T' => 40,
        _ => 0,
    };
    let range = crate::engine::cgroup::MEMORY_MAX_RANGE;
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!("expected bytes (4M to 1024T, with an optional K/M/G/T suffix), not {text:?}")
        })
}

/// The token in force and whether it was generated.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: String,
    pub generated: bool,
}

impl Config {
    /// The configuration from `args` (the program's name first) and the environment; exits
    /// with clap's message when they are malformed.
    pub fn from_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Self {
        let matches = Self::command().get_matches_from(args);
        let mut config = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        config.token_on_command_line =
            matches.value_source("token") == Some(ValueSource::CommandLine);
        config
    }

    /// Checks what clap cannot: the token (read from `token_file` when given).
    pub fn token(&self) -> Result<Token, String> {
        let from_file = match &self.token_file {
            Some(path) => Some(read_token_file(path)?),
            None => None,
        };
        match from_file.as_deref().or(self.token.as_deref()) {
            None | Some("") => Ok(Token {
                value: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(rand::random::<[u8; 32]>()),
                generated: true,
            }),
            Some(PLACEHOLDER_TOKEN) => Err(format!(
                "AGENT_WS_TOKEN is the placeholder {PLACEHOLDER_TOKEN}: set a real secret \
                 (or unset it to have one generated)"
            )),
            Some(t) if t.chars().count() < MIN_TOKEN_LEN => Err(format!(
                "AGENT_WS_TOKEN is shorter than {MIN_TOKEN_LEN} characters: use a longer secret"
            )),
            Some(t) => Ok(Token {
                value: t.to_owned(),
                generated: false,
            }),
        }
    }

    /// The data directory in force.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        let state_home = std::env::var_os("XDG_STATE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".local/state"))
            });
        match state_home {
            Some(dir) => dir.join("monkeyproof"),
            // Named after the user, in a sticky directory: another user may create it first,
            // but then it is not ours and the server refuses it (see engine::data_dir).
            None => std::env::temp_dir().join(format!("monkeyproof-{}", nix::unistd::geteuid())),
        }
    }

    /// The `Host` allow-list: on a loopback bind (where DNS rebinding is the danger) the loopback
    /// names plus the configured ones; elsewhere none.
    pub fn allowed_hosts(&self) -> Option<Vec<String>> {
        self.bind.is_loopback().then(|| {
            ["localhost", "127.0.0.1", "[::1]"]
                .iter()
                .map(|h| h.to_string())
                .chain(self.allowed_hosts.iter().cloned())
                .collect()
        })
    }

    /// The limits sessions get by default, or `None` with cgroups off.
    pub fn default_limits(&self) -> Option<crate::engine::cgroup::Limits> {
        let half_of_memory = || {
            // SAFETY: sysconf only reads system values.
            let (pages, page) = unsafe {
                (
                    libc::sysconf(libc::_SC_PHYS_PAGES),
                    libc::sysconf(libc::_SC_PAGESIZE),
                )
            };
            (pages > 0 && page > 0).then(|| pages as u64 * page as u64 / 2)
        };
        self.cgroups.then(|| crate::engine::cgroup::Limits {
            memory_max: self.memory_max.map_or_else(half_of_memory, |m| m.0),
            pids_max: Some(self.pids_max),
            cpu_weight: self.cpu_weight,
        })
    }

    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }
}

/// Variables of the server's environment that never reach a session's program.
/// What a stop of the server does to the running sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnExit {
    /// They keep running, held by the keeper, until a server started again takes them over.
    Keep,
    /// They are killed, as the original monkeyproof did.
    Kill,
}

pub const SECRET_ENV_VARS: &[&str] = &[
    "AGENT_WS_TOKEN",
    "MONKEYPROOF_TOKEN_FILE",
    // Webhook URLs often carry a secret (a token in the path or query).
    "MONKEYPROOF_WEBHOOK",
];

/// The token in a token file: its first line, trimmed. The file should be readable by its owner
/// only; a warning says so otherwise.
pub fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the token file can be read by others than its owner: chmod 600 it"
        );
    }
    let token = text.lines().next().unwrap_or("").trim().to_owned();
    if token.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(token: Option<&str>) -> Result<Token, String> {
        let mut config = Config::parse_from(["monkeyproof"]);
        config.token = token.map(str::to_owned);
        config.token()
    }

    #[test]
    fn memory_amounts() {
        assert_eq!(memory_max("max"), Ok(MemoryMax(None)));
        assert_eq!(memory_max("512M"), Ok(MemoryMax(Some(512 << 20))));
        assert_eq!(memory_max("8G"), Ok(MemoryMax(Some(8 << 30))));
        assert_eq!(memory_max("4194304"), Ok(MemoryMax(Some(4 << 20))));
        for bad in ["", "1K", "12X", "-1", "M", "99999999999T"] {
            assert!(memory_max(bad).is_err(), "{bad}");
        }
        let config = Config::from_args(["monkeyproof".into()]);
        let limits = config.default_limits().unwrap();
        assert!(limits.memory_max.unwrap() > 1 << 20);
        assert_eq!((limits.pids_max, limits.cpu_weight), (Some(4096), 100));
    }

    #[test]
    fn token_rules() {
        let generated = with_token(None).unwrap();
        assert!(generated.generated && generated.value.len() >= 40);
        assert_ne!(generated.value, with_token(None).unwrap().value);
        assert!(with_token(Some(PLACEHOLDER_TOKEN)).is_err());
        assert!(with_token(Some("short-token")).is_err());
        assert_eq!(
            with_token(Some("0123456789abcdef")).unwrap().value,
            "0123456789abcdef"
        );
    }
}
