//! Engine values as the wire shows them: sessions, screens, events, times.

use std::time::Duration;

use base64::Engine as _;

use crate::engine::{Engine, Event, EventKind, ScreenText, Session};
pub use crate::protocol::iso::format as iso_time;
use crate::protocol::{
    Activity, Cursor, ScreenView, SessionAbout, SessionEvent, SessionEventKind, SessionInfo,
    SessionNow,
};

/// Characters of the task shown in `taskPreview`.
const TASK_PREVIEW_CHARS: usize = 500;

/// A session as the API shows it; `busy_window` decides `activity`.
pub fn session_info(session: &Session, busy_window: Duration) -> SessionInfo {
    SessionInfo {
        about: session_about(session),
        now: session_now(session, busy_window),
    }
}

/// What `session` was started as.
pub fn session_about(session: &Session) -> SessionAbout {
    SessionAbout {
        id: session.id.clone(),
        task: session.task.clone(),
        task_preview: preview(&session.task),
        // Valid UTF-8 (nearly always) is copied as it is, without `display`'s lossy walk.
        cwd: session
            .cwd
            .to_str()
            .map_or_else(|| session.cwd.display().to_string(), str::to_owned),
        command: session.command_line.clone(),
        kind: session.kind,
        pid: session.pid,
        created_at: iso_time(session.created_at),
        name: session.name.clone(),
        owner: session.owner.clone(),
        labels: session.labels.clone(),
        record_input: session.record_input,
    }
}

/// What `session` is doing now.
pub fn session_now(session: &Session, busy_window: Duration) -> SessionNow {
    let snap = session.snapshot();
    let busy = snap.is_busy(busy_window);
    let exit = snap.exit.unwrap_or_default();
    SessionNow {
        status: snap.status,
        exit_code: exit.code,
        signal: exit.signal,
        exit_reason: exit.reason,
        ended_at: snap.ended_at.map(iso_time),
        output_lines: snap.output_lines,
        output_bytes: snap.output_bytes,
        ws_clients: snap.viewers,
        cols: snap.size.cols,
        rows: snap.size.rows,
        last_output_at: snap.last_output_at.map(iso_time),
        idle_ms: snap.quiet_for.as_millis() as u64,
        activity: if busy { Activity::Busy } else { Activity::Idle },
        title: snap.title,
        bells: snap.bells,
        task_delivered_at: snap.task_delivered_at.map(iso_time),
        agent: snap.agent,
    }
}

/// The task's first `TASK_PREVIEW_CHARS` characters.
fn preview(task: &str) -> String {
    // No more bytes than that: no more characters either.
    if task.len() <= TASK_PREVIEW_CHARS {
        return task.to_owned();
    }
    task.chars().take(TASK_PREVIEW_CHARS).collect()
}

/// The screen as `GET /sessions/:id/screen?format=json` shows it.
pub fn screen_view(screen: ScreenText, scrollback: Vec<String>, offset: u64) -> ScreenView {
    ScreenView {
        cols: screen.size.cols,
        rows: screen.size.rows,
        cursor: Cursor {
            row: screen.cursor_row,
            col: screen.cursor_col,
        },
        title: screen.title,
        alternate_screen: screen.alternate_screen,
        lines: screen.lines,
        scrollback,
        offset,
    }
}

/// An engine event as the wire shows it; `with_data` adds output bytes still in memory.
pub fn event(engine: &Engine, event: &Event, with_data: bool) -> SessionEvent {
    let kind = match &event.kind {
        EventKind::Created => SessionEventKind::Created,
        EventKind::Adopted => SessionEventKind::Adopted,
        EventKind::Output { offset, length } => SessionEventKind::Output {
            offset: *offset,
            length: *length,
            data: with_data
                .then(|| output_bytes(engine, &event.session, *offset, *length))
                .flatten(),
        },
        EventKind::Busy => SessionEventKind::Busy,
        EventKind::Idle => SessionEventKind::Idle,
        EventKind::Title(title) => SessionEventKind::Title {
            title: title.clone(),
        },
        EventKind::Bell { count } => SessionEventKind::Bell { count: *count },
        EventKind::Resize(size) => SessionEventKind::Resize {
            cols: size.cols,
            rows: size.rows,
        },
        EventKind::Exit {
            status,
            code,
            signal,
            reason,
        } => SessionEventKind::Exit {
            status: *status,
            code: *code,
            signal: signal.clone(),
            reason: *reason,
        },
        EventKind::Removed => SessionEventKind::Removed,
        EventKind::Agent(agent) => SessionEventKind::Agent {
            agent: agent.clone(),
        },
    };
    SessionEvent {
        id: event.id,
        session: event.session.clone(),
        at: iso_time(event.at),
        kind,
    }
}

/// The bytes of an output event, base64, while they are still in memory.
fn output_bytes(engine: &Engine, session: &str, offset: u64, length: u64) -> Option<String> {
    let bytes = engine.get(session)?.output_range(offset, length)?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}
