//! A minimal, private reader of the process RSS (`VmRSS` in
//! `/proc/self/status`), so a reading can compute `rss_overhead_ratio`
//! without depending on the `host` module.

/// The `VmRSS:` value of `/proc/self/status` in bytes, or `None` when the
/// file is missing (not Linux) or the line is absent or malformed.
pub(crate) fn process_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// Finds `VmRSS:   1234 kB` and returns it in bytes (kB meaning KiB).
fn parse_vm_rss(status: &str) -> Option<u64> {
    let rest = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let mut fields = rest.split_whitespace();
    let kib: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(kib.saturating_mul(1024)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_vm_rss;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tx\nVmHWM:\t  2000 kB\nVmRSS:\t    1234 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(status), Some(1234 * 1024));
    }

    #[test]
    fn missing_or_malformed_is_none() {
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tabc kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\n"), None);
    }
}
