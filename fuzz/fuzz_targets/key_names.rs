//! `monkeyproof::fuzzing::key_names` under cargo-fuzz: `cargo fuzz run key_names --sanitizer none`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| monkeyproof::fuzzing::key_names(data));
