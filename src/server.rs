//! Wires configuration to a running server: engine, presets, router, listener, and the graceful
//! shutdown that kills every session before exiting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{AppState, auth::Auth, router};
use crate::config::{Config, SECRET_ENV_VARS};
use crate::engine::{Engine, EngineConfig};
use crate::presets::Presets;

/// Runs the server until SIGINT or SIGTERM, then shuts it down within the kill grace + 2 s.
pub async fn run(config: Config) -> Result<(), String> {
    let token = config.token()?;
    if token.generated && !config.bind.is_loopback() {
        return Err(format!(
            "binding {} (not loopback) needs an explicit AGENT_WS_TOKEN: a generated one would \
             be printed to a console others may read",
            config.bind
        ));
    }
    let presets = Presets::load(config.presets.as_deref())?;
    let data_dir = config.data_dir();
    let engine = Arc::new(
        Engine::new(EngineConfig {
            data_dir: data_dir.clone(),
            max_sessions: config.max_sessions as usize,
            output_buffer_lines: config.output_buffer_size as usize,
            session_ttl: Duration::from_millis(config.session_ttl_ms),
            interactive_ttl: Duration::from_millis(config.interactive_session_ttl_ms),
            kill_grace: config.kill_grace(),
            env_remove: SECRET_ENV_VARS.iter().map(|s| s.to_string()).collect(),
            busy_window: Duration::from_millis(config.busy_ms),
        })
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?,
    );
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
        "monkeyproof {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    if token.generated {
        println!("No AGENT_WS_TOKEN set; generated this token for this run:");
        println!("  token: {}", token.value);
        println!("  open:  http://{addr}/#token={}", token.value);
    }
    tracing::info!(data_dir = %data_dir.display(), "transcripts directory");

    let purger = engine.start_purger();
    let monitor = engine.start_activity_monitor();
    let stop_accepting = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(
            // Keystrokes and their echoes are tiny writes that must not wait for Nagle.
            listener.tap_io(|tcp| {
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(%err, "cannot set TCP_NODELAY");
                }
            }),
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop_accepting.clone().cancelled_owned())
        .into_future(),
    );

    wait_for_signal().await;
    tracing::info!("shutting down: killing every session");
    stop_accepting.cancel();
    let limit = config.kill_grace() + Duration::from_millis(1800);
    let drained = tokio::time::timeout(limit, async {
        engine.shutdown().await;
        shutdown.cancel();
        let _ = server.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown took too long; exiting anyway");
    }
    purger.abort();
    monitor.abort();
    Ok(())
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
