//! The `container` reader on arbitrary bytes: it must answer or fail, never panic, abort or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imagetool_fuzz::run("container", data));
