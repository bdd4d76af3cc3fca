//! `monkeyproof attach ID`: this terminal on a session, as tmux attaches. Raw mode; the raw
//! WebSocket protocol (full fidelity: redraws on attach, vim and Claude Code as they are); the
//! session follows this window's size (SIGWINCH); a detach key (Ctrl-\ by default, shown once)
//! leaves the session running and exits 0; `--read-only` sends nothing; when the program ends,
//! attach exits with its status; a dropped connection reconnects and resumes at its offset,
//! neither repeating nor losing output. The terminal is restored on every way out (a guard's
//! drop, which also runs on panics; SIGTERM, SIGHUP and SIGINT end the loop first).

use std::io::Write;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::tungstenite::Message;

use super::Server;
use crate::client::Client;
use crate::protocol::{RawClientMessage, RawServerMessage};

/// `monkeyproof attach`'s options.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// The session's id.
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// Watch only: send no keys and no size.
    #[arg(long)]
    pub read_only: bool,
    /// The key that detaches (a control key: C-\, C-], C-a … C-z).
    #[arg(long, default_value = "C-\\")]
    pub detach_key: String,
}

/// How an attachment ended.
enum End {
    Detached,
    /// The program ended with this exit status (128 + signal number for a signal).
    Exited(i32),
    /// Stopped by a signal to `attach` itself.
    Stopped,
}

/// Puts the terminal in raw mode until dropped.
struct RawMode;

impl RawMode {
    fn enter() -> Result<Self, String> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(
                "attach needs a terminal (stdin is not one); to read a session from a script, \
                 use `screen`, `logs -f` or `wait`"
                    .into(),
            );
        }
        crossterm::terminal::enable_raw_mode()
            .map_err(|e| format!("cannot put the terminal in raw mode: {e}"))?;
        Ok(Self)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// The byte a detach key name stands for.
fn detach_byte(name: &str) -> Result<u8, String> {
    let key = name.strip_prefix("C-").or_else(|| name.strip_prefix("^"));
    match key.map(|k| k.as_bytes()) {
        Some([c @ b'a'..=b'z']) => Ok(c - b'a' + 1),
        Some([c @ b'A'..=b'Z']) => Ok(c - b'A' + 1),
        Some([b'\\']) => Ok(0x1c),
        Some([b']']) => Ok(0x1d),
        Some([b'^']) => Ok(0x1e),
        Some([b'_']) => Ok(0x1f),
        _ => Err(format!(
            "--detach-key {name:?}: give a control key, e.g. C-\\ or C-]"
        )),
    }
}

/// Attaches; the exit status.
pub async fn run(server: &Server, args: AttachArgs) -> Result<i32, String> {
    let client = Client::new(&server.url, &server.token);
    let detach = detach_byte(&args.detach_key)?;
    // Listened for before the banner: a signal sent once it shows must find the handlers (it
    // killed attach outright, terminal still raw, when it came a moment too soon).
    let mut stop = [
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
        signal(SignalKind::interrupt()),
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| e.to_string())?;
    let mut winch = signal(SignalKind::window_change()).map_err(|e| e.to_string())?;
    let raw = RawMode::enter()?;
    eprint!(
        "[attached to {}; detach with {}]\r\n",
        args.id, args.detach_key
    );
    let mut stdin = tokio::io::stdin();
    let mut offset: Option<u64> = None;
    let mut backoff = Duration::from_millis(250);
    let end = 'connections: loop {
        let socket = match client.raw_ws(&args.id, offset).await {
            Ok(socket) => socket,
            // Refused outright (a wrong id or token): no point retrying.
            Err(err) if err.status.is_some() => {
                drop(raw);
                return Err(err.to_string());
            }
            Err(_) if offset.is_some() => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(err) => {
                drop(raw);
                return Err(err.to_string());
            }
        };
        backoff = Duration::from_millis(250);
        let (mut to_server, mut from_server) = socket.split();
        let resize = || {
            let (cols, rows) = crossterm::terminal::size().ok()?;
            let resize = RawClientMessage::Resize {
                cols: cols.into(),
                rows: rows.into(),
            };
            Some(Message::text(serde_json::to_string(&resize).ok()?))
        };
        if !args.read_only
            && let Some(message) = resize()
        {
            let _ = to_server.send(message).await;
        }
        // The next binary frame is a redraw, not counted in offsets.
        let mut redraw_next = false;
        let mut keys = [0u8; 4096];
        loop {
            tokio::select! {
                frame = from_server.next() => match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        if redraw_next {
                            redraw_next = false;
                        } else if let Some(at) = offset.as_mut() {
                            *at += bytes.len() as u64;
                        }
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&bytes);
                        let _ = out.flush();
                    }
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<RawServerMessage>(&text) {
                        Ok(RawServerMessage::Hello { offset: at, snapshot, .. }) => {
                            offset = Some(at);
                            redraw_next = snapshot;
                        }
                        Ok(RawServerMessage::Resync { offset: at, .. }) => {
                            offset = Some(at);
                            redraw_next = true;
                        }
                        Ok(RawServerMessage::Exit { code, signal, .. }) => {
                            let status = match (code, signal) {
                                (Some(code), _) => code,
                                (None, Some(name)) => name
                                    .parse::<nix::sys::signal::Signal>()
                                    .map_or(1, |s| 128 + s as i32),
                                (None, None) => 1,
                            };
                            break 'connections End::Exited(status);
                        }
                        _ => {}
                    },
                    Some(Ok(_)) => {}
                    // Dropped: reconnect and resume at the offset.
                    Some(Err(_)) | None => continue 'connections,
                },
                read = stdin.read(&mut keys) => {
                    let n = match read {
                        Ok(0) | Err(_) => break 'connections End::Detached,
                        Ok(n) => n,
                    };
                    let typed = &keys[..n];
                    let (before, detached) = match typed.iter().position(|&b| b == detach) {
                        Some(at) => (&typed[..at], true),
                        None => (typed, false),
                    };
                    if !args.read_only && !before.is_empty() {
                        let _ = to_server.send(Message::binary(before.to_vec())).await;
                    }
                    if detached {
                        let _ = to_server.close().await;
                        break 'connections End::Detached;
                    }
                }
                _ = winch.recv() => {
                    if !args.read_only && let Some(message) = resize() {
                        let _ = to_server.send(message).await;
                    }
                }
                _ = async {
                    let waits = stop.iter_mut().map(|s| Box::pin(s.recv()));
                    futures_util::future::select_all(waits).await
                } => break 'connections End::Stopped,
            }
        }
    };
    drop(raw);
    Ok(match end {
        End::Detached => {
            eprintln!("[detached from {}; it runs on]", args.id);
            0
        }
        End::Exited(status) => status,
        End::Stopped => 130,
    })
}
