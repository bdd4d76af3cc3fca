//! `monkeyproof::fuzzing::control_messages` under cargo-fuzz: `cargo fuzz run control_messages --sanitizer none`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monkeyproof::fuzzing::control_messages(data));
