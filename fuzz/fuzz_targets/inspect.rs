//! `inspect` on arbitrary bytes: the table reader, the GPT/MBR decoders and the ext/FAT probes
//! must return (an answer or an error) without panicking or hanging.
//!
//! The input is laid out twice: as the start of a disk, and — so the backup GPT path is reached —
//! its tail also at the end of a larger sparse disk whose size the first byte chooses.
#![no_main]

use imagetool::blockio::{MemImage, WriteAt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let img = MemImage::new(data.len() as u64);
    if img.write_all_at(data, 0).is_ok() {
        let _ = imagetool::probe::inspect(&img);
    }
    let Some((&mib, rest)) = data.split_first() else {
        return;
    };
    let size = (u64::from(mib % 16) + 1) << 20;
    let big = MemImage::new(size.max(rest.len() as u64 * 2));
    let tail = rest.len().min(33 * 512);
    let _ = big.write_all_at(rest, 0);
    let _ = big.write_all_at(&rest[rest.len() - tail..], big_size(&big) - tail as u64);
    let _ = imagetool::probe::inspect(&big);
});

fn big_size(m: &MemImage) -> u64 {
    imagetool::blockio::ReadAt::size(m)
}
