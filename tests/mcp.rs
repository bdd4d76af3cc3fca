//! MCP, as a model's client sees it: the official Python SDK (`mcp` from PyPI, installed by the
//! test command) over Streamable HTTP at `/mcp` and through `monkeyproof mcp`, running the agent
//! loop on the stand-in agent (`tests/fixtures/mcp_client.py` does the calls and reports).

mod common;

use common::*;
use serde_json::Value;

/// Runs the Python client in `mode` against `server`; what it reported.
fn run_client(server: &Server, mode: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mcp_client.py");
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(mode);
    if mode == "stdio" {
        command.arg(env!("CARGO_BIN_EXE_monkeyproof"));
    }
    let out = command
        .arg(server.url(""))
        .arg(TOKEN)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{mode}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("a JSON report")
}

fn check(report: &Value) {
    let tools = [
        "get_session",
        "kill_session",
        "list_sessions",
        "read_output",
        "read_screen",
        "resize_session",
        "send_input",
        "start_session",
        "wait_for",
    ];
    assert_eq!(report["tools"], serde_json::json!(tools), "{report}");
    assert_eq!(
        report["described"], true,
        "every tool has a description and a schema"
    );
    assert_eq!(report["first"], "match");
    assert_eq!(report["pasted"], true);
    assert_eq!(report["answered"], "match");
    assert_eq!(report["idle"], "idle");
    let screen = report["screen_text"].as_str().unwrap();
    assert!(
        screen.contains("ANSWER: 2 lines, first='line one', last='line two'"),
        "{screen}"
    );
    assert_eq!(report["output_has_answer"], true);
    assert!(report["output_next"].as_u64().unwrap() >= report["screen_offset"].as_u64().unwrap());
    assert_eq!(report["listed"], true);
    // Errors are tool errors with the REST messages.
    assert_eq!(report["unknown"], serde_json::json!([true, "Not found"]));
    assert_eq!(
        report["bad_input"],
        serde_json::json!([true, "input is required"])
    );
    assert_eq!(report["timeout"], true);
    assert!(report["progress"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["exit"], serde_json::json!(["exit", "exited"]));
    assert_eq!(report["killed"], serde_json::json!({"killed": true}));
    assert_eq!(
        report["removed"],
        serde_json::json!({"killed": true, "removed": true})
    );
    assert_eq!(
        report["gone"], true,
        "get_session after removal is an error"
    );
    assert_eq!(report["wrong_token_refused"], true);
}

#[test]
fn the_python_sdk_runs_the_agent_loop_over_streamable_http() {
    let server = Server::start();
    check(&run_client(&server, "http"));
}

#[test]
fn the_python_sdk_runs_the_agent_loop_through_the_stdio_bridge() {
    let server = Server::start();
    check(&run_client(&server, "stdio"));
}
