//! The `monkeyproof` binary: parse configuration, run the server.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "monkeyproof=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = monkeyproof::config::Config::parse();
    match monkeyproof::server::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("monkeyproof: {message}");
            ExitCode::FAILURE
        }
    }
}
