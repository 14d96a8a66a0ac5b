//! Byte-size parsing for command-line arguments such as `--bytes 1G`.
//!
//! Units are binary: `K` = 2^10, `M` = 2^20, `G` = 2^30, `T` = 2^40. The unit
//! letter is case-insensitive and may be followed by `iB` (`4GiB`) or `B`
//! (`4GB`, still binary). A bare number is a byte count.

/// Why a size string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSizeError {
    /// The string was empty (or only whitespace).
    #[error("empty size; expected a byte count such as 1048576, 64K, 8M or 1G")]
    Empty,
    /// The string did not start with a decimal number.
    #[error(
        "invalid size {input:?}: expected a decimal number optionally followed by K, M, G or T"
    )]
    NotANumber {
        /// The offending input.
        input: String,
    },
    /// The number was followed by something other than a known unit.
    #[error("invalid size {input:?}: unknown unit {unit:?}; use K, M, G or T (binary, 1G = 2^30)")]
    UnknownUnit {
        /// The offending input.
        input: String,
        /// The unrecognised suffix.
        unit: String,
    },
    /// The value does not fit into 64 bits.
    #[error("size {input:?} is too large (more than 2^64 - 1 bytes)")]
    Overflow {
        /// The offending input.
        input: String,
    },
}

/// Parses a byte size such as `1048576`, `64K`, `8M`, `1G` or `2GiB`.
///
/// Units are binary (`1K` = 1024, `1G` = 2^30); see the [module docs](self).
pub fn parse_size(input: &str) -> Result<u64, ParseSizeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ParseSizeError::Empty);
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    if digits.is_empty() {
        return Err(ParseSizeError::NotANumber {
            input: input.to_owned(),
        });
    }
    let value: u64 = digits.parse().map_err(|_| ParseSizeError::Overflow {
        input: input.to_owned(),
    })?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(ParseSizeError::UnknownUnit {
                input: input.to_owned(),
                unit: unit.to_owned(),
            });
        }
    };
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| ParseSizeError::Overflow {
            input: input.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1"), Ok(1));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("  42 "), Ok(42));
        assert_eq!(parse_size("42B"), Ok(42));
        assert_eq!(parse_size(&u64::MAX.to_string()), Ok(u64::MAX));
    }

    #[test]
    fn binary_units() {
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("64k"), Ok(64 * 1024));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("3g"), Ok(3 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("5MB"), Ok(5 << 20));
        assert_eq!(parse_size("0G"), Ok(0));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_size(""), Err(ParseSizeError::Empty));
        assert_eq!(parse_size("   "), Err(ParseSizeError::Empty));
        assert!(matches!(
            parse_size("G"),
            Err(ParseSizeError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_size("-1"),
            Err(ParseSizeError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_size("1.5G"),
            Err(ParseSizeError::UnknownUnit { ref unit, .. }) if unit == ".5G"
        ));
        assert!(matches!(
            parse_size("10X"),
            Err(ParseSizeError::UnknownUnit { ref unit, .. }) if unit == "X"
        ));
        assert!(matches!(
            parse_size("1 G"),
            Err(ParseSizeError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_size("18446744073709551616"),
            Err(ParseSizeError::Overflow { .. })
        ));
        assert!(matches!(
            parse_size("16777216T"),
            Err(ParseSizeError::Overflow { .. })
        ));
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let msg = parse_size("10X").unwrap_err().to_string();
        assert!(
            msg.contains("\"10X\"") && msg.contains("K, M, G or T"),
            "{msg}"
        );
    }
}
