//! The subcommands that drive a running server from a shell: `ls`, `new`, `send`, `keys`,
//! `screen`, `wait`, `logs`, `events`, `resize`, `kill`. Tables and text for people, `--json`
//! (the API's own answers) for scripts; errors on stderr in one line; exit codes in `Exit`.

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use super::Target;
use crate::client::{Client, escape};
use crate::protocol::{SessionInfo, WaitResult};

/// Exit statuses (see the README's CLI section).
pub mod exit {
    /// Done; for `wait`, the pattern matched.
    pub const OK: i32 = 0;
    /// The server refused or could not be reached.
    pub const ERROR: i32 = 1;
    /// `wait`: no output for `--idle`.
    pub const IDLE: i32 = 10;
    /// `wait`: the program ended.
    pub const EXITED: i32 = 11;
    /// `wait`: the agent reached a state of `--agent`.
    pub const AGENT: i32 = 12;
    /// `wait`: nothing happened within `--timeout`.
    pub const TIMEOUT: i32 = 124;
}

/// `monkeyproof COMMAND`.
#[derive(Debug, Parser)]
#[command(
    name = "monkeyproof",
    about = "Drive a monkeyproof server from the shell"
)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    /// Print the API's JSON instead of tables and text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the sessions.
    Ls {
        /// running, exited or killed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        owner: Option<String>,
    },
    /// Start a session running CMD (a shell command line for exec sessions, the task for
    /// print and interactive ones); prints its id.
    New {
        /// exec (default), print or interactive.
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long)]
        preset: Option<String>,
        #[arg(long)]
        cwd: Option<String>,
        /// A label (repeat for more).
        #[arg(long)]
        label: Vec<String>,
        #[arg(long)]
        owner: Option<String>,
        /// A name for people, shown by `ls` and the page (ids stay the address).
        #[arg(long)]
        name: Option<String>,
        /// Most memory the session may use (e.g. 2G); the server's default otherwise.
        #[arg(long, value_parser = crate::config::memory_bytes)]
        memory_max: Option<u64>,
        /// Most processes and threads the session may have at once.
        #[arg(long)]
        pids_max: Option<u64>,
        /// The session's CPU share when the CPU is contended, 1–10000 (100 is normal).
        #[arg(long)]
        cpu_weight: Option<u64>,
        #[arg(trailing_var_arg = true, required = true, num_args = 1..)]
        cmd: Vec<String>,
    },
    /// Type TEXT into a session, then Enter.
    Send {
        /// The session's id.

        #[arg(allow_hyphen_values = true)]
        id: String,
        text: String,
        /// Paste it (bracketed when the program asks): for multi-line prompts.
        #[arg(long)]
        paste: bool,
        /// No Enter after it.
        #[arg(long)]
        no_enter: bool,
    },
    /// Send keys by name (Enter, Escape, C-c, Up, F5, …).
    Keys {
        /// The session's id.

        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print what is on a session's screen.
    Screen {
        /// The session's id.

        #[arg(allow_hyphen_values = true)]
        id: String,
        /// With the terminal's escape sequences (colours).
        #[arg(long)]
        ansi: bool,
        /// Rows of scrollback above the screen.
        #[arg(long)]
        scrollback: Option<u32>,
    },
    /// Wait for no output (--idle), a pattern (--match), the end (--exit) or an agent state
    /// (--agent); the exit status says which.
    Wait {
        /// The session's id.

        #[arg(allow_hyphen_values = true)]
        id: String,
        /// e.g. 2s, 500ms.
        #[arg(long)]
        idle: Option<String>,
        #[arg(long = "match")]
        pattern: Option<String>,
        #[arg(long)]
        exit: bool,
        /// Agent states, comma-separated: working, waiting, idle, exited.
        #[arg(long, value_delimiter = ',')]
        agent: Vec<String>,
        /// e.g. 30s, 10m.
        #[arg(long, default_value = "30s")]
        timeout: String,
    },
    /// Print a session's output (the transcript) from byte --since; -f follows it to the end.
    Logs {
        /// The session's id.

        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
    /// Print the events kept (of one session, or all); -f follows new ones.
    Events {
        /// The session's id.

        #[arg(allow_hyphen_values = true)]
        id: Option<String>,
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Resize a session's terminal: COLSxROWS.
    Resize {
        /// The session's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
        size: String,
    },
    /// Kill a session's whole process tree.
    Kill {
        /// The session's id.
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Forget the finished session now: its record, transcript and recording.
        #[arg(long)]
        remove: bool,
    },
    /// This terminal on a session (detach with Ctrl-\).
    Attach(super::attach::AttachArgs),
}

/// Runs `cli`; the exit status, or a one-line error.
pub async fn run(cli: Cli) -> Result<i32, String> {
    let server = cli.target.resolve()?;
    if let Command::Attach(args) = cli.command {
        return super::attach::run(&server, args).await;
    }
    let client = Client::new(&server.url, &server.token);
    let json = cli.json;
    let fail = |e: crate::client::ClientError| e.to_string();
    let path = |id: &str, rest: &str| format!("/sessions/{}{rest}", escape(id));
    match cli.command {
        Command::Ls {
            status,
            label,
            owner,
        } => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(
                    [("status", status), ("label", label), ("owner", owner)]
                        .iter()
                        .filter_map(|(k, v)| Some((*k, v.as_deref()?))),
                )
                .finish();
            let sessions: Vec<SessionInfo> = client
                .get(&format!("/sessions?{query}"))
                .await
                .map_err(fail)?;
            if json {
                print_json(&sessions);
            } else {
                print_table(&sessions);
            }
        }
        Command::New {
            kind,
            preset,
            cwd,
            label,
            owner,
            name,
            memory_max,
            pids_max,
            cpu_weight,
            cmd,
        } => {
            let exec = kind.as_deref().is_none_or(|k| k == "exec");
            let task = if exec {
                shell_words::join(&cmd)
            } else {
                cmd.join(" ")
            };
            let body = json!({"task": task, "type": kind, "preset": preset, "cwd": cwd,
                "labels": label, "owner": owner, "name": name, "memoryMax": memory_max,
                "pidsMax": pids_max, "cpuWeight": cpu_weight});
            let info: SessionInfo = client.post("/sessions", &body).await.map_err(fail)?;
            if json {
                print_json(&info);
            } else {
                println!("{}", info.about.id);
            }
        }
        Command::Send {
            id,
            text,
            paste,
            no_enter,
        } => {
            let body = if paste {
                json!({"text": text, "paste": true, "enter": !no_enter})
            } else {
                json!({"input": text, "enter": !no_enter})
            };
            let sent: Value = client
                .post(&path(&id, "/input"), &body)
                .await
                .map_err(fail)?;
            if json {
                print_json(&sent);
            }
        }
        Command::Keys { id, keys } => {
            let sent: Value = client
                .post(&path(&id, "/input"), &json!({ "keys": keys }))
                .await
                .map_err(fail)?;
            if json {
                print_json(&sent);
            }
        }
        Command::Screen {
            id,
            ansi,
            scrollback,
        } => {
            let format = if json {
                "json"
            } else if ansi {
                "ansi"
            } else {
                "text"
            };
            let mut query = format!("?format={format}");
            if let Some(rows) = scrollback {
                query.push_str(&format!("&scrollback={rows}"));
            }
            let bytes = client
                .get_bytes(&path(&id, &format!("/screen{query}")))
                .await
                .map_err(fail)?;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes);
            if !bytes.ends_with(b"\n") {
                let _ = out.write_all(b"\n");
            }
        }
        Command::Wait {
            id,
            idle,
            pattern,
            exit,
            agent,
            timeout,
        } => {
            let body = json!({
                "idle_ms": idle.as_deref().map(parse_duration).transpose()?.map(|d| d.as_millis() as u64),
                "match": pattern,
                "exit": exit.then_some(true),
                "agent": (!agent.is_empty()).then_some(agent),
                "timeout_ms": parse_duration(&timeout)?.as_millis() as u64,
            });
            let outcome: WaitResult = client
                .post(&path(&id, "/wait"), &body)
                .await
                .map_err(fail)?;
            if json {
                print_json(&outcome);
            } else {
                match (&outcome.matched, &outcome.agent) {
                    (Some(text), _) => println!("match: {text}"),
                    (None, Some(agent)) if outcome.condition == "agent" => {
                        println!("agent: {}", agent.state.name())
                    }
                    _ => println!("{}", outcome.condition),
                }
            }
            return Ok(match outcome.condition.as_str() {
                "match" => exit::OK,
                "idle" => exit::IDLE,
                "exit" => exit::EXITED,
                "agent" => exit::AGENT,
                _ => exit::TIMEOUT,
            });
        }
        Command::Logs { id, follow, since } => {
            logs(&client, &id, since, follow).await.map_err(fail)?;
        }
        Command::Events { id, follow } => {
            let route = match &id {
                Some(id) => path(id, "/events"),
                None => "/events".into(),
            };
            events(&client, &route, follow, json).await?;
        }
        Command::Resize { id, size } => {
            let (cols, rows) = size
                .split_once(['x', 'X'])
                .and_then(|(c, r)| Some((c.parse::<i64>().ok()?, r.parse::<i64>().ok()?)))
                .ok_or("size must be COLSxROWS, e.g. 120x40")?;
            let info: SessionInfo = client
                .post(&path(&id, "/resize"), &json!({"cols": cols, "rows": rows}))
                .await
                .map_err(fail)?;
            if json {
                print_json(&info);
            }
        }
        Command::Attach(_) => unreachable!("handled first"),
        Command::Kill { id, remove } => {
            let query = if remove { "?remove=true" } else { "" };
            let killed: Value = client
                .json(Method::DELETE, &path(&id, query), None::<&()>)
                .await
                .map_err(fail)?;
            if json {
                print_json(&killed);
            }
        }
    }
    Ok(exit::OK)
}

/// Writes the transcript from `since`; with `follow`, goes on as output comes until the
/// session has ended and everything is written.
async fn logs(
    client: &Client,
    id: &str,
    mut since: u64,
    follow: bool,
) -> Result<(), crate::client::ClientError> {
    let route = format!("/sessions/{}", escape(id));
    loop {
        // Whether it ended is read first: output read after an end is all there is.
        let ended = follow && {
            let info: SessionInfo = client.get(&route).await?;
            info.now.ended_at.is_some()
        };
        let bytes = client
            .get_bytes(&format!("{route}/transcript?since={since}"))
            .await?;
        since += bytes.len() as u64;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&bytes);
        let _ = out.flush();
        if !follow || (ended && bytes.is_empty()) {
            return Ok(());
        }
        if bytes.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Prints the events of `route` (an SSE stream): those kept, then, with `follow`, new ones.
async fn events(client: &Client, route: &str, follow: bool, json: bool) -> Result<(), String> {
    // Those kept: asked for from the start, with Last-Event-ID 0.
    let response = client
        .send_with(Method::GET, route, None::<&()>, &[("last-event-id", "0")])
        .await
        .map_err(|e| e.to_string())?;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let quiet = Duration::from_millis(300);
    loop {
        let chunk = if follow {
            body.next().await
        } else {
            match tokio::time::timeout(quiet, body.next()).await {
                Ok(chunk) => chunk,
                Err(_) => return Ok(()),
            }
        };
        let Some(Ok(chunk)) = chunk else {
            return Ok(());
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                continue;
            };
            let data = data.trim_start();
            // Asked from the start, the feed first says where the events kept begin.
            if block.contains("event: reset") || block.contains("event:reset") {
                continue;
            }
            if json {
                println!("{data}");
            } else if let Ok(event) = serde_json::from_str::<Value>(data) {
                println!("{}", event_line(&event));
            }
        }
    }
}

/// An event in one line: id, session, type and what it carries.
fn event_line(event: &Value) -> String {
    let mut detail = event.as_object().cloned().unwrap_or_default();
    let mut take = |key: &str| detail.remove(key).unwrap_or(Value::Null);
    let (id, session, at, kind) = (take("id"), take("session"), take("at"), take("type"));
    let rest = if detail.is_empty() {
        String::new()
    } else {
        Value::Object(detail).to_string()
    };
    format!(
        "{id} {} {} {} {rest}",
        at.as_str().unwrap_or_default(),
        session.as_str().unwrap_or_default(),
        kind.as_str().unwrap_or_default()
    )
    .trim_end()
    .to_owned()
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Sessions as a table: id, status, type, activity, agent, [name] task.
fn print_table(sessions: &[SessionInfo]) {
    println!(
        "{:<22}  {:<8}  {:<11}  {:<5}  {:<9}  TASK",
        "ID", "STATUS", "TYPE", "BUSY", "AGENT"
    );
    for s in sessions {
        let status = serde_json::to_value(s.now.status).unwrap_or_default();
        let kind = serde_json::to_value(s.about.kind).unwrap_or_default();
        let activity = serde_json::to_value(s.now.activity).unwrap_or_default();
        let agent = s.now.agent.as_ref().map_or("-", |a| a.state.name());
        let named = s
            .about
            .name
            .as_ref()
            .map_or(String::new(), |n| format!("[{n}] "));
        let task: String = format!("{named}{}", s.about.task_preview)
            .chars()
            .take(60)
            .collect();
        println!(
            "{:<22}  {:<8}  {:<11}  {:<5}  {:<9}  {}",
            s.about.id,
            status.as_str().unwrap_or_default(),
            kind.as_str().unwrap_or_default(),
            activity.as_str().unwrap_or_default(),
            agent,
            task.replace('\n', " ")
        );
    }
}

/// `2s`, `500ms`, `10m`, `1h`, or milliseconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 2s, 500ms, 10m)"))?;
    let seconds = match unit {
        "ms" | "" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("{text:?} is not a duration (e.g. 2s, 500ms, 10m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
    }
}
