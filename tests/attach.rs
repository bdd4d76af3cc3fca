//! `monkeyproof attach`, driven as a person would: in a real pseudo-terminal, typing, resizing
//! the outer terminal, detaching, reattaching, watching read-only, and the program's exit status.

mod common;

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// `monkeyproof attach ARGS` in a PTY of its own: what it printed so far, keys to type, and its
/// end.
struct Attached {
    pair: portable_pty::PtyPair,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    output: mpsc::Receiver<Vec<u8>>,
    seen: Vec<u8>,
}

impl Attached {
    fn start(server: &Server, args: &[&str]) -> Self {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: 24,
                cols: 80,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap();
        let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_monkeyproof"));
        command.arg("attach");
        command.args(args);
        command.env("MONKEYPROOF_URL", server.url(""));
        command.env("AGENT_WS_TOKEN", TOKEN);
        let child = pair.slave.spawn_command(command).unwrap();
        let mut reader = pair.master.try_clone_reader().unwrap();
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let writer = pair.master.take_writer().unwrap();
        Self {
            pair,
            child,
            writer,
            output,
            seen: Vec::new(),
        }
    }

    /// Waits until the outer terminal has shown `text`.
    fn expect(&mut self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !contains(&self.seen, text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.extend(bytes),
                Err(_) => panic!(
                    "never saw {text:?}; saw {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    fn type_(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    /// Waits for `attach` to exit; its status.
    fn exit_code(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // What it printed last is still on its way from the PTY.
                while let Ok(bytes) = self.output.recv_timeout(Duration::from_millis(200)) {
                    self.seen.extend(bytes);
                }
                return status.exit_code();
            }
            assert!(Instant::now() < deadline, "attach did not exit");
            while let Ok(bytes) = self.output.try_recv() {
                self.seen.extend(bytes);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_types_follows_the_window_detaches_and_exits_with_the_programs_status() {
    let server = Server::start();
    let session = server
        .exec("PS1='at$ ' exec bash --norc --noprofile -i")
        .await;
    server.wait_for_screen(&session.about.id, "at$").await;
    let id = session.about.id.clone();

    let mut attached = Attached::start(&server, &[&id]);
    attached.expect("detach with C-\\");
    attached.expect("at$ ");
    // The session takes this terminal's size, and follows it.
    attached.type_(b"stty size\r");
    attached.expect("24 80");
    attached
        .pair
        .master
        .resize(PtySize {
            rows: 30,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    eventually("the session to follow the window", || async {
        (server.detail(&id).await.info.now.cols == 100).then_some(())
    })
    .await;
    attached.type_(b"stty size\r");
    attached.expect("30 100");
    // Ctrl-\ detaches: exit 0, the session runs on.
    attached.type_(b"echo before-detach\r");
    attached.expect("before-detach\r\n");
    attached.type_(&[0x1c]);
    assert_eq!(attached.exit_code(), 0);
    assert!(contains(&attached.seen, "[detached"));
    assert_eq!(
        server.detail(&id).await.info.now.status,
        monkeyproof::protocol::SessionStatus::Running
    );

    // Read-only: the screen is redrawn, keys go nowhere.
    let mut watcher = Attached::start(&server, &["--read-only", &id]);
    watcher.expect("before-detach");
    let before = server.detail(&id).await.info.now.output_bytes;
    watcher.type_(b"echo from-watcher\r");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.detail(&id).await.info.now.output_bytes, before);
    watcher.type_(&[0x1c]);
    assert_eq!(watcher.exit_code(), 0);

    // Reattached, the program's end ends attach with its status.
    let mut again = Attached::start(&server, &[&id]);
    again.expect("before-detach");
    again.type_(b"exit 7\r");
    assert_eq!(again.exit_code(), 7);
}

#[tokio::test]
async fn attach_to_an_unknown_session_says_so_and_leaves_the_terminal_alone() {
    let server = Server::start();
    let mut attached = Attached::start(&server, &["no-such-session"]);
    assert_eq!(attached.exit_code(), 1);
    attached.expect("Not found (404)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_resumed_with_nothing_lost_or_repeated() {
    if !std::path::Path::new("/usr/bin/ss").exists() && !std::path::Path::new("/bin/ss").exists() {
        eprintln!("skipped: `ss` (iproute2) cuts the connection in this test");
        return;
    }
    let server = Server::start();
    let session = server
        .exec("read go; for i in $(seq 1 200); do echo line-$i; sleep 0.01; done; exec cat")
        .await;
    let mut attached = Attached::start(&server, &[&session.about.id]);
    attached.expect("detach with");
    attached.type_(b"\r");
    attached.expect("line-20\r\n");
    // Cut every connection to the server's port, as a network failure would.
    let port = server
        .url("")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let cut = std::process::Command::new("ss")
        .args(["-K", "dst", "127.0.0.1", "dport", "=", &format!(":{port}")])
        .output()
        .unwrap();
    assert!(cut.status.success(), "{cut:?}");
    assert!(
        String::from_utf8_lossy(&cut.stdout).contains("ESTAB"),
        "no connection was cut: {cut:?}"
    );
    attached.expect("line-200\r\n");
    let seen = String::from_utf8_lossy(&attached.seen).into_owned();
    for i in 1..=200 {
        assert_eq!(
            seen.matches(&format!("line-{i}\r\n")).count(),
            1,
            "line-{i} in {seen:?}"
        );
    }
    attached.type_(&[0x1c]);
    assert_eq!(attached.exit_code(), 0);
}

#[tokio::test]
async fn a_signal_to_attach_restores_the_terminal() {
    let server = Server::start();
    let session = server.exec("cat").await;
    let mut attached = Attached::start(&server, &[&session.about.id]);
    attached.expect("detach with");
    let canonical = |attached: &Attached| {
        let termios = attached.pair.master.get_termios().expect("termios");
        termios.local_flags.bits() & libc::ICANON != 0
    };
    assert!(
        !canonical(&attached),
        "attach puts the terminal in raw mode"
    );
    let pid = attached.child.process_id().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(attached.exit_code(), 130);
    assert!(canonical(&attached), "the terminal is restored");
}
