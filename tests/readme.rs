//! The README's examples work when pasted: the quick start, the orchestration examples and the
//! event-stream examples run in one bash against the real binary, as a person would paste them
//! (only `cargo run --release` is replaced by the binary under test, and port 3200 by a free one;
//! streaming `curl -sN` lines are cut after 2 s).

use std::process::Command;

/// The `sh` code blocks of the README, in order.
fn shell_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```sh" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(block.join("\n"));
        }
    }
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_examples_work_when_pasted() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = shell_blocks(&readme);
    assert_eq!(
        blocks[0].lines().filter(|l| !l.trim().is_empty()).count(),
        2,
        "the README opens with exactly two commands"
    );
    let quick_start = blocks
        .iter()
        .find(|b| b.contains("cargo run --release &"))
        .expect("a quick start");
    let orchestrating = blocks
        .iter()
        .find(|b| b.contains("S=localhost:3200/sessions/$ID"))
        .expect("orchestration examples");
    let events = blocks
        .iter()
        .find(|b| b.contains("localhost:3200/events"))
        .expect("event examples");
    let port = free_port().to_string();
    let streaming = events
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("curl -sN") {
                format!("timeout 2 {l} || true")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let script = format!("set -u\n{quick_start}\n{orchestrating}\n{streaming}\nkill %1\nwait\n")
        .replace(
            "cargo run --release &",
            &format!("{:?} >/dev/null 2>&1 &", env!("CARGO_BIN_EXE_monkeyproof")),
        )
        .replace("3200", &port);
    let data_dir = std::env::temp_dir().join(format!("mp-readme-{}", std::process::id()));
    let out = Command::new("timeout")
        .args(["120", "bash", "-c", &script])
        .env("PORT", &port)
        .env("MONKEYPROOF_DATA_DIR", &data_dir)
        .env("MONKEYPROOF_ON_EXIT", "kill")
        .env_remove("AGENT_WS_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for expected in [
        r#""condition":"match""#,
        "hi from bash",
        r#""status":"running""#,
        r#""killed":true"#,
        r#""alternateScreen":false"#,
        "pasted",
        "twice",
        r#""condition":"idle""#,
        r#""condition":"exit""#,
        "event: created",
        "event: reset",
    ] {
        assert!(
            stdout.contains(expected),
            "no {expected} in:\n{stdout}\nstderr:\n{stderr}"
        );
    }
    assert!(
        !stdout.contains(r#""error""#),
        "an example failed:\n{stdout}"
    );
}
