//! What is written to the program: input from REST and viewers, and the terminal's answers to
//! the program's queries, through one bounded queue and one writer task per session.
//!
//! When nothing waits, a write goes to the PTY at once from the caller (a keystroke needs no
//! hand-off to another task); only what the PTY does not take at once waits in the queue.
//! The queue keeps every write whole and in order, and bounds what waits for a program that does
//! not read: input beyond `MAX_QUEUED_INPUT_BYTES` is refused (the caller learns so), answers
//! beyond `MAX_QUEUED_ANSWER_BYTES` are dropped, as a real terminal's full input buffer would.
//! Also here: recognising a viewer's terminal answering queries the server already answered.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use super::super::answers::{QueryKind, classify_replies};
use super::super::keys::{Key, paste_bytes};
use super::wait::{Fired, WaitFor};
use super::{Session, SessionStatus, lock};
use crate::store::MarkKind;

/// How long a program must be quiet after start before a typed task is pasted in.
pub const TASK_DELIVERY_IDLE: Duration = Duration::from_millis(1000);
/// The longest a typed task waits for that quiet before it is pasted anyway.
pub const TASK_DELIVERY_LIMIT: Duration = Duration::from_secs(60);
/// How often at most the keeper hears that a session is typed into (it counts a session as
/// typed into for 2 s after).
const TELL_TYPED_EVERY: Duration = Duration::from_millis(500);

/// When the keeper was last told of a keystroke into a session.
#[derive(Debug, Default)]
pub(super) struct TypedTold(AtomicU64);

impl TypedTold {
    /// Whether the keeper should be told now (it then counts as told).
    fn due(&self) -> bool {
        static START: OnceLock<Instant> = OnceLock::new();
        // Milliseconds since the first keystroke of this server, plus one (0 is "never").
        let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1;
        let last = self.0.load(Ordering::Relaxed);
        if last != 0 && now - last < TELL_TYPED_EVERY.as_millis() as u64 {
            return false;
        }
        self.0.store(now, Ordering::Relaxed);
        true
    }
}

/// Pause between the separate writes of one input (e.g. text, then Enter).
const PAUSE_BETWEEN_WRITES: Duration = Duration::from_millis(20);
/// Input bytes that may wait for a program to read them; more is refused. (One input larger
/// than this is still taken when nothing else waits: a request body is at most 1 MiB anyway.)
pub const MAX_QUEUED_INPUT_BYTES: usize = 2 * 1024 * 1024;
/// Bytes of the terminal's answers that may wait for a program to read them; more are dropped.
pub const MAX_QUEUED_ANSWER_BYTES: usize = 4 * 1024;
/// Answers kept for matching viewers' duplicates.
pub(super) const ANSWERED_KEPT: usize = 64;
/// How long after the server answered a query a viewer's answer to it is taken as a duplicate.
pub const DUPLICATE_ANSWER_WINDOW: Duration = Duration::from_secs(3);
/// The Enter key as a terminal sends it.
const ENTER: &[u8] = b"\r";

/// Why input or a resize was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    NotRunning,
    /// The program is not reading: `queued` bytes of input already wait for it.
    QueueFull {
        queued: usize,
    },
}

/// A query the server answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answered {
    pub(super) seq: u64,
    pub(super) kind: QueryKind,
    pub(super) at: Instant,
}

/// What one viewer's duplicate answers have been matched against so far.
#[derive(Debug, Default)]
pub struct ReplyFilter {
    seen: u64,
}

/// The writes waiting for the program, shared by the session and its writer task.
pub(super) struct InputQueue {
    queue: Mutex<Queue>,
    wake: Notify,
    closed: CancellationToken,
}

struct Queue {
    items: VecDeque<Item>,
    /// Bytes of input and of answers queued or being written.
    input_bytes: usize,
    answer_bytes: usize,
    /// The writer task has an item in hand.
    writing: bool,
    /// The PTY, for writes made at once; gone once the queue is closed.
    pty: Option<Arc<OwnedFd>>,
}

/// One input (or answer): its writes go out whole, in order, with a pause between them.
struct Item {
    writes: Vec<Vec<u8>>,
    /// The first of `writes` follows one that already went out: pause before it.
    pause_first: bool,
    bytes: usize,
    answer: bool,
    done: Option<oneshot::Sender<Result<(), InputError>>>,
}

impl InputQueue {
    /// A queue writing to `pty` (non-blocking), and the writer task that serves it.
    pub(super) fn new(pty: Arc<OwnedFd>) -> (Arc<Self>, impl Future<Output = ()>) {
        let queue = Self::writing_to(Some(pty.clone()));
        (queue.clone(), write_loop(queue, pty))
    }

    /// A queue that refuses every write: the session's program is gone.
    pub(super) fn closed() -> Arc<Self> {
        let queue = Self::writing_to(None);
        queue.closed.cancel();
        queue
    }

    fn writing_to(pty: Option<Arc<OwnedFd>>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                input_bytes: 0,
                answer_bytes: 0,
                writing: false,
                pty,
            }),
            wake: Notify::new(),
            closed: CancellationToken::new(),
        })
    }

    /// Queues `writes`, or writes them at once when nothing else is queued or being written
    /// (a keystroke then goes out with no hand-off to the writer task); only what does not fit
    /// in the PTY right away, and writes that must follow a pause, wait for the writer task.
    /// Answers beyond their share are dropped (`Ok`), input beyond its share is refused.
    fn push(
        &self,
        mut writes: Vec<Vec<u8>>,
        answer: bool,
        done: Option<oneshot::Sender<Result<(), InputError>>>,
    ) -> Result<(), InputError> {
        let mut queue = lock(&self.queue);
        if self.closed.is_cancelled() {
            return Err(InputError::NotRunning);
        }
        let bytes: usize = writes.iter().map(Vec::len).sum();
        if answer {
            if queue.answer_bytes + bytes > MAX_QUEUED_ANSWER_BYTES {
                return Ok(());
            }
        } else if queue.input_bytes > 0 && queue.input_bytes + bytes > MAX_QUEUED_INPUT_BYTES {
            return Err(InputError::QueueFull {
                queued: queue.input_bytes,
            });
        }
        let mut pause_first = false;
        if queue.items.is_empty()
            && !queue.writing
            && let Some(pty) = &queue.pty
        {
            let written = match write_now(pty, &writes[0]) {
                Ok(written) => written,
                Err(err) => {
                    queue.pty = None;
                    self.closed.cancel();
                    return Err(err);
                }
            };
            if written == writes[0].len() {
                writes.remove(0);
                pause_first = true;
            } else {
                writes[0].drain(..written);
            }
            if writes.is_empty() {
                if let Some(done) = done {
                    let _ = done.send(Ok(()));
                }
                return Ok(());
            }
        }
        let bytes = writes.iter().map(Vec::len).sum();
        if answer {
            queue.answer_bytes += bytes;
        } else {
            queue.input_bytes += bytes;
        }
        queue.items.push_back(Item {
            writes,
            pause_first,
            bytes,
            answer,
            done,
        });
        drop(queue);
        self.wake.notify_one();
        Ok(())
    }

    /// Queues an answer to a query of the program; dropped when answers already fill their share.
    pub(super) fn push_answer(&self, reply: Vec<u8>) {
        let _ = self.push(vec![reply], true, None);
    }

    /// Refuses further writes and ends the writer task (whatever is queued fails), letting the
    /// PTY go.
    pub(super) fn close(&self) {
        self.closed.cancel();
        lock(&self.queue).pty = None;
    }

    async fn next(&self) -> Option<Item> {
        loop {
            let woken = self.wake.notified();
            {
                let mut queue = lock(&self.queue);
                if let Some(item) = queue.items.pop_front() {
                    queue.writing = true;
                    return Some(item);
                }
            }
            if self.closed.is_cancelled() {
                return None;
            }
            tokio::select! {
                _ = woken => {}
                _ = self.closed.cancelled() => {}
            }
        }
    }

    fn written(&self, item: &Item) {
        let mut queue = lock(&self.queue);
        queue.writing = false;
        if item.answer {
            queue.answer_bytes -= item.bytes;
        } else {
            queue.input_bytes -= item.bytes;
        }
    }
}

/// The writer task: writes what is queued until the queue is closed, then lets the PTY go.
async fn write_loop(queue: Arc<InputQueue>, pty: Arc<OwnedFd>) {
    while let Some(item) = queue.next().await {
        let result = write_all(&pty, &item.writes, item.pause_first, &queue.closed).await;
        queue.written(&item);
        if result.is_err() {
            queue.close();
        }
        if let Some(done) = item.done {
            let _ = done.send(result);
        }
    }
}

/// Writes as much of `bytes` as the PTY takes without waiting.
fn write_now(pty: &OwnedFd, bytes: &[u8]) -> Result<usize, InputError> {
    let mut written = 0;
    while written < bytes.len() {
        match nix::unistd::write(pty, &bytes[written..]) {
            Ok(n) => written += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => break,
            Err(_) => return Err(InputError::NotRunning),
        }
    }
    Ok(written)
}

/// Writes each of `writes` as its own write, with a short pause between them (and before the
/// first when `pause_first`).
async fn write_all(
    pty: &Arc<OwnedFd>,
    writes: &[Vec<u8>],
    pause_first: bool,
    closed: &CancellationToken,
) -> Result<(), InputError> {
    for (i, bytes) in writes.iter().enumerate() {
        if closed.is_cancelled() {
            return Err(InputError::NotRunning);
        }
        if i > 0 || pause_first {
            tokio::select! {
                _ = tokio::time::sleep(PAUSE_BETWEEN_WRITES) => {}
                _ = closed.cancelled() => return Err(InputError::NotRunning),
            }
        }
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            rest = &rest[write_now(pty, rest)?..];
            if !rest.is_empty() {
                // The PTY is full: wait until the program reads.
                tokio::select! {
                    writable = until_writable(pty) => writable?,
                    _ = closed.cancelled() => return Err(InputError::NotRunning),
                }
            }
        }
    }
    Ok(())
}

/// Waits until the PTY takes input again. The master is in the runtime's poll only meanwhile:
/// left in it, every byte the program read woke a worker (the terminal says "writable" each
/// time), which then waited in the kernel for the terminal's buffer work — on every keystroke.
async fn until_writable(pty: &Arc<OwnedFd>) -> Result<(), InputError> {
    // SAFETY: the descriptor stays open while registered: the `AsyncFd` holds a reference to
    // it, and is dropped (deregistered) on return.
    let registered =
        unsafe { AsyncFd::register_with_interest(pty.clone(), tokio::io::Interest::WRITABLE) }
            .map_err(|_| InputError::NotRunning)?;
    let ready = registered
        .writable()
        .await
        .map_err(|_| InputError::NotRunning)?;
    // Nothing holds the terminal's other side any more (the program is gone or closed it):
    // nobody will ever read this.
    if ready.ready().is_write_closed() {
        return Err(InputError::NotRunning);
    }
    Ok(())
}

impl Session {
    /// Writes each of `writes` to the program's terminal as its own write, with a short pause
    /// between them, and returns once they are written; the whole sequence is atomic and in
    /// order with respect to other writers.
    ///
    /// Separate writes matter for Enter: TUI agents (Ink, crossterm) read text and `\r` arriving
    /// in one chunk as a paste and do not submit it, as a person typing would.
    pub async fn write_input(&self, writes: Vec<Vec<u8>>) -> Result<(), InputError> {
        if self.status() != SessionStatus::Running {
            return Err(InputError::NotRunning);
        }
        let (done, written) = oneshot::channel();
        self.mark_input(&writes.concat());
        self.tell_typed();
        self.input.push(writes, false, Some(done))?;
        written.await.unwrap_or(Err(InputError::NotRunning))
    }

    /// Queues `bytes` for the program without waiting for them to be written (a viewer's
    /// keystrokes: its output must keep flowing while a program is not reading).
    pub fn queue_input(&self, bytes: Vec<u8>) -> Result<(), InputError> {
        if self.status() != SessionStatus::Running {
            return Err(InputError::NotRunning);
        }
        self.mark_input(&bytes);
        self.tell_typed();
        self.input.push(vec![bytes], false, None)
    }

    /// Notes `bytes` as typed now, for the recording, if the session records input.
    fn mark_input(&self, bytes: &[u8]) {
        if self.record_input {
            let offset = self.lock_state().log.total();
            let text = String::from_utf8_lossy(bytes).into_owned();
            self.mark(MarkKind::Input, offset, SystemTime::now(), text);
        }
    }

    /// Tells the keeper somebody types here (at most every `TELL_TYPED_EVERY`), so this
    /// session's output goes ahead of other sessions' floods (see `keeper/bulk.rs`).
    fn tell_typed(&self) {
        if self.typed_told.due()
            && let Some(keeper) = self.holder()
        {
            keeper.typed(&self.id);
        }
    }

    /// Types `text` as it is, then Enter (as a write of its own) if asked.
    pub async fn type_text(&self, text: Vec<u8>, enter: bool) -> Result<(), InputError> {
        self.write_input(then_enter(text, enter)).await
    }

    /// Sends keys, each as its own write, encoded for the program's current cursor-key mode.
    pub async fn send_keys(&self, keys: &[Key]) -> Result<(), InputError> {
        let application_cursor = self.lock_state().screen.application_cursor();
        let writes = keys.iter().map(|k| k.encode(application_cursor)).collect();
        self.write_input(writes).await
    }

    /// Sends `text` as a paste (see `paste_bytes`: bracketed when the program enabled it, and
    /// never carrying an escape), then Enter if asked.
    pub async fn paste(&self, text: &str, enter: bool) -> Result<(), InputError> {
        let bracketed = self.lock_state().screen.bracketed_paste();
        self.write_input(then_enter(paste_bytes(text, bracketed), enter))
            .await
    }

    /// Types the task in once the program has printed nothing for `TASK_DELIVERY_IDLE` (or
    /// after `TASK_DELIVERY_LIMIT` in any case): pasted, then Enter.
    pub async fn deliver_task_typed(&self) {
        let outcome = self
            .wait(&WaitFor {
                idle: Some(TASK_DELIVERY_IDLE),
                pattern: None,
                since: None,
                exit: false,
                agent: Vec::new(),
                timeout: TASK_DELIVERY_LIMIT,
            })
            .await;
        if outcome.fired == Fired::Exit {
            return;
        }
        match self.paste(&self.task, true).await {
            Ok(()) => {
                *lock(&self.task_delivered_at) = Some(SystemTime::now());
                self.publish();
            }
            Err(_) => tracing::warn!(session = %self.id, "the task could not be typed in"),
        }
    }

    /// Whether `input` from a viewer is only that viewer's terminal emulator answering queries
    /// the server already answered (within `DUPLICATE_ANSWER_WINDOW`, each answer matched once
    /// per viewer): such input is dropped so the program gets one answer per query. Anything
    /// else — every keystroke and paste — is the viewer's to send.
    pub fn is_duplicate_answer(&self, filter: &mut ReplyFilter, input: &[u8]) -> bool {
        let Some(kinds) = classify_replies(input) else {
            return false;
        };
        let answered = lock(&self.answered);
        let mut seen = filter.seen;
        for kind in kinds {
            let matched = answered.iter().find(|a| {
                a.seq > seen && a.kind == kind && a.at.elapsed() < DUPLICATE_ANSWER_WINDOW
            });
            match matched {
                Some(a) => seen = a.seq,
                None => return false,
            }
        }
        filter.seen = seen;
        true
    }
}

/// `first`, then Enter as a separate write when asked: TUI agents (Ink, crossterm) take text and
/// `\r` arriving in one read as a paste and would not submit it.
fn then_enter(first: Vec<u8>, enter: bool) -> Vec<Vec<u8>> {
    let mut writes = vec![first];
    if enter {
        writes.push(ENTER.to_vec());
    }
    writes
}
