//! `monkeyproof::fuzzing::screen_model` under cargo-fuzz: `cargo fuzz run screen_model --sanitizer none`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monkeyproof::fuzzing::screen_model(data));
