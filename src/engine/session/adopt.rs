//! Taking over a session that an earlier server started: its program still runs (the keeper
//! held its PTY while no server did), so the session goes on with the same id and pid, its
//! transcript and offsets going on where they stopped, and its screen drawn again from the
//! whole transcript, so it shows what it showed before. Output the program wrote while no
//! server ran waited in the PTY and is read next, as any other; output the keeper read but the
//! last server never took is in the transcript.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use super::super::output::{self, OutputLog};
use super::super::recording::parse_size;
use super::super::screen::{Screen, TermSize};
use super::lock;
use super::spawn::{Parts, Serving, Start, pty_size};
use super::{Session, record};
use crate::keeper::{HeldSession, Keeper, OutputSink};
use crate::store::{MarkKind, SessionRecord};

/// Transcript read per step while drawing the screen again.
const REPLAY_CHUNK: usize = 1024 * 1024;

impl Session {
    /// The running session of `record`, on the PTY the keeper held for it. Blocking (it reads
    /// the transcript). `Err` says why it cannot be served.
    pub(crate) fn adopt(
        record: SessionRecord,
        held: HeldSession,
        serving: Serving,
    ) -> Result<(Arc<Session>, Start), String> {
        let kind = record::from_wire(&record.kind).ok_or("unknown session type")?;
        let recorded = TermSize::new(record.cols, record.rows).ok_or("bad size")?;
        let size = pty_size(&held.master).unwrap_or(recorded);
        let total = held.offset;
        let written = output::open_transcript(&record.transcript)
            .and_then(|file| file.metadata())
            .map_err(|e| format!("cannot open the transcript: {e}"))?
            .len();
        if written < total {
            // The keeper could not write it all (disk full): what is missing stays missing.
            tracing::warn!(session = %record.id, written, total, "the transcript is short");
        }
        let resizes: Vec<(u64, TermSize)> = serving
            .store
            .marks(&record.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|mark| mark.kind == MarkKind::Resize)
            .filter_map(|mark| Some((mark.offset, parse_size(&mark.data)?)))
            .collect();
        // One pass over the transcript draws the screen and counts its lines.
        let (screen, log) = replay(&record.transcript, 0, total, &resizes, size)
            .and_then(|(screen, lines)| {
                let from = total.saturating_sub(serving.ring_capacity as u64);
                let tail =
                    output::read_transcript(&record.transcript, from, (total - from) as usize)?;
                let log = OutputLog::resumed(
                    record.transcript.clone(),
                    total,
                    lines,
                    &tail,
                    serving.ring_capacity,
                );
                Ok((screen, log))
            })
            .map_err(|e| format!("cannot read the transcript: {e}"))?;
        let reported = total;
        Session::serve(
            Parts {
                id: record.id,
                kind,
                task: record.task,
                argv: record.argv,
                cwd: record.cwd,
                name: record.name,
                owner: record.owner,
                labels: record.labels,
                created_at: record::from_millis(record.created_at_ms),
                pid: held.pid,
                requested_by: record.requested_by,
                record_input: record.record_input,
                log,
                screen,
                size,
                task_delivered_at: record.task_delivered_at_ms.map(record::from_millis),
                agent: record::agent_tracker(record.agent.as_deref()),
                orphan: held.orphan,
                exit: held.exit,
                reported,
                cpu_weight: serving
                    .cgroups
                    .as_ref()
                    .and_then(|c| c.unthrottled_weight(&held.id)),
            },
            held.master,
            serving,
        )
        .map(|(session, start)| {
            // What the screen shows now tells the agent's state until it reports again.
            session.agent_reads_screen();
            (session, start)
        })
        .map_err(|(_, e)| format!("cannot serve it: {e}"))
    }
}

impl Session {
    /// Whether the keeper holding the PTY died while the session's output was still read: the
    /// session goes on in a new keeper (`rehome`).
    pub(crate) fn lost_its_keeper(&self) -> bool {
        self.holder().is_some_and(|keeper| keeper.is_lost())
            && !self.lock_state().reader_done
            && lock(&self.master).is_some()
    }

    /// Hands the PTY, which this server holds too, to `keeper`, a new one (the one that held it
    /// died): what the dead one recorded but never handed over is taken from the transcript,
    /// then the new one reads on. Its program's parent is init now, so its exit status will
    /// not be known, and it is signalled no more (its pid may be reused unseen). If the PTY
    /// cannot be handed over, its output ends here. Blocking.
    pub(crate) fn rehome(self: &Arc<Self>, keeper: Arc<Keeper>) {
        let master = lock(&self.master)
            .as_ref()
            .and_then(|master| master.try_clone().ok());
        let Some(master) = master else {
            return self.closed();
        };
        let (path, total) = self.transcript();
        let written = output::open_transcript(&path)
            .and_then(|file| file.metadata())
            .map_or(total, |meta| meta.len());
        if written > total {
            match output::read_transcript(&path, total, (written - total) as usize) {
                Ok(bytes) => self.output(total, SystemTime::now(), &bytes),
                Err(err) => tracing::error!(session = %self.id, %err, "cannot read the transcript"),
            }
        }
        let offset = self.lock_state().log.total();
        if let Err(err) = keeper.adopt(&self.id, self.pid, &path, offset, &master) {
            tracing::error!(session = %self.id, %err, "its output is read no more");
            return self.closed();
        }
        *lock(&self.rehomed) = Some(keeper.clone());
        let sink: Weak<dyn OutputSink> = Arc::downgrade(self) as Weak<dyn OutputSink>;
        keeper.watch(&self.id, sink);
        tracing::warn!(
            session = %self.id,
            "the keeper holding it died; a new keeper holds its PTY (its exit status will not \
             be known)"
        );
    }
}

/// The screen after the transcript's bytes from `from` to `total`, drawn with the sizes the
/// terminal had on the way (`resizes`: after which output each size began, the first at 0) and
/// ending at `size`, the PTY's; and the newlines among those bytes. The answers and title
/// changes it would report were the earlier server's to give.
pub(super) fn replay(
    transcript: &std::path::Path,
    from: u64,
    total: u64,
    resizes: &[(u64, TermSize)],
    size: TermSize,
) -> std::io::Result<(Screen, u64)> {
    let first = resizes
        .first()
        .filter(|(offset, _)| *offset == 0)
        .map_or(size, |(_, size)| *size);
    let mut screen = Screen::new(first);
    let mut current = first;
    let mut resize = |screen: &mut Screen, size: TermSize| {
        if size != current {
            screen.resize(size);
            current = size;
        }
    };
    let mut offset = from;
    let mut lines = 0;
    let mut resizes = resizes.iter().peekable();
    loop {
        while let Some((_, size)) = resizes.next_if(|(at, _)| *at <= offset) {
            resize(&mut screen, *size);
        }
        if offset >= total {
            break;
        }
        let next = resizes.peek().map_or(total, |(at, _)| (*at).min(total));
        let len = (next - offset).min(REPLAY_CHUNK as u64) as usize;
        let bytes = output::read_transcript(transcript, offset, len)?;
        if bytes.is_empty() {
            break;
        }
        lines += memchr::memchr_iter(b'\n', &bytes).count() as u64;
        screen.process(&bytes);
        screen.take_replies();
        screen.take_title_changes();
        offset += bytes.len() as u64;
    }
    // A resize whose mark was lost (a server killed within the timeline's batch) still counts.
    resize(&mut screen, size);
    Ok((screen, lines))
}

/// The held session nobody has a record of (its server died between starting it and writing
/// its record): it is killed, as a program no client ever learnt of.
pub(crate) fn abandon_unrecorded(held: &HeldSession, keeper: &crate::keeper::Keeper) {
    if held.orphan {
        // Not the keeper's child: its pid may be anyone's by now. Only hung up.
        keeper.reap(&held.id);
    } else {
        super::lifecycle::abandon(held.pid, keeper, &held.id);
    }
}
