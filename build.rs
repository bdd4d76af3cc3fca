//! Builds the browser page in `web/` (npm packages + esbuild) into `$OUT_DIR/web`, where
//! `src/api/web.rs` embeds it: the binary serves the page with no `web/` folder beside it.

use std::path::Path;
use std::process::Command;

fn main() {
    for input in [
        "web/src",
        "web/build.mjs",
        "web/package.json",
        "web/package-lock.json",
    ] {
        println!("cargo:rerun-if-changed={input}");
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("web");

    // npm ci when node_modules is missing or older than the lockfile.
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (
        modified(&installed),
        modified(&web.join("package-lock.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    };
    if stale {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web));
    }
    run(Command::new("node")
        .arg("build.mjs")
        .arg(&out)
        .current_dir(&web));
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run {cmd:?} (Node.js and npm are needed to build the web page): {e}")
    });
    assert!(status.success(), "{cmd:?} failed: {status}");
}
