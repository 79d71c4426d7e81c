//! How client commands print: tables for people, the gRPC response for scripts.
//!
//! `-o json` writes the response message with `serde_json`'s pretty printer, exactly
//! as the generated pbjson impls serialise it — the proto3 JSON mapping, the same
//! field names and value forms grpcurl prints (lowerCamelCase, 64-bit integers as
//! strings, timestamps in RFC 3339, default values left out). `-o yaml` is that same
//! JSON value written as YAML. `-o table` is for reading: aligned columns with a
//! header row, or `Label: value` lines for a single object.
//!
//! Tables are plain text: columns padded to their widest cell (counted in chars) and
//! separated by three spaces, no borders, no colour, no truncation; a missing value
//! is `-`. Times are shown in UTC as RFC 3339 (`2026-11-29T02:30:00Z`, fractions only
//! when present); durations are rounded for reading (`250ms`, `1.5s`, `42s`,
//! `1m30s`, `2h5m`, `3d4h`), unlike the exact form in job documents.
//!
//! Writing stops quietly when stdout is closed early (`kairos job list | head`).
//! Nothing here knows about particular messages; each command builds its own table.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, TimeZone as _, Utc};
use clap::ValueEnum;
use kairos_proto::Timestamp;
use serde::Serialize;

/// What stands in a table cell for "no value".
pub const NONE: &str = "-";

/// The `-o` choices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    // Aligned columns for people.
    #[default]
    Table,
    // The gRPC response in the proto3 JSON mapping.
    Json,
    // The same value as YAML.
    Yaml,
}

/// Prints `message` in the chosen format; `table` renders it for `-o table`.
pub fn emit<T: Serialize>(
    format: OutputFormat,
    message: &T,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Table => table(message),
        OutputFormat::Json => to_json(message)?,
        OutputFormat::Yaml => to_yaml(message)?,
    };
    print(&text)
}

/// Pretty JSON with a final newline.
pub fn to_json<T: Serialize>(message: &T) -> anyhow::Result<String> {
    let mut text =
        serde_json::to_string_pretty(message).context("encoding the response as JSON")?;
    text.push('\n');
    Ok(text)
}

/// The JSON value of `message` written as YAML (ends with a newline).
pub fn to_yaml<T: Serialize>(message: &T) -> anyhow::Result<String> {
    let value = serde_json::to_value(message).context("encoding the response")?;
    serde_yaml_ng::to_string(&value).context("encoding the response as YAML")
}

/// Writes `text` to stdout and flushes; a closed pipe ends output without an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// Columns with a header row.
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing trailing cells are blank, extra ones are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The text, one line per row, ending with a newline.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (i, width) in widths.iter().enumerate().take(columns) {
                let cell = line.get(i).map_or("", String::as_str);
                if i + 1 == columns {
                    text.push_str(cell);
                } else {
                    let _ = write!(text, "{cell:<width$}   ");
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `Label: value` lines for one object, values aligned.
#[derive(Debug, Default)]
pub struct Fields {
    lines: Vec<(String, String)>,
}

impl Fields {
    pub fn new() -> Self {
        Fields::default()
    }

    /// Adds a line.
    pub fn add(&mut self, label: &str, value: impl Into<String>) -> &mut Self {
        self.lines.push((label.to_string(), value.into()));
        self
    }

    /// Adds a line only when `value` is not empty.
    pub fn add_nonempty(&mut self, label: &str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if !value.is_empty() {
            self.lines.push((label.to_string(), value));
        }
        self
    }

    /// The text, ending with a newline.
    pub fn render(&self) -> String {
        let width = self
            .lines
            .iter()
            .map(|(label, _)| label.chars().count() + 1)
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (label, value) in &self.lines {
            let label = format!("{label}:");
            let _ = writeln!(out, "{}", format!("{label:<width$}  {value}").trim_end());
        }
        out
    }
}

/// A protobuf timestamp as a UTC instant; `None` when it is out of chrono's range.
pub fn instant(ts: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(ts.nanos).ok()?;
    DateTime::from_timestamp(ts.seconds, nanos)
}

/// A UTC instant as a protobuf timestamp.
pub fn timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos())
            .expect("invariant: sub-second nanoseconds fit in i32"),
    }
}

/// An optional timestamp in UTC, RFC 3339; [`NONE`] when absent.
pub fn utc(ts: Option<&Timestamp>) -> String {
    ts.and_then(instant)
        .map_or_else(|| NONE.to_string(), format_utc)
}

/// A UTC instant in RFC 3339 with `Z`, fractional seconds only when non-zero.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An instant in the named IANA zone, with its offset and abbreviation
/// (`2026-03-29T03:00:00+02:00 CEST`); `None` for a zone this build does not know.
pub fn in_zone(t: DateTime<Utc>, zone: &str) -> Option<String> {
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    let local = tz.from_utc_datetime(&t.naive_utc());
    Some(format!(
        "{} {}",
        local.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        local.format("%Z")
    ))
}

/// The time from `start` to `end`; `None` if either is missing or `end` is earlier.
pub fn elapsed(start: Option<&Timestamp>, end: Option<&Timestamp>) -> Option<Duration> {
    let start = instant(start?)?;
    let end = instant(end?)?;
    (end - start).to_std().ok()
}

/// A duration rounded down for reading: `250ms`, `1.5s`, `42s`, `1m30s`, `2h5m`, `3d4h`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return format!("{}ms", d.subsec_millis());
    }
    if secs < 10 {
        let tenths = d.subsec_millis() / 100;
        return if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        };
    }
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    // The two most significant units are enough to read.
    let parts = if days > 0 {
        [(days, "d"), (hours, "h")]
    } else if hours > 0 {
        [(hours, "h"), (minutes, "m")]
    } else if minutes > 0 {
        [(minutes, "m"), (seconds, "s")]
    } else {
        [(seconds, "s"), (0, "")]
    };
    let mut out = format!("{}{}", parts[0].0, parts[0].1);
    if parts[1].0 > 0 {
        let _ = write!(out, "{}{}", parts[1].0, parts[1].1);
    }
    out
}

/// An instant relative to `now`: `5s ago`, `in 3m`, or `now`.
pub fn relative(ts: Option<&Timestamp>, now: DateTime<Utc>) -> String {
    let Some(t) = ts.and_then(instant) else {
        return NONE.to_string();
    };
    match (now - t).to_std() {
        Ok(ago) if ago < Duration::from_secs(1) => "now".to_string(),
        Ok(ago) => format!("{} ago", human_duration(ago)),
        Err(_) => match (t - now).to_std() {
            Ok(ahead) => format!("in {}", human_duration(ahead)),
            Err(_) => "now".to_string(),
        },
    }
}

/// `key=value` pairs in key order, comma-separated; [`NONE`] when empty.
pub fn pairs<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut pairs: Vec<(&String, &String)> = map.into_iter().collect();
    pairs.sort();
    if pairs.is_empty() {
        return NONE.to_string();
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `value`, or [`NONE`] when it is empty.
pub fn or_none(value: &str) -> String {
    if value.is_empty() {
        NONE.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        timestamp(
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .expect("test timestamps are valid"),
        )
    }

    #[test]
    fn durations_are_rounded_for_reading() {
        let cases = [
            (Duration::from_millis(0), "0ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(999), "999ms"),
            (Duration::from_millis(1_000), "1s"),
            (Duration::from_millis(1_560), "1.5s"),
            (Duration::from_millis(9_990), "9.9s"),
            (Duration::from_millis(42_700), "42s"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3_600 + 5 * 60 + 7), "1h5m"),
            (Duration::from_secs(2 * 3_600), "2h"),
            (Duration::from_secs(3 * 86_400 + 4 * 3_600 + 59), "3d4h"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn elapsed_between_timestamps() {
        let start = ts("2026-01-01T00:00:00Z");
        let end = ts("2026-01-01T00:01:30.5Z");
        let d = elapsed(Some(&start), Some(&end));
        assert_eq!(d.map(human_duration).as_deref(), Some("1m30s"));
        assert_eq!(elapsed(Some(&end), Some(&start)), None);
        assert_eq!(elapsed(Some(&start), None), None);
    }

    #[test]
    fn relative_times() {
        let now = instant(&ts("2026-01-01T12:00:00Z")).expect("valid");
        assert_eq!(relative(Some(&ts("2026-01-01T11:59:55Z")), now), "5s ago");
        assert_eq!(relative(Some(&ts("2026-01-01T12:03:00Z")), now), "in 3m");
        assert_eq!(relative(None, now), "-");
    }

    #[test]
    fn times_in_utc_and_in_a_zone() {
        let t = ts("2026-03-29T01:00:00Z");
        assert_eq!(utc(Some(&t)), "2026-03-29T01:00:00Z");
        assert_eq!(
            utc(Some(&ts("2026-03-29T01:00:00.25Z"))),
            "2026-03-29T01:00:00.250Z"
        );
        assert_eq!(utc(None), "-");
        let at = instant(&t).expect("valid");
        assert_eq!(
            in_zone(at, "Europe/Berlin").as_deref(),
            Some("2026-03-29T03:00:00+02:00 CEST")
        );
        assert_eq!(in_zone(at, "Mars/Olympus"), None);
    }

    #[test]
    fn tables_align_columns() {
        let mut table = Table::new(&["NAME", "STATUS", "DURATION"]);
        table.row(vec!["a".into(), "succeeded".into(), "1.5s".into()]);
        table.row(vec!["longer-name".into(), "-".into(), "-".into()]);
        assert_eq!(
            table.render(),
            "NAME          STATUS      DURATION\n\
             a             succeeded   1.5s\n\
             longer-name   -           -\n"
        );
    }

    #[test]
    fn fields_align_values() {
        let mut fields = Fields::new();
        fields
            .add("ID", "42")
            .add("Status", "failed")
            .add_nonempty("Error", "");
        assert_eq!(fields.render(), "ID:      42\nStatus:  failed\n");
    }

    #[test]
    fn yaml_is_the_json_value() -> anyhow::Result<()> {
        let response = kairos_proto::v1::ListJobsResponse {
            jobs: vec![kairos_proto::v1::Job {
                name: "a".into(),
                version: 3,
                ..Default::default()
            }],
            next_page_token: String::new(),
        };
        let json: serde_json::Value = serde_json::from_str(&to_json(&response)?)?;
        assert_eq!(
            json["jobs"][0]["version"], "3",
            "uint64 is a string in proto3 JSON"
        );
        let yaml: serde_json::Value = serde_yaml_ng::from_str(&to_yaml(&response)?)?;
        assert_eq!(yaml, json);
        Ok(())
    }
}
