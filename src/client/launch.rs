//! Starting a server of one's own, as the tests and the benchmark do: the binary as a child
//! process, its address read from the line where it says it listens.

use std::io::{self, BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

/// What the server prints before its address, on its first line.
pub const LISTENING: &str = "listening on http://";

/// A server started by `launch`.
pub struct Launched {
    pub child: Child,
    /// `host:port`.
    pub addr: String,
    /// The rest of what it prints: read it (or let it go to a sink), or a full pipe will
    /// block the server.
    pub stdout: Lines<BufReader<ChildStdout>>,
}

/// Starts `command`, a `monkeyproof` server (its stdout piped here), and reads its output up
/// to where it says it listens. A server that exits first is an error.
pub fn launch(mut command: Command) -> io::Result<Launched> {
    let mut child = command.stdout(Stdio::piped()).spawn()?;
    let Some(stdout) = child.stdout.take() else {
        return Err(io::Error::other("the server's output is not piped"));
    };
    let mut stdout = BufReader::new(stdout).lines();
    loop {
        let line = match stdout.next() {
            Some(line) => line?,
            None => {
                let status = child.wait()?;
                return Err(io::Error::other(format!(
                    "the server exited ({status}) before it listened"
                )));
            }
        };
        if let Some(addr) = line.split(LISTENING).nth(1) {
            return Ok(Launched {
                child,
                addr: addr.trim().to_owned(),
                stdout,
            });
        }
    }
}
