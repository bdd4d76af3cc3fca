//! The fuzz targets, briefly: every saved input in `fuzz/regressions/`, then generated inputs
//! rich in escape sequences. `cargo fuzz run TARGET --sanitizer none` runs them for real.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 3] = [
    ("control_messages", monkeyproof::fuzzing::control_messages),
    ("key_names", monkeyproof::fuzzing::key_names),
    ("screen_model", monkeyproof::fuzzing::screen_model),
];

/// Pieces that make generated inputs look like terminal output, JSON and key names.
const PIECES: &[&[u8]] = &[
    b"\x1b",
    b"[",
    b"]",
    b"?",
    b">",
    b"$",
    b";",
    b":",
    b"0",
    b"1",
    b"6",
    b"9",
    b"2004",
    b"1049",
    b"m",
    b"H",
    b"J",
    b"K",
    b"c",
    b"n",
    b"p",
    b"t",
    b"u",
    b"h",
    b"l",
    b"r",
    b"\x07",
    b"\\",
    b"\r",
    b"\n",
    b"\x08",
    b"\t",
    b"P",
    b"_",
    b"a",
    b"\xe4\xb8\xad",
    b"\xf0\x9f\x98\x80",
    b"\xc3",
    b"\xff",
    b"\x00",
    b"{",
    b"}",
    b"\"type\"",
    b"\"resize\"",
    b"\"stdin\"",
    b"\"cols\"",
    b":",
    b",",
    b"-",
    b"C-",
    b"M-",
    b"S-",
    b"Enter",
    b"F12",
    b"Up",
];

#[test]
fn saved_inputs_still_pass() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions");
    let mut ran = 0;
    for (name, target) in TARGETS {
        for entry in std::fs::read_dir(format!("{root}/{name}")).unwrap() {
            run(name, target, &std::fs::read(entry.unwrap().path()).unwrap());
            ran += 1;
        }
    }
    assert!(ran >= 3);
}

/// Runs `target` on `input`; a failure names the input and saves it for `fuzz/regressions/`.
fn run(name: &str, target: Target, input: &[u8]) {
    if std::panic::catch_unwind(|| target(input)).is_err() {
        let saved = std::env::temp_dir().join(format!("fuzz-failure-{name}"));
        std::fs::write(&saved, input).unwrap();
        panic!(
            "{name} failed on {:?} (saved to {})",
            input.escape_ascii().to_string(),
            saved.display()
        );
    }
}

#[test]
fn generated_inputs_do_not_panic() {
    let mut rng = StdRng::seed_from_u64(0x6d6f6e6b6579);
    for (name, target) in TARGETS {
        for _ in 0..20_000 {
            let mut input = Vec::new();
            for _ in 0..rng.random_range(0..64) {
                if rng.random_bool(0.8) {
                    input.extend_from_slice(PIECES[rng.random_range(0..PIECES.len())]);
                } else {
                    input.push(rng.random());
                }
            }
            run(name, target, &input);
        }
    }
}
