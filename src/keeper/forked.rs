//! Starting a program inside its session's cgroup: a new process (see `spawn`), then, in it,
//! the session and terminal set up, the move into the cgroup, and `exec`. The program and
//! everything it starts are in the cgroup from their first instruction, which moving the pid in
//! after the start could not promise — and `posix_spawn` has no step for it.
//!
//! Between the clone and `exec` the child only makes system calls (no allocation, no lock), and
//! reports a failure's errno on a close-on-exec pipe, which the parent reads to know that
//! `exec` happened.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
    /// Files of cgroups (`cgroup.procs`, or v1's `tasks`) the child writes itself into.
    pub cgroups: &'a [CString],
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
    // A fork whose child's parent is ours. The raw system call skips glibc's fork handlers,
    // which the child (system calls only, then exec) does not need.
    // SAFETY: without CLONE_VM the child has its own copy of memory and stack; it only makes
    // async-signal-safe calls on memory prepared before (see `in_child`) and never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PARENT | libc::SIGCHLD,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error().into());
    }
    if pid == 0 {
        // SAFETY: as above.
        unsafe { in_child(prepared, report_write.as_raw_fd()) }
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

/// The child's steps; on a failure it writes the errno to `report` and exits 127.
///
/// # Safety
/// Called in the child of `spawn`'s clone only.
unsafe fn in_child(p: &Prepared, report: libc::c_int) -> ! {
    unsafe {
        let fail = || -> ! {
            let errno = *libc::__errno_location();
            libc::write(report, errno.to_ne_bytes().as_ptr().cast(), 4);
            libc::_exit(127)
        };
        if libc::setsid() < 0 {
            fail();
        }
        for procs in p.cgroups {
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
