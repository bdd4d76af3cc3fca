//! Wires configuration to a running server: engine, presets, router, listener, and the graceful
//! shutdown, which leaves the running sessions to the keeper (or kills them all, if so set).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::connections::{self, Limits};
use crate::api::{AppState, auth::Auth, router};
use crate::config::{Config, OnExit, SECRET_ENV_VARS};
use crate::engine::{Engine, EngineConfig, FDS_PER_SESSION};
use crate::presets::Presets;

/// Runs the server until SIGINT or SIGTERM, then shuts it down within the kill grace + 2 s.
pub async fn run(config: Config) -> Result<(), String> {
    let token = config.token()?;
    if config.token_on_command_line {
        tracing::warn!(
            "--token puts the secret in /proc/PID/cmdline, readable by every local user: \
             use --token-file or AGENT_WS_TOKEN instead"
        );
    }
    if token.generated && !config.bind.is_loopback() {
        return Err(format!(
            "binding {} (not loopback) needs an explicit AGENT_WS_TOKEN: a generated one would \
             be printed to a console others may read",
            config.bind
        ));
    }
    let presets = Presets::load(config.presets.as_deref())?;
    let data_dir = config.data_dir();
    let engine_config = EngineConfig {
        data_dir: data_dir.clone(),
        max_sessions: config.max_sessions as usize,
        output_buffer_lines: config.output_buffer_size as usize,
        session_ttl: Duration::from_millis(config.session_ttl_ms),
        interactive_ttl: Duration::from_millis(config.interactive_session_ttl_ms),
        kill_grace: config.kill_grace(),
        env_remove: SECRET_ENV_VARS.iter().map(|s| s.to_string()).collect(),
        busy_window: Duration::from_millis(config.busy_ms),
        max_finished: config.max_finished_sessions as usize,
        default_limits: config.default_limits(),
    };
    // It reads the records and transcripts of earlier runs.
    let engine = tokio::task::spawn_blocking(move || Engine::new(engine_config))
        .await
        .map_err(|e| format!("cannot start the engine: {e}"))??;
    let engine = Arc::new(engine);
    let shutdown = CancellationToken::new();
    let state = AppState {
        engine: engine.clone(),
        presets: Arc::new(presets),
        auth: Arc::new(Auth::new(
            token.value.clone(),
            config.allowed_origins.clone(),
            config.allowed_hosts(),
        )),
        output_buffer_lines: config.output_buffer_size as usize,
        ws_ping_interval: Duration::from_millis(config.ws_ping_ms),
        shutdown: shutdown.clone(),
    };

    let addr = SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "monkeyproof {} {}{addr}",
        env!("CARGO_PKG_VERSION"),
        crate::client::LISTENING
    );
    println!("data dir: {}", data_dir.display());
    if token.generated {
        println!("No AGENT_WS_TOKEN set; generated this token for this run:");
        println!("  token: {}", token.value);
        println!("  open:  http://{addr}/#token={}", token.value);
    }

    let fd_limit = raise_descriptor_limit();
    let limits = Limits::within_descriptors(
        fd_limit,
        config.max_sessions * FDS_PER_SESSION as u64,
        config.max_connections_per_client as usize,
        Duration::from_millis(config.header_timeout_ms),
        Duration::from_millis(config.idle_timeout_ms),
    );
    tracing::info!(
        fd_limit,
        connections = limits.total,
        per_client = limits.per_client,
        "connection limits"
    );

    let purger = engine.start_purger();
    engine.start_hook_channel()?;
    let webhooks = crate::agent::webhook::Webhooks::start(&config.webhook)?;
    let notifier = crate::api::notify::start(
        engine.clone(),
        webhooks,
        Duration::from_millis(config.busy_ms),
    );
    let monitor = engine.start_activity_monitor();
    let stop_accepting = CancellationToken::new();
    let server = tokio::spawn(connections::serve(
        listener,
        router(state),
        limits,
        stop_accepting.clone(),
    ));

    wait_for_signal().await;
    stop_accepting.cancel();
    let limit = config.kill_grace() + Duration::from_millis(1800);
    let drain = tokio::time::timeout(limit, async {
        match config.on_exit {
            OnExit::Kill => {
                tracing::info!("shutting down: killing every session");
                engine.shutdown().await;
            }
            OnExit::Keep => {
                let kept = engine.detach().await;
                if kept > 0 {
                    println!(
                        "{kept} session(s) keep running, held by the keeper; a server started \
                         again on {} takes them over. To stop them: DELETE /sessions/ID, or \
                         stop the server with MONKEYPROOF_ON_EXIT=kill (--on-exit kill)",
                        data_dir.display()
                    );
                }
            }
        }
        shutdown.cancel();
        let _ = server.await;
    });
    // A second signal cuts the stop short, as a second Ctrl-C does elsewhere.
    tokio::select! {
        drained = drain => if drained.is_err() {
            tracing::warn!("shutdown took too long; exiting anyway");
        },
        _ = wait_for_signal() => tracing::warn!("a second signal: exiting now"),
    }
    if config.on_exit == OnExit::Kill {
        let engine = engine.clone();
        let _ = tokio::task::spawn_blocking(move || engine.kill_rest()).await;
    }
    drop(purger);
    monitor.abort();
    notifier.abort();
    Ok(())
}

/// Raises the soft open-files limit to the hard one (each session and connection needs
/// descriptors) and returns the limit in force.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
