//! Reading the files the benchmarks' jobs append to: every line ends with the
//! instant (`$KAIROS_SCHEDULED_AT`) and the time the command read the clock
//! (`$(date +%s.%N)`).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, TimeDelta, Utc};

/// The complete lines of `file`, leaving out a last one still being written; none
/// while the file does not exist yet.
pub fn complete(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// An RFC 3339 instant, one word of `line`.
pub fn instant(word: &str, line: &str) -> Result<DateTime<Utc>> {
    word.parse()
        .with_context(|| format!("bad instant in {line:?}"))
}

/// What `date +%s.%N` printed, one word of `line`.
pub fn clock(word: &str, line: &str) -> Result<DateTime<Utc>> {
    let (secs, frac) = word.split_once('.').unwrap_or((word, "0"));
    let secs: i64 = secs
        .parse()
        .with_context(|| format!("bad time in {line:?}"))?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        bail!("bad fraction of a second in {line:?}");
    }
    let nanos: u32 = format!("{frac:0<9}").parse()?;
    DateTime::from_timestamp(secs, nanos).ok_or_else(|| anyhow!("time out of range in {line:?}"))
}

/// Milliseconds of `d`, signed.
pub fn ms(d: TimeDelta) -> f64 {
    d.num_microseconds()
        .map_or(f64::MAX, |us| us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_readings_keep_their_fraction() -> Result<()> {
        let at = clock("1795946405.25", "")?;
        assert_eq!(at.timestamp(), 1_795_946_405);
        assert_eq!(at.timestamp_subsec_millis(), 250);
        assert_eq!(
            clock("1795946405.012345678", "")?.timestamp_subsec_nanos(),
            12_345_678
        );
        assert!(clock("17.x", "").is_err());
        assert!(clock("17.", "").is_err());
        Ok(())
    }

    #[test]
    fn a_line_being_written_is_left_out() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("ran");
        assert!(complete(&file).is_empty());
        std::fs::write(&file, "a 1\n\nb 2\nc")?;
        assert_eq!(complete(&file), ["a 1", "b 2"]);
        Ok(())
    }
}
