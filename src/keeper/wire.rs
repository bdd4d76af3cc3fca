//! What the server and the keeper say to each other: one message per `SOCK_SEQPACKET` packet
//! (boundaries kept by the kernel) — JSON, with PTY master descriptors riding along as
//! `SCM_RIGHTS`, except output, which is binary (a small header and the bytes as read). The
//! keeper is meant to outlive many servers, so this vocabulary only grows: `Hello` carries the
//! version, and a keeper refuses a server that speaks another.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

/// The protocol both sides must speak.
pub const VERSION: u32 = 2;

/// The largest packet either side sends or accepts (a spawn carries the command line and the
/// whole environment). Linux lets an unprivileged sender buffer about 200 KiB.
pub const MAX_PACKET: usize = 192 * 1024;

/// The socket, below the data directory.
pub const SOCKET: &str = "keeper.sock";

/// Server → keeper.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Request {
    Hello {
        version: u32,
    },
    /// Start a program on a new PTY; answered `Spawned` (with the master) or `Failed`. Its
    /// output is not read before `Watch`.
    Spawn(Spawn),
    /// Every session held, one `Held` each (with its master), then `End`.
    List,
    /// Read the session's output from now on: appended to its transcript, then sent as
    /// `Output` packets, until the PTY has no more (`Closed`) or `Unwatch`.
    Watch {
        id: String,
    },
    /// Stop reading the session's output; answered `Closed` after the last `Output`.
    Unwatch {
        id: String,
    },
    /// Hold (and read, once watched) the PTY attached, of a program another keeper started and
    /// lost (it died): this keeper is not its parent, so it never reports its end. No answer.
    Adopt {
        id: String,
        pid: u32,
        transcript: String,
        /// Bytes of output so far.
        offset: u64,
    },
    /// The session's processes are gone: reap its leader, close its PTY, forget it. No answer.
    Reap {
        id: String,
    },
    /// Somebody typed into the session: its output goes ahead of other sessions' bulk output
    /// for a while (see `bulk.rs`). No answer. Only to a keeper whose `Hello` says
    /// `takesTyped` (an older one would not know it).
    Typed {
        id: String,
    },
}

/// How to start a program.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spawn {
    pub id: String,
    pub argv: Vec<String>,
    pub cwd: String,
    /// The program's whole environment, as `NAME=value` byte strings in base64.
    pub env: Vec<String>,
    pub cols: u16,
    pub rows: u16,
    /// The file (created by the server) the output is appended to.
    pub transcript: String,
    /// Files of its session's cgroups (`cgroup.procs`, or v1's `tasks`) the program writes
    /// itself into before it runs.
    #[serde(default)]
    pub cgroups: Vec<String>,
}

/// Keeper → server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Reply {
    Hello {
        version: u32,
        pid: u32,
        /// It takes `Typed` (absent from keepers older than it, which speak the same version).
        #[serde(default, rename = "takesTyped")]
        takes_typed: bool,
    },
    Spawned {
        id: String,
        pid: u32,
    },
    /// `errno` is the OS error, when there was one.
    Failed {
        id: String,
        message: String,
        errno: Option<i32>,
    },
    Held {
        id: String,
        pid: u32,
        exit: Option<Exit>,
        /// Bytes of output read so far: where the transcript ends and output goes on.
        offset: u64,
        /// Adopted from a keeper that died: its end is not reported.
        orphan: bool,
    },
    End,
    /// Sent unasked, once, when a session's leader has ended (it stays unreaped until `Reap`).
    /// Output read before the exit comes before it.
    Exited {
        id: String,
        exit: Exit,
    },
    /// No more `Output` for the session: every terminal side is closed, or it was unwatched.
    Closed {
        id: String,
    },
}

/// A chunk of a session's output, in its transcript already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub id: String,
    /// The chunk's first byte's offset in the session's output.
    pub offset: u64,
    /// When it was read, in microseconds since the Unix epoch.
    pub at_us: u64,
    pub bytes: Vec<u8>,
}

/// What the server receives: a message, or output.
#[derive(Debug)]
pub enum Incoming {
    Reply(Reply),
    Output(Output),
}

/// The first byte of an `Output` packet (a JSON message starts with `{`).
const OUTPUT_TAG: u8 = 0;

/// The header of an `Output` packet: tag, id length, id, offset, time. Sent ahead of the bytes
/// in one packet (see `send_output`).
pub fn output_header(id: &str, offset: u64, at_us: u64) -> Vec<u8> {
    let id = &id.as_bytes()[..id.len().min(255)];
    let mut header = Vec::with_capacity(18 + id.len());
    header.push(OUTPUT_TAG);
    header.push(id.len() as u8);
    header.extend_from_slice(id);
    header.extend_from_slice(&offset.to_le_bytes());
    header.extend_from_slice(&at_us.to_le_bytes());
    header
}

fn parse_output(packet: &[u8]) -> Option<Output> {
    let (&id_len, rest) = packet.get(1..)?.split_first()?;
    let (id, rest) = rest.split_at_checked(id_len as usize)?;
    let (offset, rest) = rest.split_first_chunk::<8>()?;
    let (at_us, bytes) = rest.split_first_chunk::<8>()?;
    Some(Output {
        id: String::from_utf8(id.to_vec()).ok()?,
        offset: u64::from_le_bytes(*offset),
        at_us: u64::from_le_bytes(*at_us),
        bytes: bytes.to_vec(),
    })
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    /// The signal's name, e.g. `SIGKILL`.
    pub signal: Option<String>,
}

/// Sends `message` with `fds` attached, as one packet, waiting for room.
pub fn send(socket: RawFd, message: &impl Serialize, fds: &[RawFd]) -> std::io::Result<()> {
    send_packet(socket, &[&encode(message)?], fds, true)
}

/// `message` as a packet's body.
pub fn encode(message: &impl Serialize) -> std::io::Result<Vec<u8>> {
    let body = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    if body.len() > MAX_PACKET {
        return Err(std::io::Error::other(format!(
            "message of {} bytes is over the keeper's limit of {MAX_PACKET}",
            body.len()
        )));
    }
    Ok(body)
}

/// Sends `parts` as one packet with `fds` attached. Unless `wait`, a full socket is
/// `ErrorKind::WouldBlock` and nothing is sent.
pub fn send_packet(
    socket: RawFd,
    parts: &[&[u8]],
    fds: &[RawFd],
    wait: bool,
) -> std::io::Result<()> {
    let iov: Vec<IoSlice> = parts.iter().map(|part| IoSlice::new(part)).collect();
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    let flags = if wait {
        MsgFlags::MSG_NOSIGNAL
    } else {
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT
    };
    loop {
        match sendmsg::<()>(socket, &iov, cmsgs, flags, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Receives one message and the descriptors attached (close-on-exec). `Ok(None)` when the
/// other side has gone.
pub fn receive<T: for<'de> Deserialize<'de>>(
    socket: RawFd,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut body = vec![0u8; MAX_PACKET];
    let Some((len, fds)) = receive_packet(socket, &mut body)? else {
        return Ok(None);
    };
    let message = serde_json::from_slice(&body[..len]).map_err(std::io::Error::other)?;
    Ok(Some((message, fds)))
}

/// Receives one packet from the keeper into `body` (at least `MAX_PACKET` long): a message or
/// output. `Ok(None)` when the keeper has gone.
pub fn receive_incoming(
    socket: RawFd,
    body: &mut [u8],
) -> std::io::Result<Option<(Incoming, Vec<OwnedFd>)>> {
    let Some((len, fds)) = receive_packet(socket, body)? else {
        return Ok(None);
    };
    let packet = &body[..len];
    let incoming = if packet[0] == OUTPUT_TAG {
        Incoming::Output(
            parse_output(packet).ok_or_else(|| std::io::Error::other("bad output packet"))?,
        )
    } else {
        Incoming::Reply(serde_json::from_slice(packet).map_err(std::io::Error::other)?)
    };
    Ok(Some((incoming, fds)))
}

/// Receives one packet into `body`: its length and the descriptors attached. `Ok(None)` when
/// the other side has gone.
fn receive_packet(
    socket: RawFd,
    body: &mut [u8],
) -> std::io::Result<Option<(usize, Vec<OwnedFd>)>> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(body)];
        match recvmsg::<()>(
            socket,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs() {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        // SAFETY: the kernel just installed these descriptors for us alone.
                        fds.extend(
                            raw.into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                    return Err(std::io::Error::other("oversized keeper message"));
                }
                break (msg.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        }
    };
    if len == 0 {
        return Ok(None);
    }
    Ok(Some((len, fds)))
}

/// A name=value pair of the environment as the wire carries it.
pub fn encode_env(name: &[u8], value: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([name, b"=", value].concat())
}

/// The bytes of an `encode_env` string.
pub fn decode_env(pair: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(pair).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keeper_older_than_typed_is_not_told_of_keystrokes() {
        let older: Reply = serde_json::from_str(r#"{"type":"hello","version":2,"pid":7}"#).unwrap();
        assert!(matches!(
            older,
            Reply::Hello {
                takes_typed: false,
                ..
            }
        ));
        let newer = Reply::Hello {
            version: VERSION,
            pid: 7,
            takes_typed: true,
        };
        assert!(
            serde_json::to_string(&newer)
                .unwrap()
                .contains(r#""takesTyped":true"#)
        );
        let typed = serde_json::to_string(&Request::Typed { id: "a".into() }).unwrap();
        assert_eq!(typed, r#"{"type":"typed","id":"a"}"#);
    }
}
