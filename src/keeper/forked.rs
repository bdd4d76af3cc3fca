//! Starting a program inside its session's cgroup: a new process (see `spawn`), then, in it,
//! the session and terminal set up, the move into the cgroup (unless it was created there, as
//! cgroup v2 allows), and `exec`. The program and
//! everything it starts are in the cgroup from their first instruction, which moving the pid in
//! after the start could not promise — and `posix_spawn` has no step for it.
//!
//! Between the clone and `exec` the child only makes system calls (no allocation, no lock), and
//! reports a failure's errno on a close-on-exec pipe, which the parent reads to know that
//! `exec` happened.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::child::DEFAULT_SIGNALS;

/// What the child needs, all prepared before `fork`.
pub struct Prepared<'a> {
    pub path: &'a CStr,
    /// Null-terminated.
    pub argv: &'a [*mut libc::c_char],
    /// Null-terminated.
    pub envp: &'a [*mut libc::c_char],
    pub cwd: &'a CStr,
    pub tty: &'a CStr,
    /// Files of cgroups (`cgroup.procs`, or v1's `tasks`) the child writes itself into, when it
    /// was not created inside its cgroup.
    pub cgroups: &'a [CString],
    /// cgroup v2: the session's cgroup directory, to create the child in (`clone3` with
    /// `CLONE_INTO_CGROUP`, Linux 5.7): nothing moves, so no start waits for the kernel's
    /// thread-group lock, which a move takes for writing (and an RCU grace period with it).
    pub into: Option<BorrowedFd<'a>>,
}

/// A program that did not start.
pub struct Unstarted {
    pub error: io::Error,
    /// The process created for it, which exited without running it: not reaped, since its
    /// parent is the caller's parent.
    pub child: Option<u32>,
}

impl From<io::Error> for Unstarted {
    fn from(error: io::Error) -> Self {
        Self { error, child: None }
    }
}

/// Starts the program as a child of this process's parent (`CLONE_PARENT`: the launcher starts
/// the keeper's children, see `launcher.rs`); returns its pid once it runs the program.
pub fn spawn(prepared: &Prepared) -> Result<u32, Unstarted> {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 fills the two descriptors, which are then owned here.
    let (report_read, report_write) = unsafe {
        if libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error().into());
        }
        (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1]))
    };
    // Created in its cgroup where the kernel can; else moved there by the child. A kernel
    // without `clone3` says ENOSYS, one before 5.7 E2BIG (it does not know the cgroup field).
    let created_in_cgroup = prepared.into.map(|dir| clone_into(dir.as_raw_fd()));
    let (pid, in_cgroup) = match created_in_cgroup {
        Some(-1) if !matches!(errno(), libc::ENOSYS | libc::E2BIG) => (-1, true),
        Some(pid) if pid >= 0 => (pid, true),
        _ => (fork_beside(), false),
    };
    if pid < 0 {
        return Err(io::Error::last_os_error().into());
    }
    if pid == 0 {
        // SAFETY: as in `fork_beside`.
        unsafe { in_child(prepared, in_cgroup, report_write.as_raw_fd()) }
    }
    let pid = pid as u32;
    drop(report_write);
    let mut errno = [0u8; 4];
    let read = loop {
        // SAFETY: reading into a 4-byte buffer.
        let n = unsafe { libc::read(report_read.as_raw_fd(), errno.as_mut_ptr().cast(), 4) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n;
        }
    };
    if read == 0 {
        // The pipe closed on exec: the program runs.
        return Ok(pid);
    }
    Err(Unstarted {
        error: if read == 4 {
            io::Error::from_raw_os_error(i32::from_ne_bytes(errno))
        } else {
            io::Error::other("the new process ended before it ran the program")
        },
        child: Some(pid),
    })
}

/// A fork whose child's parent is ours; the child's pid, 0 in the child, or -1. The raw system
/// call skips glibc's fork handlers, which the child (system calls only, then exec) does not
/// need.
fn fork_beside() -> libc::c_long {
    // SAFETY: without CLONE_VM the child has its own copy of memory and stack; it only makes
    // async-signal-safe calls on memory prepared before (see `in_child`) and never returns.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT | libc::SIGCHLD,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    }
}

fn errno() -> libc::c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `fork_beside`, the child created in the cgroup whose directory `cgroup` is open.
fn clone_into(cgroup: libc::c_int) -> libc::c_long {
    /// Linux's `CLONE_INTO_CGROUP` (the `libc` crate's constant overflows its type).
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    // SAFETY: all zeros is a valid `clone_args` (no pidfd, tid, stack or tls asked for).
    let mut args: libc::clone_args = unsafe { std::mem::zeroed() };
    // No exit signal of its own: with CLONE_PARENT the child takes its parent's (SIGCHLD to
    // the keeper), and clone3 refuses one (EINVAL).
    args.flags = libc::CLONE_PARENT as u64 | CLONE_INTO_CGROUP;
    args.cgroup = cgroup as u64;
    // SAFETY: as in `fork_beside` (a null stack: the child goes on on a copy of this one).
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const libc::clone_args,
            std::mem::size_of::<libc::clone_args>(),
        )
    }
}

/// The child's steps; on a failure it writes the errno to `report` and exits 127. `in_cgroup`:
/// it was created inside its cgroup.
///
/// # Safety
/// Called in the child of `spawn`'s clone only.
unsafe fn in_child(p: &Prepared, in_cgroup: bool, report: libc::c_int) -> ! {
    unsafe {
        let fail = || -> ! {
            let errno = *libc::__errno_location();
            libc::write(report, errno.to_ne_bytes().as_ptr().cast(), 4);
            libc::_exit(127)
        };
        if libc::setsid() < 0 {
            fail();
        }
        for procs in p.cgroups.iter().filter(|_| !in_cgroup) {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            // "0": the writer itself.
            if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) != 1 {
                fail();
            }
            libc::close(fd);
        }
        for signal in DEFAULT_SIGNALS {
            libc::signal(signal, libc::SIG_DFL);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        if libc::chdir(p.cwd.as_ptr()) != 0 {
            fail();
        }
        // A session leader opening a terminal (without O_NOCTTY) makes it its controlling one.
        let tty = libc::open(p.tty.as_ptr(), libc::O_RDWR);
        if tty < 0 {
            fail();
        }
        for target in 0..3 {
            if tty != target && libc::dup2(tty, target) < 0 {
                fail();
            }
        }
        // Every other descriptor goes at exec (the keeper's are close-on-exec; this also takes
        // any it inherited), the report pipe last of all.
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        );
        libc::execve(
            p.path.as_ptr(),
            p.argv.as_ptr().cast(),
            p.envp.as_ptr().cast(),
        );
        fail()
    }
}
