//! A cgroup for each session, so that one runaway agent cannot take the box's memory,
//! processes or CPU from the rest: `memory.max` (over it the kernel OOM-kills within the session
//! alone), `pids.max` (a fork bomb stops there) and `cpu.weight` (its share when the CPU is
//! contended; the flood throttle lowers it while a session floods).
//!
//! cgroup v2 when the unified hierarchy has the memory, pids and cpu controllers; else the v1
//! hierarchies of those controllers (as on hosts that still mount v1, this one among them). The
//! server makes `monkeyproof/data-…/<session id>` below its own cgroup; the keeper's child enters it
//! before it runs the program (see `keeper::forked`), so nothing the program starts escapes.
//! A server that may not create cgroups (not root, no delegated subtree) says why once and runs
//! sessions without them.

use std::io;
use std::path::{Path, PathBuf};

/// The directory made below the server's own cgroup for its sessions.
const SESSIONS_DIR: &str = "monkeyproof";
/// v2: the leaf beside `SESSIONS_DIR` that the processes of the server's cgroup move to.
const SERVER_LEAF: &str = "monkeyproof-server";
/// The controllers a session's cgroup needs.
const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// `cpu.weight`'s range (v2), which the API uses on v1 too.
pub const CPU_WEIGHT_RANGE: std::ops::RangeInclusive<u64> = 1..=10_000;
/// `memory.max` accepted, in bytes: a shell needs a few MiB; 1 PiB is beyond any machine.
pub const MEMORY_MAX_RANGE: std::ops::RangeInclusive<u64> = (4 << 20)..=(1 << 50);
/// `pids.max` accepted: the kernel's largest pid number.
pub const PIDS_MAX_RANGE: std::ops::RangeInclusive<u64> = 1..=4_194_304;
/// The weight a flooding session gets (see `session::throttle`).
pub const THROTTLED_CPU_WEIGHT: u64 = 1;

/// A session's cgroup.
#[derive(Debug)]
pub struct Membership {
    pub cgroups: std::sync::Arc<Cgroups>,
    /// Its CPU weight when it is not throttled.
    pub cpu_weight: u64,
}

/// A session's limits; `None` is no limit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Bytes of memory (pages, kernel memory and page cache charged to the session).
    pub memory_max: Option<u64>,
    /// Processes and threads at once.
    pub pids_max: Option<u64>,
    /// CPU share when the CPU is contended, 1–10000 (100 is a normal process's).
    pub cpu_weight: u64,
}

/// Limits asked for with a session; the server's defaults fill in the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitRequest {
    pub memory_max: Option<u64>,
    pub pids_max: Option<u64>,
    pub cpu_weight: Option<u64>,
}

impl LimitRequest {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The sessions' cgroups, and the limits they get when a request does not say.
#[derive(Debug)]
pub struct Cgroups {
    hierarchy: Hierarchy,
    /// This data directory's directory below each of `hierarchy`'s: a server finds the
    /// cgroups of the sessions it adopts there, and sessions of other data directories never
    /// mix with them.
    data_dir_name: String,
    defaults: Limits,
}

/// Where the sessions' cgroups are made (`monkeyproof` below the server's own cgroup): one
/// directory (v2) or one per controller (v1).
#[derive(Debug)]
enum Hierarchy {
    V2 { sessions: PathBuf },
    V1 { sessions: [PathBuf; 3] },
}

/// How old an empty cgroup must be to be taken for one a dead server left (a new one is
/// entered within milliseconds).
const LEFT_BEHIND_AGE: std::time::Duration = std::time::Duration::from_secs(60);

impl Cgroups {
    /// The place for the cgroups of `data_dir`'s sessions, made if need be; `Err` says why there
    /// is none. Empty session cgroups that servers which died left behind are removed by a
    /// thread of its own.
    pub fn set_up(defaults: Limits, data_dir: &Path) -> Result<Cgroups, String> {
        let hierarchy = Hierarchy::find()?;
        hierarchy.make()?;
        let data_dir_name = data_dir_name(data_dir)?;
        for base in hierarchy.bases() {
            hierarchy.make_data_dir(&base.join(&data_dir_name))?;
        }
        let bases: Vec<PathBuf> = hierarchy.bases().to_vec();
        let _ = std::thread::Builder::new()
            .name("cgroup-sweep".into())
            .spawn(move || remove_left_behind(&bases, LEFT_BEHIND_AGE));
        Ok(Cgroups {
            hierarchy,
            data_dir_name,
            defaults,
        })
    }

    /// `request` with the defaults where it says nothing.
    pub fn limits_for(&self, request: &LimitRequest) -> Limits {
        Limits {
            memory_max: request.memory_max.or(self.defaults.memory_max),
            pids_max: request.pids_max.or(self.defaults.pids_max),
            cpu_weight: request.cpu_weight.unwrap_or(self.defaults.cpu_weight),
        }
    }

    /// Which version the cgroups are: 1 or 2.
    pub fn version(&self) -> u8 {
        match self.hierarchy {
            Hierarchy::V1 { .. } => 1,
            Hierarchy::V2 { .. } => 2,
        }
    }
}

impl Hierarchy {
    /// Makes a data directory's directory of session cgroups (v2: giving its children the
    /// controllers).
    fn make_data_dir(&self, dir: &Path) -> Result<(), String> {
        make_dir(dir)?;
        match self {
            Hierarchy::V2 { .. } => give_controllers(dir),
            Hierarchy::V1 { .. } => Ok(()),
        }
    }

    /// The file a session's program writes "0" into to enter a cgroup (it is single-threaded
    /// then: a child just forked). On v1 that is `tasks`, which moves the one thread: writing
    /// `cgroup.procs` moves a whole thread group, for which the kernel takes its thread-group
    /// lock for writing and first waits for an RCU grace period — 9–27 ms on about one start in
    /// seven here, against 0.4 ms. (v2 allows `cgroup.threads` only in threaded subtrees.)
    fn entry_file(&self) -> &'static str {
        match self {
            Hierarchy::V2 { .. } => "cgroup.procs",
            Hierarchy::V1 { .. } => "tasks",
        }
    }

    fn bases(&self) -> &[PathBuf] {
        match self {
            Hierarchy::V2 { sessions } => std::slice::from_ref(sessions),
            Hierarchy::V1 { sessions } => sessions,
        }
    }

    /// Where the sessions' cgroups go, without making anything: for the setup, and for a
    /// stop that removes them.
    fn find() -> Result<Hierarchy, String> {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let unified = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .find(|root| Path::new(root).join("cgroup.controllers").exists());
        let v2_path = own.lines().find_map(|line| line.strip_prefix("0::"));
        if let (Some(root), Some(path)) = (unified, v2_path) {
            let dir = Path::new(root).join(path.trim_start_matches('/'));
            // A server in the leaf an earlier server made (a second server in the same
            // service, or one started by a process the first moved there) shares its place:
            // one more leaf below would nest deeper with every start.
            let dir = match dir.parent() {
                Some(parent) if dir.file_name() == Some(SERVER_LEAF.as_ref()) => parent.to_owned(),
                _ => dir,
            };
            let available =
                std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            if CONTROLLERS
                .iter()
                .all(|c| available.split_whitespace().any(|a| a == *c))
            {
                return Ok(Hierarchy::V2 {
                    sessions: dir.join(SESSIONS_DIR),
                });
            }
        }
        let mut sessions = Vec::new();
        for controller in CONTROLLERS {
            // `N:memory:/path` (a hierarchy may bind several controllers: `N:cpu,cpuacct:/`).
            let path = own.lines().find_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, names, path) = (fields.next()?, fields.next()?, fields.next()?);
                names.split(',').any(|n| n == controller).then_some(path)
            });
            let mount = Path::new("/sys/fs/cgroup").join(controller);
            let (Some(path), true) = (path, mount.join("cgroup.procs").exists()) else {
                return Err(format!(
                    "no cgroup v2 with the memory, pids and cpu controllers, and no v1 {controller} hierarchy at {}",
                    mount.display()
                ));
            };
            sessions.push(mount.join(path.trim_start_matches('/')).join(SESSIONS_DIR));
        }
        let sessions = sessions.try_into().expect("one directory per controller");
        Ok(Hierarchy::V1 { sessions })
    }

    /// Makes the sessions' directories (v2: with the controllers given down to them).
    fn make(&self) -> Result<(), String> {
        match self {
            Hierarchy::V2 { sessions } => {
                set_up_v2(sessions.parent().expect("below the server's cgroup"))?;
                make_dir(sessions)?;
                give_controllers(sessions)
            }
            Hierarchy::V1 { sessions } => sessions.iter().try_for_each(|dir| make_dir(dir)),
        }
    }
}

impl Cgroups {
    /// Makes session `id`'s cgroup with `limits`; returns the files its program writes itself
    /// into (see `Hierarchy::entry_file`).
    pub fn create(&self, id: &str, limits: &Limits) -> io::Result<Vec<PathBuf>> {
        let dirs = self.dirs(id);
        for dir in &dirs {
            let mut made = std::fs::create_dir(dir);
            if made
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
            {
                // Another server's sweep took this data directory's (empty) directory.
                let parent = dir.parent().expect("below the data directory's");
                self.hierarchy
                    .make_data_dir(parent)
                    .map_err(io::Error::other)?;
                made = std::fs::create_dir(dir);
            }
            match made {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        let made = self.apply(id, limits);
        if made.is_err() {
            self.remove(id);
        }
        made?;
        let entry = self.hierarchy.entry_file();
        Ok(dirs.iter().map(|d| d.join(entry)).collect())
    }

    fn apply(&self, id: &str, limits: &Limits) -> io::Result<()> {
        let number = |n: Option<u64>, unlimited: &str| match n {
            Some(n) => n.to_string(),
            None => unlimited.to_string(),
        };
        match self.hierarchy {
            Hierarchy::V2 { .. } => {
                let dir = &self.dirs(id)[0];
                std::fs::write(dir.join("memory.max"), number(limits.memory_max, "max"))?;
                // Over the limit, the whole session goes (not one process chosen from it), and
                // it is not let out through swap.
                std::fs::write(dir.join("memory.oom.group"), "1")?;
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                std::fs::write(dir.join("pids.max"), number(limits.pids_max, "max"))?;
                self.set_cpu_weight(id, limits.cpu_weight)
            }
            Hierarchy::V1 { .. } => {
                let [memory, pids, _] = self.dirs(id).try_into().expect("three");
                let bytes = number(limits.memory_max, "-1");
                // Memory + swap, where swap is accounted (the file exists), may never be below
                // memory alone: set before when it rises, after when it falls.
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                let _ = std::fs::write(&memsw, &bytes);
                std::fs::write(memory.join("memory.limit_in_bytes"), &bytes)?;
                let _ = std::fs::write(&memsw, &bytes);
                std::fs::write(pids.join("pids.max"), number(limits.pids_max, "max"))?;
                self.set_cpu_weight(id, limits.cpu_weight)
            }
        }
    }

    /// Session `id`'s CPU weight (v1: the equal `cpu.shares`, 1024 for 100).
    pub fn set_cpu_weight(&self, id: &str, weight: u64) -> io::Result<()> {
        let dirs = self.dirs(id);
        match self.hierarchy {
            Hierarchy::V2 { .. } => std::fs::write(dirs[0].join("cpu.weight"), weight.to_string()),
            Hierarchy::V1 { .. } => {
                let shares = (weight * 1024 / 100).clamp(2, 262_144);
                std::fs::write(dirs[2].join("cpu.shares"), shares.to_string())
            }
        }
    }

    /// The CPU weight session `id` (started by an earlier server) gets when not throttled, if it
    /// has a cgroup. A server that stopped while the session was throttled left the throttled
    /// weight: it then gets the default.
    pub fn unthrottled_weight(&self, id: &str) -> Option<u64> {
        let weight = self.limits(id)?.cpu_weight;
        Some(if weight <= THROTTLED_CPU_WEIGHT {
            self.defaults.cpu_weight
        } else {
            weight
        })
    }

    /// Session `id`'s limits as its cgroup has them; `None` when it has none.
    pub fn limits(&self, id: &str) -> Option<Limits> {
        let dirs = self.dirs(id);
        let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).ok();
        // "max" (v2), or v1's "unlimited", the largest page-aligned i64.
        let limit = |text: String| {
            text.trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n < (i64::MAX as u64) & !0xfff)
        };
        Some(match self.hierarchy {
            Hierarchy::V2 { .. } => Limits {
                memory_max: limit(read(&dirs[0], "memory.max")?),
                pids_max: limit(read(&dirs[0], "pids.max")?),
                cpu_weight: read(&dirs[0], "cpu.weight")?.trim().parse().ok()?,
            },
            Hierarchy::V1 { .. } => Limits {
                memory_max: limit(read(&dirs[0], "memory.limit_in_bytes")?),
                pids_max: limit(read(&dirs[1], "pids.max")?),
                cpu_weight: read(&dirs[2], "cpu.shares")?
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .map(|shares| (shares * 100).div_ceil(1024))?,
            },
        })
    }

    /// How many of session `id`'s processes the kernel killed for going over `memory.max`.
    pub fn oom_kills(&self, id: &str) -> Option<u64> {
        // The memory controller's directory is the first.
        let dir = self.dirs(id).swap_remove(0);
        let file = match self.hierarchy {
            Hierarchy::V2 { .. } => "memory.events",
            Hierarchy::V1 { .. } => "memory.oom_control",
        };
        let text = std::fs::read_to_string(dir.join(file)).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Removes session `id`'s cgroup, once none of its processes is left (else the kernel
    /// refuses, and it stays).
    pub fn remove(&self, id: &str) {
        for dir in self.dirs(id) {
            match std::fs::remove_dir(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(cgroup = %dir.display(), "cannot remove a session's cgroup: {e}");
                }
                _ => {}
            }
        }
    }

    /// Session `id`'s directories: the one (v2), or memory's, pids' and cpu's (v1).
    fn dirs(&self, id: &str) -> Vec<PathBuf> {
        self.hierarchy
            .bases()
            .iter()
            .map(|base| base.join(&self.data_dir_name).join(id))
            .collect()
    }
}

/// The name of `data_dir`'s directory of session cgroups: its device and inode, the same for
/// every server of the data directory.
fn data_dir_name(data_dir: &Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(data_dir)
        .map_err(|e| format!("cannot read {}: {e}", data_dir.display()))?;
    Ok(format!("data-{}-{}", meta.dev(), meta.ino()))
}

/// Removes every cgroup of `data_dir`'s sessions once its processes are gone, waiting at most
/// `within` for them: for whoever kills a server and its keeper outright (the benchmark), which
/// leaves them behind. Blocking.
pub fn remove_all_of(data_dir: &Path, within: std::time::Duration) {
    let (Ok(hierarchy), Ok(name)) = (Hierarchy::find(), data_dir_name(data_dir)) else {
        return;
    };
    let deadline = std::time::Instant::now() + within;
    for base in hierarchy.bases() {
        let dir = base.join(&name);
        loop {
            remove_empty_sessions(&dir, std::time::Duration::ZERO);
            if subdirectories(&dir).is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

/// v2: lets `own`'s children have the three controllers. A cgroup other than the root can only
/// give controllers to its children while it holds no process itself, so the processes in the
/// server's own cgroup (the server, its keeper if one runs, and whatever else shares it) move to
/// a leaf beside the sessions, `<own>/monkeyproof-server`, as container init systems do.
fn set_up_v2(own: &Path) -> Result<(), String> {
    let Err(first) = enable_controllers(own) else {
        return Ok(());
    };
    if first.raw_os_error() != Some(libc::EBUSY) {
        return Err(cannot_enable(own, first));
    }
    let leaf = own.join(SERVER_LEAF);
    make_dir(&leaf)?;
    let procs = std::fs::read_to_string(own.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines() {
        // A process may have ended meanwhile.
        let _ = std::fs::write(leaf.join("cgroup.procs"), pid);
    }
    enable_controllers(own).map_err(|e| {
        format!(
            "{} (it holds processes this server did not move)",
            cannot_enable(own, e)
        )
    })
}

/// What v2's `cgroup.subtree_control` is given at each level down to the sessions.
const CONTROLS: &str = "+memory +pids +cpu";

/// v2: lets `dir`'s children have the three controllers.
fn give_controllers(dir: &Path) -> Result<(), String> {
    enable_controllers(dir).map_err(|e| cannot_enable(dir, e))
}

fn enable_controllers(dir: &Path) -> io::Result<()> {
    std::fs::write(dir.join("cgroup.subtree_control"), CONTROLS)
}

fn cannot_enable(dir: &Path, err: io::Error) -> String {
    format!("cannot enable the controllers in {}: {err}", dir.display())
}

/// Removes the session cgroups below `bases` (every data directory's) that are empty and
/// older than `min_age`: a server and keeper that died (or a benchmark that killed
/// them) never removed theirs. A cgroup that still holds a process cannot be removed (the
/// kernel refuses), so a running session's is never touched.
fn remove_left_behind(bases: &[PathBuf], min_age: std::time::Duration) {
    let mut removed = 0;
    for base in bases {
        for data_dir in subdirectories(base) {
            removed += remove_empty_sessions(&data_dir, min_age);
            if is_older_than(&data_dir, min_age) {
                // Refused while it has sessions.
                let _ = std::fs::remove_dir(&data_dir);
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed cgroups that ended sessions left behind");
    }
}

/// Removes the session cgroups in `data_dir` (a data directory's directory of them) that are
/// empty and at least `min_age` old; returns how many.
fn remove_empty_sessions(data_dir: &Path, min_age: std::time::Duration) -> usize {
    subdirectories(data_dir)
        .iter()
        .filter(|session| is_older_than(session, min_age) && std::fs::remove_dir(session).is_ok())
        .count()
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn is_older_than(dir: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|elapsed| elapsed >= age))
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            Err(format!("cannot make the cgroup {}: {e}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_cgroup_has_its_limits_and_goes_once_empty() {
        let data_dir = std::env::temp_dir();
        let defaults = Limits {
            memory_max: None,
            pids_max: None,
            cpu_weight: 100,
        };
        let cgroups = match Cgroups::set_up(defaults, &data_dir) {
            Ok(cgroups) => cgroups,
            Err(why) => {
                eprintln!("skipped: no cgroups here ({why})");
                return;
            }
        };
        let limits = Limits {
            memory_max: Some(64 << 20),
            pids_max: Some(20),
            cpu_weight: 50,
        };
        let id = format!("test-{}", std::process::id());
        let procs = cgroups.create(&id, &limits).unwrap();
        assert!(procs.iter().all(|p| p.exists()), "{procs:?}");
        assert_eq!(cgroups.limits(&id), Some(limits));
        assert_eq!(cgroups.oom_kills(&id), Some(0));
        cgroups.set_cpu_weight(&id, 10_000).unwrap();
        assert_eq!(cgroups.limits(&id).unwrap().cpu_weight, 10_000);
        let unlimited = Limits {
            memory_max: None,
            pids_max: None,
            cpu_weight: 100,
        };
        cgroups.create(&id, &unlimited).unwrap();
        assert_eq!(cgroups.limits(&id), Some(unlimited));
        cgroups.remove(&id);
        assert!(procs.iter().all(|p| !p.exists()));
        assert_eq!(cgroups.limits(&id), None);

        // What a dead server left: empty cgroups go, one with a process stays.
        let base = cgroups.hierarchy.bases()[0].join(format!("sweep-test-{}", std::process::id()));
        let left = base.join("data-a");
        for dir in [&base, &left, &left.join("empty"), &left.join("busy")] {
            std::fs::create_dir(dir).unwrap();
        }
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        std::fs::write(left.join("busy/cgroup.procs"), sleeper.id().to_string()).unwrap();
        remove_left_behind(std::slice::from_ref(&base), std::time::Duration::ZERO);
        assert!(!left.join("empty").exists());
        assert!(left.join("busy").exists(), "a cgroup with a process stays");
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        remove_left_behind(std::slice::from_ref(&base), std::time::Duration::ZERO);
        assert!(!left.exists());
        std::fs::remove_dir(&base).unwrap();
    }
}
