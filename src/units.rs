//! Units in the configuration file: sizes ("512MiB") and durations in seconds or milliseconds.

/// Sizes given as a number of bytes or as text with a binary unit ("512MiB", "1 GiB").
pub mod size {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }

    /// Parses "512MiB", "1 GiB", "64KiB" or "1048576".
    pub fn parse(s: &str) -> Result<usize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (n, unit) = t.split_at(split);
        let n: usize = n
            .parse()
            .map_err(|_| format!("{s:?} is not a size such as 512MiB or 1GiB"))?;
        let shift = match unit.trim() {
            "" | "B" => 0,
            "KiB" => 10,
            "MiB" => 20,
            "GiB" => 30,
            u => return Err(format!("{s:?}: unit {u:?} is not one of B, KiB, MiB, GiB")),
        };
        n.checked_mul(1usize << shift)
            .ok_or_else(|| format!("{s:?} is too large"))
    }

    /// A size, or "unlimited" (`usize::MAX`), that when given is `Some`.
    pub fn de_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Text(t) if t.trim() == "unlimited" => Ok(Some(usize::MAX)),
            Raw::Bytes(b) => usize::try_from(b)
                .map(Some)
                .map_err(serde::de::Error::custom),
            Raw::Text(t) => parse(&t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

/// Durations given in whole seconds or milliseconds in the file.
pub mod secs {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }

    pub fn de_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::size::parse;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse("512MiB"), Ok(512 << 20));
        assert_eq!(parse("1 GiB"), Ok(1 << 30));
        assert_eq!(parse("64KiB"), Ok(64 << 10));
        assert_eq!(parse("1048576"), Ok(1 << 20));
        assert!(parse("512MB").unwrap_err().contains("not one of"));
        assert!(parse("lots").unwrap_err().contains("not a size"));
        assert!(parse("99999999999999999999GiB").is_err());
    }
}
