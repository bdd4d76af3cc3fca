//! Starting a session's program on its PTY: a session leader (pid == sid) whose controlling
//! terminal is the PTY, with default signal handling and none of the keeper's descriptors.
//!
//! portable-pty's `spawn_command` does it with `fork` and a child that lists `/dev/fd` and
//! closes the descriptors one by one; `fork` and `posix_spawn` from the process that holds every
//! PTY also copy (and `exec` closes) its whole descriptor table. So the keeper's launcher, a
//! small process with a handful of descriptors, starts the programs (see `launcher.rs`), each in
//! a new process that enters its cgroups, becomes a session leader and opens the terminal
//! before `exec` (see `forked.rs`). portable-pty still opens, sizes and owns the PTY.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::forked;

/// What to run, and where.
pub struct Program<'a> {
    /// Program and arguments; `argv[0]` is looked up in the program's `PATH`.
    pub argv: &'a [String],
    /// Absolute working directory.
    pub cwd: &'a Path,
    /// The program's whole environment, `NAME=value` each (see `environment`).
    pub env: &'a [Vec<u8>],
    /// Files of cgroups (`cgroup.procs`, or v1's `tasks`) the program is in before it runs (see
    /// `forked`).
    pub cgroups: &'a [String],
}

/// Signals whose handling the program gets back to default (the server's runtime handles or
/// ignores some of them).
pub(super) const DEFAULT_SIGNALS: [libc::c_int; 7] = [
    libc::SIGCHLD,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGALRM,
    libc::SIGPIPE,
];

/// Starts `program` on the terminal at `tty` (the PTY's slave side) as a child of this
/// process's parent; returns its pid.
pub fn spawn_on_terminal(tty: &Path, program: &Program) -> Result<u32, forked::Unstarted> {
    let Some(name) = program.argv.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command").into());
    };
    let search = program
        .env
        .iter()
        .find_map(|pair| pair.strip_prefix(b"PATH="))
        .map(OsStr::from_bytes);
    let path = find_program(name, search, program.cwd)?;
    let c = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
    };
    let path = c(path.as_os_str().as_bytes())?;
    let argv = program
        .argv
        .iter()
        .map(|a| c(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let envp = program
        .env
        .iter()
        .map(|pair| c(pair))
        .collect::<io::Result<Vec<_>>>()?;
    let cwd = c(program.cwd.as_os_str().as_bytes())?;
    let tty = c(tty.as_os_str().as_bytes())?;
    let pointers = |strings: &[CString]| {
        let mut p: Vec<*mut libc::c_char> = strings.iter().map(|s| s.as_ptr().cast_mut()).collect();
        p.push(std::ptr::null_mut());
        p
    };
    let (argv_p, envp_p) = (pointers(&argv), pointers(&envp));
    let cgroups = program
        .cgroups
        .iter()
        .map(|p| c(p.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    // cgroup v2 (one cgroup, entered through its `cgroup.procs`): the child is created in it.
    let v2_dir = match program.cgroups {
        [procs] if procs.ends_with("/cgroup.procs") => Path::new(procs).parent(),
        _ => None,
    };
    let v2_dir = v2_dir.and_then(|dir| std::fs::File::open(dir).ok());
    forked::spawn(&forked::Prepared {
        path: &path,
        argv: &argv_p,
        envp: &envp_p,
        cwd: &cwd,
        tty: &tty,
        cgroups: &cgroups,
        into: v2_dir.as_ref().map(|dir| dir.as_fd()),
    })
}

/// A program's environment: the server's, less `remove`, plus TERM and `set`; as
/// `(NAME, value)` pairs.
pub fn environment(remove: &[String], set: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    for key in remove {
        env.remove(OsStr::new(key));
    }
    env.insert("TERM".into(), "xterm-256color".into());
    for (key, value) in set {
        env.insert(key.into(), value.into());
    }
    env.into_iter().collect()
}

/// Where `name` is: itself when it has a slash, else the first executable file of that name in
/// `path` (`PATH`'s directories; relative ones count from `cwd`).
fn find_program(name: &str, path: Option<&OsStr>, cwd: &Path) -> io::Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = path.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(path)
        .map(|dir| cwd.join(dir).join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

/// A descriptor that turns readable once process `pid` has ended, so its end can be awaited
/// without a thread blocked in `waitpid`.
pub fn exit_notice(pid: u32) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns; the `AsyncFd` owns it while it is
    // registered.
    unsafe {
        AsyncFd::register_with_interest(OwnedFd::from_raw_fd(fd as RawFd), Interest::READABLE)
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_programs_path() {
        let cwd = Path::new("/");
        let sh = find_program("sh", Some(OsStr::new("/nowhere:/bin")), cwd).unwrap();
        assert_eq!(sh, Path::new("/bin/sh"));
        assert_eq!(
            find_program("./x", None, cwd).unwrap(),
            Path::new("./x"),
            "a path is taken as it is"
        );
        let missing = find_program("no-such-program-xyz", None, cwd).unwrap_err();
        assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
    }
}
