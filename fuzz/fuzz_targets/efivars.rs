//! The OVMF variable-store parser (`efiVariables`) on arbitrary bytes, and a boot entry added to
//! whatever parses: it must answer or fail, never panic, abort or hang.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imagetool_fuzz::run("efivars", data));
