//! Many viewers of one session (fan-out, against a loopback WebSocket floor) and one stalled
//! viewer beside a reading one (figures 4 and 6).

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::server::Server;
use crate::{Sizes, percentile, row};

/// Prints lines stamped with the wall-clock time (ns) at argv[2] bytes a second, in 10 ms bursts.
pub(crate) const STAMPED_LINES: &str = r#"
import sys, time
rate, secs, tick = int(sys.argv[2]), float(sys.argv[1]), 0.01
out, pad, start, n = sys.stdout.buffer, "x" * 80, time.time(), 0
while time.time() - start < secs:
    line = f"T{time.time_ns()} {pad}\n".encode()
    out.write(line * (int(rate * tick) // len(line)))
    out.flush()
    n += 1
    time.sleep(max(0.0, start + n * tick - time.time()))
"#;

/// What one viewer saw: each frame's delivery lag, how often it fell behind the ring and was
/// resynced, and (for a sample of viewers) a digest of every byte in order.
pub(crate) struct Seen {
    lags: Vec<Duration>,
    digest: Option<u64>,
    bytes: u64,
    resyncs: u32,
}

/// Viewers that digest every byte; the rest count bytes and resyncs only, so that the bench's
/// own client (on the same two cores) is not what limits a fan-out to 1,000 viewers.
pub(crate) const DIGESTING_VIEWERS: usize = 10;

pub(crate) async fn view_stamped_lines(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    digesting: bool,
) -> Seen {
    use std::hash::Hasher;
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    let (mut lags, mut bytes, mut resyncs) = (Vec::new(), 0u64, 0);
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Binary(b) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                if digesting {
                    digest.write(&b);
                }
                bytes += b.len() as u64;
                // The frame's first whole line is its oldest: its lag is the frame's worst.
                let stamp = b
                    .iter()
                    .position(|&c| c == b'\n')
                    .and_then(|end| b[end + 1..].strip_prefix(b"T"))
                    .and_then(|l| l.split(|&c| c == b' ').next())
                    .and_then(|t| std::str::from_utf8(t).ok()?.parse::<u64>().ok());
                if let Some(stamp) = stamp {
                    lags.push(now.saturating_sub(Duration::from_nanos(stamp)));
                }
            }
            Message::Text(t) if t.contains("\"resync\"") => resyncs += 1,
            Message::Text(t) if t.contains("\"exit\"") => break,
            _ => {}
        }
    }
    Seen {
        lags,
        digest: digesting.then(|| digest.finish()),
        bytes,
        resyncs,
    }
}

/// The floor under the fan-out figure: the same stamped lines at the same rate, made in this
/// process and broadcast over loopback WebSockets by a server on a runtime of its own (no PTY,
/// ring or screen); a viewer 1 MB behind is told `resync`, as the real server's would be.
pub(crate) async fn fan_out_floor(sizes: &Sizes) -> (Vec<Seen>, u64) {
    use tokio::sync::broadcast;
    const TICK: Duration = Duration::from_millis(10);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let (viewers, secs, rate) = (sizes.viewers, sizes.fanout_secs, sizes.fanout_rate);
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let burst_bytes = (rate as f64 * TICK.as_secs_f64()) as usize;
            let (sender, _) =
                broadcast::channel::<bytes::Bytes>(((1 << 20) / burst_bytes.max(1)).max(1));
            for _ in 0..viewers {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut bursts = sender.subscribe();
                tokio::spawn(async move {
                    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                    loop {
                        let msg = match bursts.recv().await {
                            Ok(burst) => Message::Binary(burst),
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                Message::Text(r#"{"type":"resync"}"#.into())
                            }
                            Err(broadcast::error::RecvError::Closed) => break,
                        };
                        if ws.send(msg).await.is_err() {
                            return;
                        }
                    }
                    let _ = ws.send(Message::Text(r#"{"type":"exit"}"#.into())).await;
                });
            }
            let (pad, start) = ("x".repeat(80), Instant::now());
            let mut tick = tokio::time::interval(TICK);
            let mut total = 0;
            while start.elapsed().as_secs_f64() < secs {
                tick.tick().await;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                let line = format!("T{} {pad}\n", now.as_nanos());
                let burst = line.repeat(burst_bytes / line.len());
                total += burst.len() as u64;
                let _ = sender.send(burst.into());
            }
            total
        })
    });
    let mut sockets = Vec::new();
    for _ in 0..viewers {
        let (ws, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), None, true)
                .await
                .unwrap();
        sockets.push(ws);
    }
    let seen = futures_util::future::join_all(
        sockets
            .into_iter()
            .enumerate()
            .map(|(i, ws)| view_stamped_lines(ws, i < DIGESTING_VIEWERS)),
    )
    .await;
    (seen, server.join().unwrap())
}

/// CPU time (user + system) the process has used so far.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

pub(crate) async fn fan_out(work: &Path, sizes: &Sizes) {
    let script = work.join("stamped_lines.py");
    std::fs::write(&script, STAMPED_LINES).unwrap();
    // The viewers all come from this one address: room for them beside the per-client default.
    let per_client = (sizes.viewers + 100).max(1000).to_string();
    let server = Server::start(
        work,
        &[(
            "MONKEYPROOF_MAX_CONNECTIONS_PER_CLIENT",
            per_client.as_str(),
        )],
    );
    let session = server
        .create(
            json!({"task": format!("read go; python3 {} {} {}", script.display(), sizes.fanout_secs, sizes.fanout_rate)}),
        )
        .await;
    let id = session["id"].as_str().unwrap();
    let mut viewers = Vec::new();
    for _ in 0..sizes.viewers {
        let mut ws = server.ws(id, "?since=0").await;
        ws.next().await; // hello
        viewers.push(ws);
    }
    let mut go = server.ws(id, "").await;
    go.send(Message::Binary(b"\r".to_vec().into()))
        .await
        .unwrap();
    go.close(None).await.unwrap();
    let (cpu0, started) = (cpu_time(server.child.id()), Instant::now());
    let seen = futures_util::future::join_all(
        viewers
            .into_iter()
            .enumerate()
            .map(|(i, ws)| view_stamped_lines(ws, i < DIGESTING_VIEWERS)),
    )
    .await;
    let cpu = (cpu_time(server.child.id()) - cpu0).as_secs_f64() / started.elapsed().as_secs_f64();
    let total = server.output_bytes(id).await;
    // Viewers that kept up got every byte; a viewer that fell behind the ring was resynced (a
    // redraw instead of the bytes it missed, by design) and is counted, not compared.
    let kept_up: Vec<&Seen> = seen.iter().filter(|s| s.resyncs == 0).collect();
    let reference = kept_up.iter().find_map(|s| s.digest);
    let identical = kept_up
        .iter()
        .all(|s| s.bytes == total && s.digest.is_none_or(|d| Some(d) == reference));
    let (floor, floor_total) = fan_out_floor(sizes).await;
    let lag = |seen: &[Seen], p: f64| {
        let mut lags: Vec<Duration> = seen.iter().flat_map(|s| s.lags.iter().copied()).collect();
        percentile(&mut lags, p)
    };
    let kept_up_of = |seen: &[Seen]| {
        let n = seen.iter().filter(|s| s.resyncs == 0).count();
        format!("{n} of {}", seen.len())
    };
    // What a viewer got of the output, in the mean: a resync skips what it fell behind.
    let delivered = |seen: &[Seen], total: u64| {
        seen.iter().map(|s| s.bytes as f64).sum::<f64>() / seen.len() as f64 / total as f64
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    for (figure, p, target) in [
        ("p99", 0.99, "<= 50 ms (baseline: WS floor)"),
        ("p50", 0.5, "(baseline: WS floor)"),
    ] {
        let (ours, theirs) = (lag(&seen, p), lag(&floor, p));
        row(
            &format!(
                "fan-out {}x{} MB/s, {figure} lag",
                sizes.viewers,
                sizes.fanout_rate as f64 / 1e6
            ),
            ms(ours),
            ms(theirs),
            Some(ours.as_secs_f64() / theirs.as_secs_f64()),
            target,
        );
    }
    row(
        "fan-out, viewers that kept up",
        kept_up_of(&seen),
        kept_up_of(&floor),
        None,
        "all (else resynced: 1 MB behind)",
    );
    let (ours, theirs) = (delivered(&seen, total), delivered(&floor, floor_total));
    row(
        "fan-out, output a viewer got",
        format!("{:.0}%", ours * 100.0),
        format!("{:.0}%", theirs * 100.0),
        Some(ours / theirs),
        "100% (mean; incl. redraws)",
    );
    row(
        "fan-out, kept-up viewers identical",
        format!("{identical}"),
        format!("{:.1} MB", total as f64 / 1e6),
        None,
        "all bytes, in order",
    );
    row(
        "fan-out, server CPU",
        format!("{:.0}%", cpu * 100.0),
        "-".into(),
        None,
        "of one core",
    );
    assert!(identical, "viewers saw different bytes");
}

// ---- 6. slow viewer ----

/// One `yes` flood of `secs`; returns (bytes the program wrote, bytes a reading viewer got, peak
/// server RSS growth in KB), with or without a viewer that never reads.
pub(crate) async fn flood_with(server: &Server, secs: f64, stalled: bool) -> (u64, u64, u64) {
    let session = server
        .create(json!({"task": format!("read go; timeout {secs} yes 'the quick brown fox jumps over the lazy dog'")}))
        .await;
    let id = session["id"].as_str().unwrap().to_owned();
    let _stalled = if stalled {
        Some(server.ws(&id, "?since=0").await)
    } else {
        None
    };
    let mut reader = server.ws(&id, "?since=0").await;
    reader.next().await; // hello
    let rss0 = server.rss_kb();
    let mut peak = rss0;
    reader
        .send(Message::Binary(b"\r".to_vec().into()))
        .await
        .unwrap();
    let mut received = 0u64;
    while let Some(Ok(msg)) = reader.next().await {
        match msg {
            Message::Binary(b) => received += b.len() as u64,
            Message::Text(t) if t.contains("\"exit\"") => break,
            _ => {}
        }
        peak = peak.max(server.rss_kb());
    }
    (server.output_bytes(&id).await, received, peak - rss0)
}

pub(crate) async fn slow_viewer(work: &Path, sizes: &Sizes) {
    let server = Server::start(work, &[]);
    let (alone_out, alone_read, _) = flood_with(&server, sizes.flood_secs, false).await;
    let (stalled_out, stalled_read, growth) = flood_with(&server, sizes.flood_secs, true).await;
    let mbs = |b: u64| format!("{:.1} MB/s", b as f64 / sizes.flood_secs / 1e6);
    row(
        "program output, with a stalled viewer",
        mbs(stalled_out),
        mbs(alone_out),
        Some(stalled_out as f64 / alone_out as f64),
        "ratio >= 0.9 (no stalled viewer)",
    );
    row(
        "reading viewer, with a stalled viewer",
        mbs(stalled_read),
        mbs(alone_read),
        Some(stalled_read as f64 / alone_read as f64),
        "ratio >= 0.9 (no stalled viewer)",
    );
    row(
        "server RSS growth, stalled viewer",
        format!("{growth} KB"),
        "-".into(),
        None,
        "<= ring (1 MB) + socket buffers",
    );
}
