//! Size strings for macro arguments: `"16 B"`, `"4 KiB"`, `"1.5 MB"`.

/// Parses a size with a unit into bytes. Decimal units (KB, MB, GB) are
/// powers of 1000, binary ones (KiB, MiB, GiB) powers of 1024.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number = number.replace('_', "");
    if number.is_empty() {
        return Err("expected a number with a unit, like \"4 KiB\"".to_string());
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{number}` is not a number"))?;
    let multiplier: u64 = match unit.trim() {
        "B" => 1,
        "KB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "" => return Err("missing unit; use B, KB, KiB, MB, MiB, GB or GiB".to_string()),
        other => {
            return Err(format!(
                "unknown unit `{other}`; use B, KB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err("size too large".to_string());
    }
    if bytes.fract() != 0.0 {
        return Err("not a whole number of bytes".to_string());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn units() {
        assert_eq!(parse_size("16 B"), Ok(16));
        assert_eq!(parse_size("4 KiB"), Ok(4096));
        assert_eq!(parse_size("4KB"), Ok(4000));
        assert_eq!(parse_size("1.5 MiB"), Ok(1_572_864));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1_000 B"), Ok(1000));
        assert!(parse_size("4 KX").unwrap_err().contains("unknown unit"));
        assert!(parse_size("4").unwrap_err().contains("missing unit"));
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("0.5 B").is_err());
        assert!(parse_size("99999999999 GiB").is_err());
    }
}
