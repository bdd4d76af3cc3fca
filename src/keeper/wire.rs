//! What the server and the keeper say to each other: one JSON message per `SOCK_SEQPACKET`
//! packet (boundaries kept by the kernel), with PTY master descriptors riding along as
//! `SCM_RIGHTS`. The keeper is meant to outlive many servers, so this vocabulary only grows:
//! `Hello` carries the version, and a keeper refuses a server that speaks another.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

/// The protocol both sides must speak.
pub const VERSION: u32 = 1;

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
    /// Start `argv` on a new PTY; answered `Spawned` (with the master) or `Failed`.
    #[serde(rename_all = "camelCase")]
    Spawn {
        id: String,
        argv: Vec<String>,
        cwd: String,
        /// The program's whole environment, as `NAME=value` byte strings in base64.
        env: Vec<String>,
        cols: u16,
        rows: u16,
    },
    /// Every session held, one `Held` each (with its master), then `End`.
    List,
    /// The session's processes are gone: reap its leader, close its PTY, forget it. No answer.
    Reap {
        id: String,
    },
}

/// Keeper → server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Reply {
    Hello {
        version: u32,
        pid: u32,
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
    },
    End,
    /// Sent unasked, once, when a session's leader has ended (it stays unreaped until `Reap`).
    Exited {
        id: String,
        exit: Exit,
    },
}

/// How a program ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: Option<i32>,
    /// The signal's name, e.g. `SIGKILL`.
    pub signal: Option<String>,
}

/// Sends `message` with `fds` attached, as one packet.
pub fn send(socket: RawFd, message: &impl Serialize, fds: &[RawFd]) -> std::io::Result<()> {
    let body = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    if body.len() > MAX_PACKET {
        return Err(std::io::Error::other(format!(
            "message of {} bytes is over the keeper's limit of {MAX_PACKET}",
            body.len()
        )));
    }
    let iov = [IoSlice::new(&body)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(socket, &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Receives one packet: its message and the descriptors attached (close-on-exec). `Ok(None)`
/// when the other side has gone.
pub fn receive<T: for<'de> Deserialize<'de>>(
    socket: RawFd,
) -> std::io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut body = vec![0u8; MAX_PACKET];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut body)];
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
    let message = serde_json::from_slice(&body[..len]).map_err(std::io::Error::other)?;
    Ok(Some((message, fds)))
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

/// The raw descriptor of `fd`, for `send`.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}
