//! One size syntax for every size flag of the CLI.
//!
//! * a bare number is bytes (`4096`), except where the flag stands for a make-disk-image key
//!   documented in MiB (`--disk-size`): there a bare number keeps that meaning;
//! * `K`, `M`, `G`, `T` and `KiB`, `MiB`, `GiB`, `TiB` are powers of 1024 (`512M`, `1.5GiB`);
//! * `KB`, `MB`, `GB`, `TB` are powers of 1000 (`2MB` is 2,000,000 bytes);
//! * a decimal fraction is allowed with a suffix (`0.5G`, `1.5GiB`) when the result is a whole
//!   number of bytes;
//! * `auto` where the flag has an automatic size.
//!
//! Spec files keep make-disk-image's meaning of each key (`numfmt --from=iec` for
//! `additionalSpace` and `bootSize`, MiB for `diskSize`): the flags are converted to that form
//! before they reach the spec, so a flag and its key never disagree.

/// Parses `text`, given to `flag`, as a size in bytes.
///
/// # Errors
/// A message naming the flag and the text when it is not a size, or overflows.
pub fn parse(flag: &str, text: &str) -> Result<u64, String> {
    parse_with_unit(flag, text, 1)
}

/// As [`parse`], with a bare number counting `unit` bytes (1 MiB for `--disk-size`).
///
/// # Errors
/// As [`parse`].
pub fn parse_with_unit(flag: &str, text: &str, unit: u64) -> Result<u64, String> {
    let bad = || {
        format!(
            "{flag} {text:?}: expected a size: bytes, or a number with K/M/G/T (KiB/MiB/GiB/TiB, \
             powers of 1024) or KB/MB/GB/TB (powers of 1000), e.g. 512M, 2G, 1.5GiB"
        )
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let mult: u64 = match suffix.trim() {
        "" => unit,
        "B" => 1,
        "K" | "k" | "KiB" | "Ki" => 1 << 10,
        "M" | "m" | "MiB" | "Mi" => 1 << 20,
        "G" | "g" | "GiB" | "Gi" => 1 << 30,
        "T" | "t" | "TiB" | "Ti" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty() && frac.is_empty() || frac.contains('.') || frac.len() > 12 {
        return Err(bad());
    }
    let too_large = || format!("{flag} {text:?}: too large");
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_mul(mult).ok_or_else(too_large)?;
    if !frac.is_empty() {
        // frac / 10^len of `mult`, exactly: refuse what is not a whole number of bytes.
        let den = 10u128.pow(frac.len() as u32);
        let f: u128 = frac.parse().map_err(|_| bad())?;
        let part = f * u128::from(mult);
        if !part.is_multiple_of(den) {
            return Err(format!("{flag} {text:?}: not a whole number of bytes"));
        }
        let part = u64::try_from(part / den).map_err(|_| too_large())?;
        bytes = bytes.checked_add(part).ok_or_else(too_large)?;
    }
    Ok(bytes)
}

/// `auto` (`None`) or a size.
///
/// # Errors
/// As [`parse`].
pub fn parse_auto(flag: &str, text: &str) -> Result<Option<u64>, String> {
    if text.trim() == "auto" {
        Ok(None)
    } else {
        parse(flag, text).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_the_size_syntax() {
        let ok = |t: &str| parse("--x", t).unwrap();
        assert_eq!(ok("4096"), 4096);
        assert_eq!(ok("512M"), 512 << 20);
        assert_eq!(ok("512MiB"), 512 << 20);
        assert_eq!(ok("2G"), 2 << 30);
        assert_eq!(ok("1.5GiB"), 3 << 29);
        assert_eq!(ok("0.5G"), 1 << 29);
        assert_eq!(ok("2MB"), 2_000_000);
        assert_eq!(ok("1KB"), 1000);
        assert_eq!(ok("3T"), 3 << 40);
        assert_eq!(ok("100B"), 100);
        assert_eq!(
            parse_with_unit("--disk-size", "270", 1 << 20),
            Ok(270 << 20)
        );
        assert_eq!(parse_with_unit("--disk-size", "2G", 1 << 20), Ok(2 << 30));
        for bad in [
            "",
            "M",
            "12X",
            "1.2.3M",
            "-1",
            "1.5",
            "0.3K",
            "99999999999999T",
            "auto",
        ] {
            let e = parse("--x", bad).unwrap_err();
            assert!(e.starts_with("--x"), "{bad}: {e}");
        }
        assert_eq!(parse_auto("--x", "auto"), Ok(None));
    }
}
