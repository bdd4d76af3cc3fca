//! Output throughput to a raw WebSocket viewer against a bare PTY reader, and the screen model
//! alone (figures 1 and 1b).

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;
use crate::{Sizes, row};

/// Typical terminal text: plain lines, SGR colours, 256-colour and truecolour, box drawing and
/// wide CJK, and `\r`-rewritten progress lines.
pub(crate) fn typical_text(bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 256);
    let mut i = 0u64;
    while out.len() < bytes {
        let line = match i % 6 {
            0 => format!("plain line {i}: the quick brown fox jumps over the lazy dog\n"),
            1 => format!(
                "\x1b[1;32mok\x1b[0m test {i} passed in \x1b[33m{}ms\x1b[0m\n",
                i % 97
            ),
            2 => format!(
                "\x1b[38;5;{}m256-colour {i}\x1b[0m \x1b[38;2;{};{};200mtruecolour\x1b[0m\n",
                i % 256,
                i % 255,
                (i * 7) % 255
            ),
            3 => format!("┌──────┬──────┐ 中文字符 {i} │ 日本語 │\n"),
            4 => {
                (0..5)
                    .map(|p| format!("\rprogress {i}: [{:<20}] {:>3}%", "#".repeat(p * 4), p * 25))
                    .collect::<String>()
                    + "\n"
            }
            _ => format!("{:>8} {:<40} {:>12}\n", i, "src/engine/session.rs", i * 31),
        };
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out
}

/// A bare 80x24 portable-pty PTY, for the baselines.
pub(crate) fn bare_pty() -> portable_pty::PtyPair {
    native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap()
}

/// The baseline: the same file `cat` into a bare portable-pty PTY, read by a bare thread.
pub(crate) fn bare_pty_throughput(file: &Path) -> f64 {
    let pair = bare_pty();
    let mut cmd = CommandBuilder::new("cat");
    cmd.arg(file);
    let started = Instant::now();
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        total += n;
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = child.wait();
    total as f64 / secs / 1e6
}

pub(crate) async fn throughput(work: &Path, sizes: &Sizes) {
    let file = work.join("typical.txt");
    std::fs::write(&file, typical_text(sizes.throughput_bytes)).unwrap();
    let bare = (0..3)
        .map(|_| bare_pty_throughput(&file))
        .fold(0.0, f64::max);
    let server = Server::start(work, &[]);
    let mut best = 0.0f64;
    for _ in 0..3 {
        let session = server
            .create(json!({"task": format!("read go; cat {}", file.display())}))
            .await;
        let id = session["id"].as_str().unwrap();
        let mut ws = server.ws(id, "?since=0").await;
        ws.next().await; // hello
        let started = Instant::now();
        ws.send(Message::Binary(b"\r".to_vec().into()))
            .await
            .unwrap();
        let mut received = 0usize;
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Binary(b) => received += b.len(),
                Message::Text(t) if t.contains("\"exit\"") => break,
                _ => {}
            }
        }
        let secs = started.elapsed().as_secs_f64();
        best = best.max(received as f64 / secs / 1e6);
    }
    row(
        &format!(
            "throughput, {} MB to a WS viewer",
            sizes.throughput_bytes >> 20
        ),
        format!("{best:.1} MB/s"),
        format!("{bare:.1} MB/s"),
        Some(best / bare),
        "ratio >= 0.95 (bare PTY reader)",
    );
}

// ---- 1b. the screen model alone ----

/// The screen model's own cost, in this process, on the throughput figure's text fed in PTY-sized
/// reads: drawn lazily (as the server does) against drawing every byte. Then the screen is read
/// once, so the lazy model pays for what it deferred.
pub(crate) fn screen_model(sizes: &Sizes) {
    use monkeyproof::engine::{Screen, TermSize};
    // As a PTY delivers it: output processing (ONLCR) turns each \n into \r\n.
    let mut text = Vec::with_capacity(sizes.throughput_bytes * 21 / 20);
    for &b in &typical_text(sizes.throughput_bytes) {
        if b == b'\n' {
            text.push(b'\r');
        }
        text.push(b);
    }
    let size = TermSize::new(80, 24).unwrap();
    let run = |mut screen: Screen| {
        let started = Instant::now();
        for chunk in text.chunks(4096) {
            screen.process(chunk);
        }
        let _ = screen.text();
        (
            text.len() as f64 / started.elapsed().as_secs_f64() / 1e6,
            screen.skipped_bytes(),
        )
    };
    let (lazy, skipped) = run(Screen::new(size));
    let (eager, _) = run(Screen::drawing_everything(size));
    row(
        "screen model, typical text, 80x24",
        format!("{lazy:.0} MB/s"),
        format!("{eager:.0} MB/s"),
        Some(lazy / eager),
        "(baseline: drawing every byte)",
    );
    row(
        "  of which never drawn",
        format!("{:.1}%", skipped as f64 * 100.0 / text.len() as f64),
        "-".into(),
        None,
        "",
    );
}
