//! The CLI's subcommands against a live server: their output, and their exit statuses.

mod common;

use std::process::Output;

use common::*;
use serde_json::Value;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_against_a_live_server() {
    let server = Server::start();
    // new prints the id; wait's exit status says what fired.
    // `-- CMD...` is an argv: run exactly, as `sh -c` here asks.
    let out = cli(
        &server,
        &[
            "new",
            "--label",
            "cli",
            "--name",
            "the-cli-one",
            "--",
            "sh",
            "-c",
            "echo hi-cli; exec cat",
        ],
    );
    assert_eq!(status(&out), 0, "{out:?}");
    let id = stdout(&out).trim().to_owned();
    let out = cli(
        &server,
        &["wait", &id, "--match", "hi-cli", "--timeout", "10s"],
    );
    assert_eq!((status(&out), stdout(&out).trim()), (0, "match: hi-cli"));
    let out = cli(&server, &["wait", &id, "--idle", "300ms"]);
    assert_eq!((status(&out), stdout(&out).trim()), (10, "idle"));
    let out = cli(
        &server,
        &["wait", &id, "--match", "never", "--timeout", "300ms"],
    );
    assert_eq!((status(&out), stdout(&out).trim()), (124, "timeout"));

    // ls: a table, or the API's JSON.
    let out = cli(&server, &["ls", "--label", "cli"]);
    let table = stdout(&out);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains("running"), "{table}");
    assert!(
        table.contains("[the-cli-one] "),
        "the name beside the task: {table}"
    );
    let out = cli(&server, &["ls", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());

    // send, keys, screen.
    assert_eq!(status(&cli(&server, &["send", &id, "typed-line"])), 0);
    let out = cli(
        &server,
        &[
            "wait",
            &id,
            "--match",
            "typed-line\ntyped-line",
            "--timeout",
            "10s",
        ],
    );
    assert_eq!(status(&out), 0, "{out:?}");
    assert_eq!(status(&cli(&server, &["keys", &id, "y", "z", "Enter"])), 0);
    let out = cli(
        &server,
        &["wait", &id, "--match", "yz\nyz", "--timeout", "10s"],
    );
    assert_eq!(status(&out), 0, "{out:?}");
    let screen = stdout(&cli(&server, &["screen", &id]));
    assert!(
        screen.contains("hi-cli\ntyped-line\ntyped-line\nyz\nyz"),
        "{screen}"
    );
    let json: Value =
        serde_json::from_slice(&cli(&server, &["screen", &id, "--json"]).stdout).unwrap();
    assert_eq!(json["cols"], 80);

    // resize, logs.
    assert_eq!(status(&cli(&server, &["resize", &id, "100x30"])), 0);
    assert_eq!(server.detail(&id).await.info.now.cols, 100);
    assert_eq!(status(&cli(&server, &["resize", &id, "big"])), 1);
    let logs = stdout(&cli(&server, &["logs", &id]));
    assert!(logs.starts_with("hi-cli\r\ntyped-line"), "{logs:?}");
    let tail = stdout(&cli(&server, &["logs", &id, "--since", "8"]));
    assert!(tail.starts_with("typed-line"), "{tail:?}");

    // events: those kept, one line each.
    let events = stdout(&cli(&server, &["events", &id]));
    assert!(
        events
            .lines()
            .next()
            .unwrap()
            .ends_with(&format!("{id} created")),
        "{events}"
    );
    assert!(
        events.contains(" resize {\"cols\":100,\"rows\":30}"),
        "{events}"
    );

    // kill; then wait says the program ended.
    assert_eq!(status(&cli(&server, &["kill", &id])), 0);
    let out = cli(&server, &["wait", &id, "--exit", "--timeout", "10s"]);
    assert_eq!((status(&out), stdout(&out).trim()), (11, "exit"));
    assert_eq!(
        server.detail(&id).await.info.now.status,
        monkeyproof::protocol::SessionStatus::Killed
    );
    // kill --remove forgets it.
    assert_eq!(status(&cli(&server, &["kill", "--remove", &id])), 0);
    let out = cli(&server, &["screen", &id]);
    assert_eq!(status(&out), 1, "{}", stdout(&out));

    // logs -f follows to the end.
    let out = cli(
        &server,
        &[
            "new",
            "--",
            "sh",
            "-c",
            "for i in 1 2 3; do echo n$i; sleep 0.2; done",
        ],
    );
    let short = stdout(&out).trim().to_owned();
    let followed = stdout(&cli(&server, &["logs", "-f", &short]));
    assert_eq!(followed, "n1\r\nn2\r\nn3\r\n");

    // Errors: one line on stderr, status 1.
    let out = cli(&server, &["screen", "no-such-session"]);
    assert_eq!(status(&out), 1);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "monkeyproof: Not found (404)\n"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .args(["ls"])
        .env("MONKEYPROOF_URL", server.url(""))
        .env("AGENT_WS_TOKEN", "wrong-token-0123456789")
        .output()
        .unwrap();
    assert_eq!(status(&out), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(401)"),
        "{out:?}"
    );
}

#[tokio::test]
async fn serve_runs_the_server_as_no_subcommand_does() {
    let server = Server::launch(Launch {
        args: &["serve"],
        ..Launch::default()
    });
    let session = server.exec("echo served").await;
    server.wait_for_screen(&session.about.id, "served").await;
}

#[tokio::test]
async fn named_servers_come_from_a_private_config_file() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start();
    let config_home = server.data_dir.with_extension("config");
    std::fs::create_dir_all(config_home.join("monkeyproof")).unwrap();
    let file = config_home.join("monkeyproof/config.toml");
    let token_file = config_home.join("box.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        &file,
        format!(
            "default = \"box\"\n[contexts.box]\nurl = \"{}\"\ntoken_file = \"{}\"\n\
             [contexts.other]\nurl = \"http://127.0.0.1:9\"\ntoken = \"x\"\n",
            server.url(""),
            token_file.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
            .args(args)
            .env("XDG_CONFIG_HOME", &config_home)
            .env_remove("MONKEYPROOF_URL")
            .env_remove("AGENT_WS_TOKEN")
            .output()
            .unwrap()
    };
    // Others may read it: refused.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["ls"]);
    assert_eq!(status(&out), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("chmod 600"),
        "{out:?}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The default context, then a named one.
    let out = run(&["ls"]);
    assert_eq!(status(&out), 0, "{out:?}");
    assert!(stdout(&out).starts_with("ID"));
    let out = run(&["--context", "other", "ls"]);
    assert_eq!(status(&out), 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{out:?}"
    );
    let out = run(&["--context", "nope", "ls"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no context \"nope\""),
        "{out:?}"
    );
}

#[test]
fn ids_that_start_with_a_hyphen_are_ids_not_options() {
    // One id in 64 starts with `-` (URL-safe base64).
    for args in [
        vec!["wait", "-Abc", "--exit"],
        vec!["screen", "-Abc"],
        vec!["kill", "-Abc"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
            .args(&args)
            .env("MONKEYPROOF_URL", "http://127.0.0.1:9")
            .env("AGENT_WS_TOKEN", TOKEN)
            .output()
            .unwrap();
        // Parsed: it got as far as trying to reach the server (1), not a usage error (2).
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
            "{out:?}"
        );
    }
}

#[test]
fn attach_without_a_terminal_says_what_to_use_instead() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_monkeyproof"))
        .args(["attach", "some-id"])
        .env("MONKEYPROOF_URL", "http://127.0.0.1:9")
        .env("AGENT_WS_TOKEN", TOKEN)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "monkeyproof: attach needs a terminal (stdin is not one); to read a session from a \
         script, use `screen`, `logs -f` or `wait`\n"
    );
}
