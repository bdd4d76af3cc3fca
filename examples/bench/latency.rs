//! Keystroke echo through the server against bash in a bare PTY, the loopback WebSocket floor
//! and ttyd (`TTYD=/path/to/ttyd`), idle and with 20 sessions flooding (figure 2).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use portable_pty::CommandBuilder;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::server::Server;
use crate::throughput::bare_pty;
use crate::{Sizes, percentile, row};

/// bash's line editor in a bare PTY: the master, and bash.
fn bare_bash() -> (
    Box<dyn portable_pty::MasterPty + Send>,
    Box<dyn portable_pty::Child + Send + Sync>,
) {
    let pair = bare_pty();
    let mut cmd = CommandBuilder::new("bash");
    cmd.args(["--norc", "--noprofile", "-i"]);
    cmd.env("PS1", "$ ");
    let child = pair.slave.spawn_command(cmd).unwrap();
    (pair.master, child)
}

/// The baseline: bytes written to bash's line editor in a bare PTY and read back as its echo.
pub(crate) fn bare_pty_latency(keys: usize) -> Vec<Duration> {
    let (master, mut child) = bare_bash();
    let mut reader = master.try_clone_reader().unwrap();
    let mut writer = master.take_writer().unwrap();
    let mut buf = [0u8; 4096];
    std::thread::sleep(Duration::from_millis(300));
    let _ = reader.read(&mut buf);
    let mut samples = Vec::new();
    for i in 0..keys + 100 {
        let key = b'a' + (i % 26) as u8;
        let started = Instant::now();
        writer.write_all(&[key]).unwrap();
        loop {
            let n = reader.read(&mut buf).unwrap();
            if buf[..n].contains(&key) {
                break;
            }
        }
        if i >= 100 {
            samples.push(started.elapsed());
        }
        if i % 50 == 49 {
            writer.write_all(b"\x15").unwrap(); // Ctrl-U keeps the line short
            let _ = reader.read(&mut buf);
        }
    }
    let _ = child.kill();
    samples
}

/// The floor under the keystroke figure: one byte over a loopback WebSocket to an echo server
/// on its own runtime (as the real server is), and back: no PTY, no program. The echo is a task
/// spawned on the runtime's workers, as the server's connections are: polled by `block_on`'s
/// own thread instead, every message cost a wake-up from a worker to that thread.
pub(crate) fn websocket_echo_latency(keys: usize) -> Vec<Duration> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let echo = runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_binary() && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let _ = runtime.block_on(echo);
    });
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client.block_on(async move {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), None, true)
                .await
                .unwrap();
        let mut samples = Vec::new();
        for i in 0..keys + 100 {
            let started = Instant::now();
            ws.send(Message::Binary(vec![b'a'].into())).await.unwrap();
            ws.next().await;
            if i >= 100 {
                samples.push(started.elapsed());
            }
        }
        samples
    })
}

/// The best a server of this stack could do: a WebSocket bridged to bash's PTY on one thread
/// (tokio's current-thread runtime, the master in its poll, as ttyd's one event loop holds it),
/// nothing recorded, no screen model, no second process. The same client times it.
pub(crate) async fn bridge_keystrokes(keys: usize) -> Vec<Duration> {
    use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
    use tokio::io::unix::AsyncFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let bridge = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let (pty, mut child) = bare_bash();
            let raw = pty.as_raw_fd().unwrap();
            // SAFETY: the master stays open (held by `pty`) while borrowed.
            let master: OwnedFd = unsafe { BorrowedFd::borrow_raw(raw) }
                .try_clone_to_owned()
                .unwrap();
            let flags = nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
            let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
            // SAFETY: the `AsyncFd` owns the descriptor: it stays open while registered.
            let master =
                unsafe { AsyncFd::register_with_interest(master, tokio::io::Interest::READABLE) }
                    .unwrap();
            let mut buf = vec![0u8; 65536];
            loop {
                tokio::select! {
                    msg = ws.next() => match msg {
                        Some(Ok(Message::Binary(bytes))) => {
                            let _ = nix::unistd::write(master.get_ref(), &bytes);
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    ready = master.readable() => {
                        let mut ready = ready.unwrap();
                        match ready.try_io(|fd| Ok(nix::unistd::read(fd.get_ref().as_raw_fd(), &mut buf)?)) {
                            Ok(Ok(n)) if n > 0 => {
                                if ws.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                                    break;
                                }
                            }
                            Ok(_) => break,
                            Err(_would_block) => {}
                        }
                    }
                }
            }
            let _ = child.kill();
        });
    });
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), None, true)
            .await
            .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let samples = websocket_keystrokes(&mut ws, keys, Framing::Raw).await;
    drop(ws);
    let _ = bridge.join();
    samples
}

/// Keystrokes typed over `ws` into bash's line editor, each timed until its echo comes back.
pub(crate) async fn websocket_keystrokes(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    keys: usize,
    framing: Framing,
) -> Vec<Duration> {
    let mut samples = Vec::new();
    for i in 0..keys + 100 {
        let key = b'a' + (i % 26) as u8;
        let started = Instant::now();
        ws.send(framing.input(&[key])).await.unwrap();
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Binary(b) = msg
                && framing.output(&b).is_some_and(|out| out.contains(&key))
            {
                break;
            }
        }
        if i >= 100 {
            samples.push(started.elapsed());
        }
        if i % 50 == 49 {
            ws.send(framing.input(b"\x15")).await.unwrap();
        }
    }
    samples
}

/// How a WebSocket terminal server frames keystrokes and output.
#[derive(Clone, Copy)]
pub(crate) enum Framing {
    /// monkeyproof's raw protocol: bytes as they are, both ways.
    Raw,
    /// ttyd's: `'0'` and the bytes, both ways (other first bytes are titles and settings).
    Ttyd,
}

impl Framing {
    fn input(self, bytes: &[u8]) -> Message {
        match self {
            Framing::Raw => Message::Binary(bytes.to_vec().into()),
            Framing::Ttyd => Message::Binary([b"0", bytes].concat().into()),
        }
    }

    fn output(self, frame: &[u8]) -> Option<&[u8]> {
        match self {
            Framing::Raw => Some(frame),
            Framing::Ttyd => frame.strip_prefix(b"0"),
        }
    }
}

/// Keystroke echo through ttyd (the C peer, `TTYD=/path/to/ttyd`) running the same bash;
/// `None` without the variable.
pub(crate) async fn ttyd_keystrokes(keys: usize) -> Option<Vec<Duration>> {
    let binary = std::env::var_os("TTYD")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ttyd = Command::new(&binary)
        .args([
            "-p",
            &port.to_string(),
            "-i",
            "lo",
            "-W",
            "bash",
            "--norc",
            "--noprofile",
        ])
        .env("PS1", "$ ")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start ttyd {binary:?}: {e}"));
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "tty".parse().unwrap());
    let mut ws = loop {
        match tokio_tungstenite::connect_async(request.clone()).await {
            Ok((ws, _)) => break ws,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    ws.send(Message::Text(
        r#"{"AuthToken":"","columns":80,"rows":24}"#.into(),
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let samples = websocket_keystrokes(&mut ws, keys, Framing::Ttyd).await;
    let _ = ttyd.kill();
    let _ = ttyd.wait();
    Some(samples)
}

/// Flooding sessions that print as fast as the server reads.
pub(crate) const FLOODS: usize = 20;

pub(crate) async fn latency(work: &Path, sizes: &Sizes) {
    let keys = sizes.keys;
    let mut floor = tokio::task::spawn_blocking(move || websocket_echo_latency(keys))
        .await
        .unwrap();
    let mut bare = bare_pty_latency(sizes.keys);
    let server = Server::start(work, &[]);
    let session = server
        .create(json!({"task": "PS1='$ ' exec bash --norc --noprofile -i"}))
        .await;
    let id = session["id"].as_str().unwrap();
    let mut ws = server.ws(id, "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Interleaved with ttyd's rounds, so both see the machine in the same mood.
    let mut samples = Vec::new();
    let mut ttyd = Vec::new();
    let mut bridge = Vec::new();
    for _ in 0..3 {
        samples.extend(websocket_keystrokes(&mut ws, sizes.keys / 3, Framing::Raw).await);
        bridge.extend(bridge_keystrokes(sizes.keys / 3).await);
        if let Some(theirs) = ttyd_keystrokes(sizes.keys / 3).await {
            ttyd.extend(theirs);
        }
    }

    // The same while other sessions flood (nobody watches them; their output is still read,
    // recorded and kept in the screen model), against bash in a bare PTY under the same flood.
    let mut floods = Vec::new();
    for _ in 0..FLOODS {
        let flood = server.create(json!({"task": "exec yes"})).await;
        floods.push(flood["id"].as_str().unwrap().to_owned());
    }
    // Steady flooding: the flood throttle takes 0.3–0.4 s to turn on (see `throttle.rs`).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut flooded = websocket_keystrokes(&mut ws, sizes.keys, Framing::Raw).await;
    let mut bare_flooded = tokio::task::spawn_blocking(move || bare_pty_latency(keys))
        .await
        .unwrap();
    for flood in &floods {
        let _ = server
            .client
            .send(Method::DELETE, &format!("/sessions/{flood}"), None::<&()>)
            .await;
    }

    let us = |d: Duration| format!("{:.0} µs", d.as_secs_f64() * 1e6);
    let report = |figure: &str, ours: &mut [Duration], base: &mut [Duration], p, target| {
        let (o, b) = (percentile(ours, p), percentile(base, p));
        row(
            figure,
            us(o),
            us(b),
            Some(o.as_secs_f64() / b.as_secs_f64()),
            target,
        );
    };
    report(
        "keystroke echo p50, idle",
        &mut samples,
        &mut bare,
        0.5,
        "ratio <= 2.5 (bash in a bare PTY)",
    );
    if ttyd.is_empty() {
        println!("  (ttyd: skipped; TTYD=/path/to/ttyd compares with it)");
        report(
            "  one-thread bridge echo p50",
            &mut bridge,
            &mut bare,
            0.5,
            "(WebSocket <-> PTY on one thread, nothing recorded)",
        );
    } else {
        report(
            "keystroke echo p50 vs ttyd",
            &mut samples,
            &mut ttyd,
            0.5,
            "ratio <= 0.8 (ttyd, same bash, same client)",
        );
        report(
            "keystroke echo p99 vs ttyd",
            &mut samples,
            &mut ttyd,
            0.99,
            "p99 <= 0.5 ms (baseline: ttyd)",
        );
        report(
            "  one-thread bridge echo p50",
            &mut bridge,
            &mut ttyd,
            0.5,
            "(WebSocket <-> PTY on one thread, nothing recorded; vs ttyd)",
        );
    }
    report(
        "  floor: loopback WebSocket echo p50",
        &mut floor,
        &mut bare,
        0.5,
        "(no PTY: what the network part costs)",
    );
    report(
        "keystroke echo p99, idle",
        &mut samples,
        &mut bare,
        0.99,
        "p99 <= 1 ms",
    );
    report(
        "keystroke echo p50, 20 floods",
        &mut flooded,
        &mut bare_flooded,
        0.5,
        "(bare PTY under the same flood)",
    );
    report(
        "keystroke echo p99, 20 floods",
        &mut flooded,
        &mut bare_flooded,
        0.99,
        "p99 <= 5 ms",
    );
}
