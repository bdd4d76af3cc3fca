//! The `monkeyproof` binary: parse configuration, run the server; or, as `monkeyproof keeper
//! DATA_DIR`, the keeper that holds the sessions' PTYs (see `keeper`); or, as `monkeyproof hook
//! claude|codex`, an agent's hook reporting its state (see `agent::hook`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

/// `monkeyproof ls|new|...`: a client of a running server; errors in one line on stderr.
fn run_command(args: &[std::ffi::OsString]) -> ExitCode {
    use clap::Parser as _;
    let cli = monkeyproof::cli::commands::Cli::parse_from(args);
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
        .and_then(|runtime| {
            let status = runtime.block_on(monkeyproof::cli::commands::run(cli));
            // `attach` may leave a read of stdin blocked; nothing waits for it.
            runtime.shutdown_background();
            status
        });
    match status {
        Ok(status) => ExitCode::from(status as u8),
        Err(message) => {
            eprintln!("monkeyproof: {message}");
            ExitCode::from(monkeyproof::cli::commands::exit::ERROR as u8)
        }
    }
}

/// `monkeyproof mcp ...`: stdout is the MCP channel, so logs (warnings only) go to stderr.
fn run_mcp_bridge(args: &[std::ffi::OsString]) -> ExitCode {
    use clap::Parser as _;
    let args = monkeyproof::cli::mcp::McpArgs::parse_from(args);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("monkeyproof mcp: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(monkeyproof::cli::mcp::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("monkeyproof mcp: {message}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // The keeper (started by the server, not by people): no runtime, no configuration.
    let args: Vec<_> = std::env::args_os().collect();
    // An agent's hook: as fast as it can be, and always exit status 0.
    if args.get(1).is_some_and(|a| a == "hook") {
        let rest: Vec<String> = args[2..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        monkeyproof::agent::hook::run(&rest);
        return ExitCode::SUCCESS;
    }
    if args.get(1).is_some_and(|a| a == "mcp") {
        return run_mcp_bridge(&args[1..]);
    }
    if monkeyproof::cli::is_command(&args) {
        return run_command(&args);
    }
    if args.len() == 2 && args[1] == monkeyproof::keeper::launcher::COMMAND {
        monkeyproof::keeper::launcher::serve();
    }
    if args.len() == 3 && args[1] == "keeper" {
        return match monkeyproof::keeper::daemon::run(std::path::Path::new(&args[2])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("monkeyproof keeper: {message}");
                ExitCode::FAILURE
            }
        };
    }
    // Colours only for a person at a terminal: a log file must stay plain text.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "monkeyproof=info".into()),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    // `monkeyproof serve ...` is `monkeyproof ...`.
    let config = monkeyproof::config::Config::from_args(
        args.iter()
            .enumerate()
            .filter(|(i, a)| !(*i == 1 && *a == "serve"))
            .map(|(_, a)| a.clone()),
    );
    // Idle blocking-pool threads (spawns, input writes) go after 2 s rather than tokio's 10.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(Duration::from_secs(2))
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("monkeyproof: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(monkeyproof::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("monkeyproof: {message}");
            ExitCode::FAILURE
        }
    }
}
