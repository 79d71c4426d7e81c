//! Schedules: parsing the `schedule` and `timezone` of a job, and answering "when does
//! it fire next?".
//!
//! # Forms
//!
//! - 5-field cron, `minute hour day-of-month month day-of-week` (second 0);
//! - 6-field cron with seconds first, `second minute hour dom month dow` (Dkron's form);
//! - descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
//!   `@hourly`, `@minutely`;
//! - `@every <duration>`: every instant `t` with `(t - 1970-01-01T00:00:00Z) % d == 0`.
//!   Anchoring to the Unix epoch rather than to "when the job was created" or "when
//!   the leader started" gives the same instants on every node and after every
//!   restart or failover, which is what makes a fire keyed by its instant unique.
//!   The period is at least 1s and a whole number of milliseconds;
//! - `@at <time>`: one fire. RFC 3339 with an offset is an exact instant; a time
//!   without an offset (`2026-12-01T09:00:00`) is read as wall-clock time in the
//!   job's zone, with the DST rule below;
//! - `@manual`: never fires by itself (runs come from RunJob or a parent job).
//!
//! Cron fields follow Vixie cron and robfig/cron (what Dkron users write): numbers,
//! `*`, `?` (same as `*`), ranges `a-b`, steps `*/n`, `a-b/n` and `a/n` (= `a-max/n`),
//! lists, month names `JAN`–`DEC` and day names `SUN`–`SAT` (case-insensitive, only in
//! their own field). Day-of-week is 0–7 with both 0 and 7 meaning Sunday. When both
//! day-of-month and day-of-week are restricted, a day matches if *either* does (Vixie's
//! rule); when one of them is `*` or `?`, only the other one counts. As in robfig/cron
//! a stepped star such as `*/2` counts as a restriction. Quartz extensions (`L`, `W`,
//! `#`, a year field) are refused, so the language is exactly the documented one.
//! A pattern that can never fire (`0 0 30 2 *`) is refused too.
//!
//! # Time zones and DST
//!
//! Cron is evaluated on the wall clock of the job's zone. Two rules make every wall
//! clock match map to exactly one instant:
//! - a match that does not exist (inside a spring-forward gap) fires at the first
//!   valid instant after it, the moment the gap ends; all matches inside one gap
//!   collapse into that single instant;
//! - a match that exists twice (inside a fall-back repeat) fires once, at its first
//!   occurrence; the repeated stretch produces no fire for any match.
//!
//! So fire instants are strictly increasing and never duplicated, whatever the zone.
//!
//! # Engine
//!
//! Field matching and the search for the next matching wall-clock time are croner's.
//! Croner is wrapped, not used as is, for three reasons found in its source (2.2):
//! - its field parser accepts more than the documented language (month and day names
//!   anywhere in the pattern because it substitutes them textually, `L`/`W`/`#`, empty
//!   list elements, `+5`) and its errors do not say which part is wrong. So fields are
//!   parsed and checked here, and croner receives a canonical numeric pattern;
//! - its day-of-week `a/n` steps run to 7 rather than 6 (`1/2` would include Sunday,
//!   where robfig/cron stops at Saturday); the canonical pattern lists days explicitly;
//! - its time-zone handling searches on wall-clock time and maps a repeated time to
//!   its first occurrence without comparing with the start, so a search that starts
//!   inside a fall-back repeat (a scheduler restarted there, a cursor stored there)
//!   answers an instant *before* its start: a second fire. It also gives up on gaps
//!   longer than an hour (3600 one-second probes). Croner is therefore only asked
//!   about naive wall-clock times (presented as UTC, which has no DST), and the
//!   mapping from wall clock to instant, with the two rules above, is done here.
//!
//! Croner's day-of-week numbering (0 and 7 are Sunday) and its default dom/dow
//! combination (OR when both are restricted, a `*` field ignored) are the Vixie ones and
//! are relied on.
//!
//! Precision: cron instants are whole seconds, `@every` and `@at` instants whole
//! milliseconds.
//!
//! Deliberately not here: remembering what already fired. A schedule is a pure function
//! from "after" to "next"; the scheduler's durable cursor is the memory.

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::duration::{format_duration, parse_duration};
use crate::{Error, Result};

/// Upper bound on the wall-clock steps of one `next_after`; in practice it takes one,
/// two after a fall-back repeat.
const MAX_SEARCH_STEPS: usize = 16;

/// Longest DST gap or repeat searched for its end (real ones are at most a day).
const MAX_TRANSITION_SECONDS: i64 = 4 * 86_400;

/// A parsed, validated schedule and the zone it is read in.
#[derive(Clone, Debug)]
pub struct Schedule {
    source: String,
    timezone: Tz,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Cron(Box<CronSchedule>),
    /// `@every`: the period in milliseconds (at least 1000).
    Every(u64),
    /// `@at`: the single instant.
    At(DateTime<Utc>),
    Manual,
}

/// The checked fields (kept for validation and tests) and the engine built from them.
#[derive(Clone, Debug)]
struct CronSchedule {
    /// Read by tests (against a direct reading of the rules) and shown by `Debug`.
    #[cfg_attr(not(test), allow(dead_code))]
    fields: CronFields,
    engine: croner::Cron,
}

/// One bit per allowed value of each field; day-of-week uses bits 0 (Sunday) to 6.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CronFields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Day-of-month was `*`/`?`: only day-of-week decides.
    dom_star: bool,
    /// Day-of-week was `*`/`?`: only day-of-month decides.
    dow_star: bool,
}

impl Schedule {
    /// Parses `expr` read in `timezone` (an IANA name; empty means UTC).
    ///
    /// Errors are `InvalidArgument` on field `timezone` (unknown zone) or `schedule`
    /// (anything else), with a reason naming the offending part.
    pub fn parse(expr: &str, timezone: &str) -> Result<Schedule> {
        let timezone = parse_timezone(timezone)?;
        let source = expr.trim();
        let kind =
            parse_kind(source, timezone).map_err(|reason| Error::invalid("schedule", reason))?;
        Ok(Schedule {
            source: source.to_string(),
            timezone,
            kind,
        })
    }

    /// The first fire instant strictly after `after`, or `None` when the schedule
    /// never fires again (`@manual`, an `@at` in the past, or the end of time).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.kind {
            Kind::Cron(cron) => cron.next_after(self.timezone, after),
            Kind::Every(period_ms) => every_next_after(*period_ms, after),
            Kind::At(at) => (*at > after).then_some(*at),
            Kind::Manual => None,
        }
    }

    /// The fire instants strictly after `after` and, when `until_inclusive` is given, at
    /// or before it; at most `limit` of them, in increasing order.
    pub fn instants(
        &self,
        after: DateTime<Utc>,
        until_inclusive: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            let Some(next) = self.next_after(cursor) else {
                break;
            };
            if until_inclusive.is_some_and(|until| next > until) {
                break;
            }
            out.push(next);
            cursor = next;
        }
        out
    }

    /// True for `@manual`: the job only runs when asked or when its parent finishes.
    pub fn is_manual(&self) -> bool {
        matches!(self.kind, Kind::Manual)
    }

    /// True for `@at`: the job fires at most once.
    pub fn is_one_shot(&self) -> bool {
        matches!(self.kind, Kind::At(_))
    }

    /// The zone the schedule is read in (UTC when none was given).
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The expression as written (surrounding whitespace removed).
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// Two schedules are equal when written the same and read in the same zone.
impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.timezone == other.timezone
    }
}

impl Eq for Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// An IANA zone name; empty means UTC.
fn parse_timezone(name: &str) -> Result<Tz> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(chrono_tz::UTC);
    }
    name.parse::<Tz>().map_err(|_| {
        Error::invalid(
            "timezone",
            format!("unknown time zone {name:?} (use an IANA name such as Europe/Berlin or UTC)"),
        )
    })
}

const DESCRIPTORS_HINT: &str = "use @yearly, @annually, @monthly, @weekly, @daily, @midnight, \
     @hourly, @minutely, @every <duration>, @at <time> or @manual";

fn parse_kind(source: &str, timezone: Tz) -> Result<Kind, String> {
    if source.is_empty() {
        return Err(
            "empty schedule (use a cron expression such as \"0 30 2 * * *\", @every 10m, @at <time> or @manual)"
                .to_string(),
        );
    }
    if !source.starts_with('@') {
        return parse_cron(source).map(|cron| Kind::Cron(Box::new(cron)));
    }

    let (head, arg) = match source.split_once(char::is_whitespace) {
        Some((head, arg)) => (head, arg.trim()),
        None => (source, ""),
    };
    let head_lower = head.to_ascii_lowercase();
    let equivalent = match head_lower.as_str() {
        "@yearly" | "@annually" => Some("0 0 0 1 1 *"),
        "@monthly" => Some("0 0 0 1 * *"),
        "@weekly" => Some("0 0 0 * * 0"),
        "@daily" | "@midnight" => Some("0 0 0 * * *"),
        "@hourly" => Some("0 0 * * * *"),
        "@minutely" => Some("0 * * * * *"),
        "@every" => return parse_every(source, arg),
        "@at" => return parse_at(source, arg, timezone),
        "@manual" => None,
        _ => return Err(format!("unknown descriptor {head:?} ({DESCRIPTORS_HINT})")),
    };
    if !arg.is_empty() {
        return Err(format!(
            "{head} takes no argument, but {source:?} has {arg:?}"
        ));
    }
    match equivalent {
        Some(pattern) => parse_cron(pattern).map(|cron| Kind::Cron(Box::new(cron))),
        None => Ok(Kind::Manual),
    }
}

fn parse_every(source: &str, arg: &str) -> Result<Kind, String> {
    if arg.is_empty() {
        return Err("@every needs a duration, e.g. \"@every 10m\"".to_string());
    }
    let period = parse_duration(arg).map_err(|reason| format!("in {source:?}: {reason}"))?;
    if period < std::time::Duration::from_secs(1) {
        return Err(format!(
            "{source:?}: the period {} is shorter than the 1s minimum",
            format_duration(period)
        ));
    }
    if period.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "{source:?}: the period {} is not a whole number of milliseconds",
            format_duration(period)
        ));
    }
    let period_ms = u64::try_from(period.as_millis())
        .map_err(|_| format!("{source:?}: the period is too long"))?;
    Ok(Kind::Every(period_ms))
}

fn parse_at(source: &str, arg: &str, timezone: Tz) -> Result<Kind, String> {
    if arg.is_empty() {
        return Err("@at needs a time, e.g. \"@at 2026-12-01T09:00:00Z\"".to_string());
    }
    let at = if let Ok(exact) = DateTime::parse_from_rfc3339(arg) {
        exact.with_timezone(&Utc)
    } else {
        let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(arg, format).ok())
            .ok_or_else(|| {
                format!(
                    "{source:?}: {arg:?} is not an RFC 3339 time such as 2026-12-01T09:00:00Z \
                     (or 2026-12-01T09:00:00, read in the job's time zone)"
                )
            })?;
        resolve_local(timezone, naive)
            .ok_or_else(|| format!("{source:?}: {arg:?} cannot be placed in {timezone}"))?
    };
    if at.nanosecond() % 1_000_000 != 0 {
        return Err(format!(
            "{source:?}: times are kept to the millisecond; {arg:?} is finer"
        ));
    }
    Ok(Kind::At(at))
}

/// The first multiple of the period (counted from the epoch) strictly after `after`.
fn every_next_after(period_ms: u64, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    const NANOS_PER_SECOND: i128 = 1_000_000_000;
    let period = i128::from(period_ms) * 1_000_000;
    let after_ns = i128::from(after.timestamp()) * NANOS_PER_SECOND
        + i128::from(after.timestamp_subsec_nanos());
    let next_ns = (after_ns.div_euclid(period) + 1).checked_mul(period)?;
    let secs = i64::try_from(next_ns.div_euclid(NANOS_PER_SECOND)).ok()?;
    let nanos = u32::try_from(next_ns.rem_euclid(NANOS_PER_SECOND)).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

// ---------------------------------------------------------------------------------
// Wall clock → instant
// ---------------------------------------------------------------------------------

/// The instant a wall-clock time of `tz` stands for: the earlier one when it occurs
/// twice, the end of the gap when it does not occur at all.
fn resolve_local(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(earliest, _) => Some(earliest.with_timezone(&Utc)),
        LocalResult::None => gap_end(tz, wall),
    }
}

/// The instant a spring-forward gap containing `wall` ends (its first valid instant).
fn gap_end(tz: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    let first_valid = first_wall_where(wall, |w| {
        !matches!(tz.from_local_datetime(&w), LocalResult::None)
    })?;
    match tz.from_local_datetime(&first_valid) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// The first wall-clock time after `start` (in whole seconds) at which `holds` becomes
/// true, for a condition that is false from `start` up to some point and true from
/// there on (the end of a gap or of a repeat). Exponential then binary search, so a
/// one-hour transition costs about two dozen zone look-ups.
fn first_wall_where(
    start: NaiveDateTime,
    holds: impl Fn(NaiveDateTime) -> bool,
) -> Option<NaiveDateTime> {
    let at = |offset: i64| start.checked_add_signed(chrono::Duration::seconds(offset));
    let mut high: i64 = 1;
    while !holds(at(high)?) {
        high *= 2;
        if high > MAX_TRANSITION_SECONDS {
            return None;
        }
    }
    let mut low = high / 2; // false here (or `start` itself)
    while high - low > 1 {
        let mid = low + (high - low) / 2;
        if holds(at(mid)?) {
            high = mid;
        } else {
            low = mid;
        }
    }
    at(high)
}

// ---------------------------------------------------------------------------------
// Cron
// ---------------------------------------------------------------------------------

impl CronSchedule {
    fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Cron instants are whole seconds, so searching after the whole second of
        // `after` loses nothing and keeps fractions out of the results.
        let mut cursor = after.with_timezone(&tz).naive_local().with_nanosecond(0)?;
        for _ in 0..MAX_SEARCH_STEPS {
            let wall = self.next_wall_match(cursor)?;
            match tz.from_local_datetime(&wall) {
                LocalResult::Single(t) => {
                    let t = t.with_timezone(&Utc);
                    if t > after {
                        return Some(t);
                    }
                    cursor = wall;
                }
                LocalResult::Ambiguous(first, _) => {
                    let first = first.with_timezone(&Utc);
                    if first > after {
                        return Some(first);
                    }
                    // `after` lies in the second pass of a repeat: every match up to
                    // the end of the repeat already had its (first) turn.
                    let repeat_end = first_wall_where(wall, |w| {
                        !matches!(tz.from_local_datetime(&w), LocalResult::Ambiguous(..))
                    })?;
                    cursor = repeat_end.checked_sub_signed(chrono::Duration::seconds(1))?;
                }
                LocalResult::None => {
                    // Inside a gap: fire when it ends. That instant is always after
                    // `after` (whose own wall time precedes the gap), so several
                    // matches in one gap yield this one instant once.
                    let end = gap_end(tz, wall)?;
                    if end > after {
                        return Some(end);
                    }
                    cursor = wall;
                }
            }
        }
        None
    }

    /// The first wall-clock time strictly after `cursor` the fields match.
    fn next_wall_match(&self, cursor: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = Utc.from_utc_datetime(&cursor);
        self.engine
            .find_next_occurrence(&start, false)
            .ok()
            .map(|t| t.naive_utc())
    }
}

/// One cron field's name, bounds and names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Where `*` and `a/n` end: 6 for day-of-week (7 is only Sunday's alias).
    star_max: u32,
    /// Names for the values from `min` on (`JAN` = 1, `SUN` = 0).
    names: &'static [&'static str],
}

const SECOND: Field = Field {
    name: "second",
    min: 0,
    max: 59,
    star_max: 59,
    names: &[],
};
const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    star_max: 59,
    names: &[],
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    star_max: 23,
    names: &[],
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    star_max: 31,
    names: &[],
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    star_max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    star_max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// Days each month can have (February 29 exists in leap years).
const MAX_DAYS_IN_MONTH: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

fn parse_cron(expr: &str) -> Result<CronSchedule, String> {
    let parts: Vec<&str> = expr.split_whitespace().collect();
    let (second, rest) = match parts.len() {
        5 => ("0", &parts[..]),
        6 => (parts[0], &parts[1..]),
        n => {
            return Err(format!(
                "{expr:?} has {n} fields; cron needs 5 (minute hour day-of-month month \
                 day-of-week) or 6 (second first)"
            ));
        }
    };
    let in_expr = |reason: String| format!("{reason} in {expr:?}");
    let seconds = parse_field(second, &SECOND).map_err(in_expr)?;
    let minutes = parse_field(rest[0], &MINUTE).map_err(in_expr)?;
    let hours = parse_field(rest[1], &HOUR).map_err(in_expr)?;
    let days_of_month = parse_field(rest[2], &DAY_OF_MONTH).map_err(in_expr)?;
    let months = parse_field(rest[3], &MONTH).map_err(in_expr)?;
    let days_of_week = parse_field(rest[4], &DAY_OF_WEEK).map_err(in_expr)?;

    // 7 is Sunday's second number.
    let dow_bits = (days_of_week.bits & 0x7f) | ((days_of_week.bits >> 7) & 1);
    let fields = CronFields {
        seconds: seconds.bits,
        minutes: minutes.bits,
        hours: hours.bits,
        days_of_month: days_of_month.bits,
        months: months.bits,
        days_of_week: dow_bits,
        dom_star: days_of_month.star,
        dow_star: days_of_week.star,
    };

    if fields.dow_star && !fields.dom_star && !fields.some_day_exists() {
        return Err(format!(
            "{expr:?} never fires: none of its months has any of its days of the month"
        ));
    }

    let pattern = fields.croner_pattern();
    let engine = croner::Cron::new(&pattern)
        .with_seconds_required()
        .parse()
        .map_err(|e| format!("{expr:?} cannot be evaluated: {e}"))?;
    Ok(CronSchedule { fields, engine })
}

impl CronFields {
    /// Whether some chosen month has some chosen day of the month.
    fn some_day_exists(&self) -> bool {
        (1..=12u32).any(|month| {
            self.months & (1 << month) != 0
                && (1..=MAX_DAYS_IN_MONTH[month as usize - 1])
                    .any(|day| self.days_of_month & (1 << day) != 0)
        })
    }

    /// The fields as a purely numeric 6-field pattern, `*` kept only where it changes
    /// the day-of-month / day-of-week combination.
    fn croner_pattern(&self) -> String {
        let list = |bits: u64, min: u32, max: u32| -> String {
            (min..=max)
                .filter(|v| bits & (1 << v) != 0)
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let dom = if self.dom_star {
            "*".to_string()
        } else {
            list(self.days_of_month, 1, 31)
        };
        let dow = if self.dow_star {
            "*".to_string()
        } else {
            list(self.days_of_week, 0, 6)
        };
        format!(
            "{} {} {} {} {} {}",
            list(self.seconds, 0, 59),
            list(self.minutes, 0, 59),
            list(self.hours, 0, 23),
            dom,
            list(self.months, 1, 12),
            dow
        )
    }

    /// Whether a wall-clock time matches, by the Vixie rules; used to check the engine.
    #[cfg(test)]
    fn matches(&self, t: NaiveDateTime) -> bool {
        use chrono::Datelike;
        let bit = |bits: u64, v: u32| bits & (1 << v) != 0;
        let dom = bit(self.days_of_month, t.day());
        let dow = bit(self.days_of_week, t.weekday().num_days_from_sunday());
        let day = match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        };
        day && bit(self.seconds, t.second())
            && bit(self.minutes, t.minute())
            && bit(self.hours, t.hour())
            && bit(self.months, t.month())
    }
}

/// A parsed field: the allowed values, and whether it was written as "any".
struct FieldSet {
    bits: u64,
    star: bool,
}

fn parse_field(text: &str, field: &Field) -> Result<FieldSet, String> {
    let name = field.name;
    let mut bits = 0u64;
    let mut star = false;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{name} {text:?} has an empty list element"));
        }
        if uses_quartz_extension(item) {
            return Err(format!(
                "{name} {item:?} uses L, W or #, which are not supported"
            ));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = parse_number(step)
                    .ok_or_else(|| format!("{name} step {step:?} in {item:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{name} step in {item:?} must be at least 1"));
                }
                (range, Some(step))
            }
            None => (item, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            if step.unwrap_or(1) == 1 {
                // Like robfig/cron: `*` and `*/1` mean "any", `*/2` is a restriction.
                star = true;
            }
            (field.min, field.star_max)
        } else if let Some((low, high)) = range.split_once('-') {
            let low = parse_value(low, field)?;
            // `MON-SUN` reads as Monday to Sunday: at a range's end Sunday is 7.
            let high = if field.name == DAY_OF_WEEK.name && high.eq_ignore_ascii_case("sun") {
                7
            } else {
                parse_value(high, field)?
            };
            if low > high {
                return Err(format!("{name} range {range:?} runs backwards"));
            }
            (low, high)
        } else {
            let value = parse_value(range, field)?;
            if step.is_some() {
                (value, field.star_max.max(value))
            } else {
                (value, value)
            }
        };
        let step = step.unwrap_or(1);
        let mut value = low;
        while value <= high {
            bits |= 1 << value;
            value = value.saturating_add(step);
        }
    }
    Ok(FieldSet { bits, star })
}

/// A number or a name, checked against the field's bounds.
fn parse_value(text: &str, field: &Field) -> Result<u32, String> {
    let name = field.name;
    if let Some(n) = parse_number(text) {
        if n < field.min || n > field.max {
            return Err(format!(
                "{name} {n} is out of range {}-{}",
                field.min, field.max
            ));
        }
        return Ok(n);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(index) = field.names.iter().position(|n| *n == lower) {
        let index = u32::try_from(index).expect("invariant: at most 12 names");
        return Ok(field.min + index);
    }
    let hint = match field.names.first() {
        Some(_) if field.min == 0 => " or a day name (SUN-SAT)",
        Some(_) => " or a month name (JAN-DEC)",
        None => "",
    };
    Err(format!("{name} {text:?} is not a number{hint}"))
}

/// Quartz's `L` (last), `W` (nearest weekday) and `#` (nth weekday): a `#`, a bare
/// `L`/`LW`, or an `L`/`W` written against a digit (`5L`, `15W`). Names such as `JUL`
/// or `WED` are not extensions.
fn uses_quartz_extension(item: &str) -> bool {
    let upper = item.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    upper.contains('#')
        || upper == "L"
        || upper == "LW"
        || bytes.windows(2).any(|pair| {
            let letter = |b: u8| b == b'L' || b == b'W';
            (pair[0].is_ascii_digit() && letter(pair[1]))
                || (letter(pair[0]) && pair[1].is_ascii_digit())
        })
}

/// Plain decimal digits only (no sign, no spaces); long enough runs of digits still
/// parse, so that the error can say "out of range" rather than "not a number".
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn parse(expr: &str) -> Schedule {
        Schedule::parse(expr, "").unwrap()
    }

    fn zoned(expr: &str, tz: &str) -> Schedule {
        Schedule::parse(expr, tz).unwrap()
    }

    fn refused(expr: &str, tz: &str) -> (String, String) {
        match Schedule::parse(expr, tz) {
            Err(Error::InvalidArgument { field, reason }) => (field, reason),
            Ok(s) => panic!("{expr:?} was accepted: {s:?}"),
        }
    }

    fn cron_fields(s: &Schedule) -> &CronFields {
        match &s.kind {
            Kind::Cron(cron) => &cron.fields,
            other => panic!("not cron: {other:?}"),
        }
    }

    // ---- forms ----------------------------------------------------------------

    #[test]
    fn five_fields_fire_at_second_zero() {
        let s = parse("30 2 * * *");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 1, 1, 2, 30, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 2, 30, 0)),
            Some(utc(2026, 1, 2, 2, 30, 0))
        );
    }

    #[test]
    fn six_fields_put_seconds_first() {
        let s = parse("15 30 2 * * *");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 1, 1, 2, 30, 15))
        );
        let every_ten = parse("*/10 * * * * *");
        assert_eq!(
            every_ten.instants(utc(2026, 1, 1, 0, 0, 0), None, 3),
            vec![
                utc(2026, 1, 1, 0, 0, 10),
                utc(2026, 1, 1, 0, 0, 20),
                utc(2026, 1, 1, 0, 0, 30)
            ]
        );
    }

    #[test]
    fn next_after_is_strict_and_drops_fractions() {
        let s = parse("* * * * * *");
        let t = utc(2026, 1, 1, 0, 0, 0);
        assert_eq!(s.next_after(t), Some(utc(2026, 1, 1, 0, 0, 1)));
        let fractional = t + chrono::Duration::milliseconds(500);
        assert_eq!(s.next_after(fractional), Some(utc(2026, 1, 1, 0, 0, 1)));
    }

    #[test]
    fn descriptors() {
        let after = utc(2026, 5, 17, 10, 20, 30); // a Sunday
        let cases = [
            ("@yearly", utc(2027, 1, 1, 0, 0, 0)),
            ("@annually", utc(2027, 1, 1, 0, 0, 0)),
            ("@monthly", utc(2026, 6, 1, 0, 0, 0)),
            ("@weekly", utc(2026, 5, 24, 0, 0, 0)),
            ("@daily", utc(2026, 5, 18, 0, 0, 0)),
            ("@midnight", utc(2026, 5, 18, 0, 0, 0)),
            ("@hourly", utc(2026, 5, 17, 11, 0, 0)),
            ("@minutely", utc(2026, 5, 17, 10, 21, 0)),
            ("@Daily", utc(2026, 5, 18, 0, 0, 0)),
        ];
        for (expr, expected) in cases {
            assert_eq!(parse(expr).next_after(after), Some(expected), "{expr}");
        }
    }

    #[test]
    fn day_of_week_zero_and_seven_are_sunday_one_is_monday() {
        // 2026-01-01 is a Thursday; the 4th a Sunday, the 5th a Monday.
        let after = utc(2026, 1, 1, 12, 0, 0);
        let sunday = Some(utc(2026, 1, 4, 0, 0, 0));
        let monday = Some(utc(2026, 1, 5, 0, 0, 0));
        assert_eq!(parse("0 0 * * 0").next_after(after), sunday);
        assert_eq!(parse("0 0 * * 7").next_after(after), sunday);
        assert_eq!(parse("0 0 * * SUN").next_after(after), sunday);
        assert_eq!(parse("0 0 * * 1").next_after(after), monday);
        assert_eq!(parse("0 0 * * mon").next_after(after), monday);
        assert_eq!(
            parse("0 0 * * 6-7").next_after(after),
            Some(utc(2026, 1, 3, 0, 0, 0))
        );
        assert_eq!(
            parse("0 0 * * MON-FRI").instants(after, None, 3),
            vec![
                utc(2026, 1, 2, 0, 0, 0),
                utc(2026, 1, 5, 0, 0, 0),
                utc(2026, 1, 6, 0, 0, 0)
            ]
        );
        // `a/n` stops at Saturday, as in robfig/cron: no Sunday here.
        assert_eq!(cron_fields(&parse("0 0 * * 1/2")).days_of_week, 0b010_1010);
    }

    #[test]
    fn names_in_month_field() {
        let s = parse("0 0 1 JAN,jul *");
        assert_eq!(
            s.instants(utc(2026, 1, 1, 12, 0, 0), None, 2),
            vec![utc(2026, 7, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0)]
        );
        assert_eq!(cron_fields(&parse("0 0 1 jan-mar *")).months, 0b1110);
    }

    #[test]
    fn restricted_day_of_month_and_week_combine_with_or() {
        // The 13th, or any Friday. January 2026: Fri 2, 9, Tue 13, Fri 16.
        let s = parse("0 0 13 * 5");
        assert_eq!(
            s.instants(utc(2026, 1, 1, 0, 0, 0), None, 4),
            vec![
                utc(2026, 1, 2, 0, 0, 0),
                utc(2026, 1, 9, 0, 0, 0),
                utc(2026, 1, 13, 0, 0, 0),
                utc(2026, 1, 16, 0, 0, 0)
            ]
        );
        // With day-of-week `*` (or `?`) only the 13th counts, and vice versa.
        for expr in ["0 0 13 * *", "0 0 13 * ?"] {
            assert_eq!(
                parse(expr).instants(utc(2026, 1, 1, 0, 0, 0), None, 2),
                vec![utc(2026, 1, 13, 0, 0, 0), utc(2026, 2, 13, 0, 0, 0)]
            );
        }
        assert_eq!(
            parse("0 0 ? * 5").instants(utc(2026, 1, 1, 0, 0, 0), None, 2),
            vec![utc(2026, 1, 2, 0, 0, 0), utc(2026, 1, 9, 0, 0, 0)]
        );
        // A stepped star is a restriction (robfig/cron): days 1, 11, 21, 31 or Mondays.
        assert_eq!(
            parse("0 0 */10 * 1").instants(utc(2026, 1, 1, 0, 0, 0), None, 4),
            vec![
                utc(2026, 1, 5, 0, 0, 0),
                utc(2026, 1, 11, 0, 0, 0),
                utc(2026, 1, 12, 0, 0, 0),
                utc(2026, 1, 19, 0, 0, 0)
            ]
        );
    }

    /// The instants a direct reading of the Vixie rules gives, by walking the calendar.
    fn brute_force(
        fields: &CronFields,
        after: NaiveDateTime,
        until: NaiveDateTime,
        limit: usize,
    ) -> Vec<DateTime<Utc>> {
        let set = |bits: u64, max: u32| (0..=max).filter(move |v| bits & (1 << v) != 0);
        let mut out = Vec::new();
        let mut day = after.date();
        while day <= until.date() {
            for h in set(fields.hours, 23) {
                for m in set(fields.minutes, 59) {
                    for s in set(fields.seconds, 59) {
                        let t = day.and_hms_opt(h, m, s).unwrap();
                        if t > after && t <= until && fields.matches(t) {
                            out.push(t.and_utc());
                            if out.len() == limit {
                                return out;
                            }
                        }
                    }
                }
            }
            day = day.succ_opt().unwrap();
        }
        out
    }

    #[test]
    fn engine_agrees_with_a_direct_reading_of_the_rules() {
        let patterns = [
            "0 0 13 * 5",
            "0 0 */10 * 1",
            "0 0 * * 0",
            "0 0 * * 7",
            "0 12 1,15 * MON-WED",
            "*/7 3-5 * * *",
            "0 0 31 * *",
            "0 0 29 2 *",
            "5 4 * * sun",
            "0 22 * * 1-5",
            "23 0-20/2 * * *",
            "0 0,12 1 */2 *",
            "0 0 1-7 * 1",
            "30 */15 9-17 * * 1-5",
            "0 0 0 29 2 1",
        ];
        let starts = [
            utc(2026, 1, 1, 0, 0, 0),
            utc(2027, 12, 30, 23, 59, 59),
            utc(2028, 2, 27, 13, 5, 7),
        ];
        for expr in patterns {
            let s = parse(expr);
            let fields = cron_fields(&s);
            for start in starts {
                let until = start + chrono::Duration::days(800);
                let got = s.instants(start, Some(until), 12);
                let expected = brute_force(fields, start.naive_utc(), until.naive_utc(), 12);
                assert!(!expected.is_empty(), "{expr} from {start}");
                assert_eq!(got, expected, "{expr} from {start}");
            }
        }
    }

    #[test]
    fn every_is_anchored_to_the_epoch() {
        let s = parse("@every 1s");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 0) + chrono::Duration::milliseconds(500)),
            Some(utc(2026, 1, 1, 0, 0, 1))
        );
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 1, 1, 0, 0, 1))
        );

        // 2026-01-01T00:00:00Z is a multiple of 90 s since the epoch.
        let s = parse("@every 90s");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 10)),
            Some(utc(2026, 1, 1, 0, 1, 30))
        );
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 1, 30)),
            Some(utc(2026, 1, 1, 0, 3, 0))
        );

        // Whatever the starting point, the instants lie on the same grid.
        let s = parse("@every 7s");
        for start in [
            utc(2026, 1, 1, 0, 0, 0),
            utc(2026, 6, 3, 17, 4, 1),
            utc(1969, 12, 31, 23, 59, 58),
        ] {
            for t in s.instants(start, None, 5) {
                assert_eq!(t.timestamp().rem_euclid(7), 0, "{t}");
                assert_eq!(t.timestamp_subsec_nanos(), 0);
            }
            let first = s.next_after(start).unwrap();
            assert!(first > start && first - start <= chrono::Duration::seconds(7));
        }

        // The zone is irrelevant to the instants.
        let berlin = zoned("@every 90s", "Europe/Berlin");
        assert_eq!(
            berlin.next_after(utc(2026, 1, 1, 0, 0, 10)),
            Some(utc(2026, 1, 1, 0, 1, 30))
        );
        assert_eq!(berlin.timezone(), chrono_tz::Europe::Berlin);

        // Milliseconds count.
        let s = parse("@every 1.5s");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 1, 1, 0, 0, 1) + chrono::Duration::milliseconds(500))
        );
    }

    #[test]
    fn at_fires_once() {
        let s = parse("@at 2026-12-01T09:00:00+01:00");
        assert!(s.is_one_shot());
        assert!(!s.is_manual());
        let at = utc(2026, 12, 1, 8, 0, 0);
        assert_eq!(s.next_after(utc(2026, 1, 1, 0, 0, 0)), Some(at));
        assert_eq!(s.next_after(at), None);
        assert_eq!(s.next_after(utc(2027, 1, 1, 0, 0, 0)), None);
        assert_eq!(s.instants(utc(2026, 1, 1, 0, 0, 0), None, 10), vec![at]);
    }

    #[test]
    fn at_without_offset_is_read_in_the_zone() {
        let s = zoned("@at 2026-12-01T09:00:00", "Europe/Berlin");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 12, 1, 8, 0, 0))
        );
        // Inside the spring-forward gap: the end of the gap.
        let s = zoned("@at 2026-03-29 02:30:00", "Europe/Berlin");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 3, 29, 1, 0, 0))
        );
        // Inside the fall-back repeat: the first occurrence.
        let s = zoned("@at 2026-10-25T02:30:00", "Europe/Berlin");
        assert_eq!(
            s.next_after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 10, 25, 0, 30, 0))
        );
    }

    #[test]
    fn manual_never_fires() {
        let s = parse("@manual");
        assert!(s.is_manual());
        assert!(!s.is_one_shot());
        assert_eq!(s.next_after(utc(2026, 1, 1, 0, 0, 0)), None);
        assert!(s.instants(utc(2026, 1, 1, 0, 0, 0), None, 10).is_empty());
    }

    #[test]
    fn instants_respect_until_and_limit() {
        let s = parse("0 * * * *");
        let after = utc(2026, 1, 1, 0, 0, 0);
        assert_eq!(
            s.instants(after, Some(utc(2026, 1, 1, 3, 0, 0)), 100).len(),
            3
        );
        assert_eq!(
            s.instants(after, Some(utc(2026, 1, 1, 2, 59, 59)), 100)
                .len(),
            2
        );
        assert_eq!(s.instants(after, None, 5).len(), 5);
        assert!(s.instants(after, None, 0).is_empty());
    }

    #[test]
    fn schedules_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Schedule>();
    }

    #[test]
    fn accessors() {
        let s = Schedule::parse("  0 30 2 * * *  ", "Europe/Berlin").unwrap();
        assert_eq!(s.source(), "0 30 2 * * *");
        assert_eq!(s.to_string(), "0 30 2 * * *");
        assert_eq!(s.timezone(), chrono_tz::Europe::Berlin);
        assert_eq!(parse("@daily").timezone(), chrono_tz::UTC);
        assert_eq!(zoned("@daily", "UTC"), parse("@daily"));
    }

    // ---- DST ------------------------------------------------------------------

    #[test]
    fn berlin_spring_forward_fires_when_the_gap_ends() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00Z.
        let s = zoned("0 30 2 * * *", "Europe/Berlin");
        assert_eq!(
            s.instants(utc(2026, 3, 27, 12, 0, 0), None, 4),
            vec![
                utc(2026, 3, 28, 1, 30, 0), // 02:30 CET
                utc(2026, 3, 29, 1, 0, 0),  // 02:30 does not exist: 03:00 CEST
                utc(2026, 3, 30, 0, 30, 0), // 02:30 CEST
                utc(2026, 3, 31, 0, 30, 0)
            ]
        );
    }

    #[test]
    fn berlin_fall_back_fires_once_at_the_first_occurrence() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00Z; 02:xx happens twice.
        let s = zoned("0 30 2 * * *", "Europe/Berlin");
        assert_eq!(
            s.instants(utc(2026, 10, 24, 12, 0, 0), None, 2),
            vec![utc(2026, 10, 25, 0, 30, 0), utc(2026, 10, 26, 1, 30, 0)]
        );
        // A search starting inside the repeated hour (a scheduler restarted there) does
        // not fire the second 02:30.
        assert_eq!(
            s.next_after(utc(2026, 10, 25, 1, 15, 0)),
            Some(utc(2026, 10, 26, 1, 30, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 10, 25, 0, 30, 0)),
            Some(utc(2026, 10, 26, 1, 30, 0))
        );
    }

    #[test]
    fn berlin_quarter_hours_across_both_changes() {
        let s = zoned("0 */15 * * * *", "Europe/Berlin");

        // Spring: the local day 2026-03-29 has 23 hours. The four matches in the gap
        // and 03:00 collapse into one instant, so fires stay 15 minutes apart in real
        // time and none is doubled.
        let day_start = utc(2026, 3, 28, 23, 0, 0); // 00:00 CET
        let day_end = utc(2026, 3, 29, 22, 0, 0); // 00:00 CEST the next day
        let fires = s.instants(
            day_start - chrono::Duration::seconds(1),
            Some(day_end - chrono::Duration::seconds(1)),
            1000,
        );
        assert_eq!(fires.len(), 92);
        for pair in fires.windows(2) {
            assert_eq!(pair[1] - pair[0], chrono::Duration::minutes(15), "{pair:?}");
        }
        assert!(fires.contains(&utc(2026, 3, 29, 0, 45, 0))); // 01:45 CET
        assert!(fires.contains(&utc(2026, 3, 29, 1, 0, 0))); // gap end, 03:00 CEST

        // Autumn: the local day has 25 hours but 96 matches; the repeated hour
        // (01:00Z-02:00Z) gets none.
        let day_start = utc(2026, 10, 24, 22, 0, 0); // 00:00 CEST
        let day_end = utc(2026, 10, 25, 23, 0, 0); // 00:00 CET the next day
        let fires = s.instants(
            day_start - chrono::Duration::seconds(1),
            Some(day_end - chrono::Duration::seconds(1)),
            1000,
        );
        assert_eq!(fires.len(), 96);
        let mut sorted = fires.clone();
        sorted.dedup();
        assert_eq!(sorted, fires);
        assert!(fires.windows(2).all(|p| p[0] < p[1]));
        assert!(
            !fires
                .iter()
                .any(|t| *t >= utc(2026, 10, 25, 1, 0, 0) && *t < utc(2026, 10, 25, 2, 0, 0))
        );
        assert!(fires.contains(&utc(2026, 10, 25, 0, 45, 0))); // 02:45 CEST
        assert!(fires.contains(&utc(2026, 10, 25, 2, 0, 0))); // 03:00 CET
    }

    #[test]
    fn new_york_spring_forward_and_fall_back() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT at 07:00Z.
        let s = zoned("0 30 2 * * *", "America/New_York");
        assert_eq!(
            s.instants(utc(2026, 3, 7, 12, 0, 0), None, 3),
            vec![
                utc(2026, 3, 8, 7, 0, 0),  // 02:30 does not exist: 03:00 EDT
                utc(2026, 3, 9, 6, 30, 0), // 02:30 EDT
                utc(2026, 3, 10, 6, 30, 0)
            ]
        );
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST at 06:00Z; 01:xx happens twice.
        let s = zoned("0 30 1 * * *", "America/New_York");
        assert_eq!(
            s.instants(utc(2026, 10, 31, 12, 0, 0), None, 2),
            vec![utc(2026, 11, 1, 5, 30, 0), utc(2026, 11, 2, 6, 30, 0)]
        );
        assert_eq!(
            s.next_after(utc(2026, 11, 1, 6, 10, 0)),
            Some(utc(2026, 11, 2, 6, 30, 0))
        );

        // Every minute through the fall-back: no instant repeats or goes backwards, and
        // the repeated hour (06:00Z-07:00Z) is silent.
        let s = zoned("0 * * * * *", "America/New_York");
        let fires = s.instants(
            utc(2026, 11, 1, 4, 0, 0),
            Some(utc(2026, 11, 1, 8, 0, 0)),
            1000,
        );
        assert!(fires.windows(2).all(|p| p[0] < p[1]));
        assert!(
            !fires
                .iter()
                .any(|t| *t >= utc(2026, 11, 1, 6, 0, 0) && *t < utc(2026, 11, 1, 7, 0, 0))
        );
        assert_eq!(fires.len(), 119 + 61); // 04:01Z-05:59Z, then 07:00Z-08:00Z
    }

    #[test]
    fn gaps_of_other_sizes_and_at_midnight() {
        // Lord Howe Island moves 30 minutes: 2026-10-04 02:00 (+10:30) becomes 02:30 (+11).
        let s = zoned("0 15 2 * * *", "Australia/Lord_Howe");
        assert_eq!(
            s.next_after(utc(2026, 10, 3, 12, 0, 0)),
            Some(utc(2026, 10, 3, 15, 30, 0))
        );
        // Havana skips midnight: 2026-03-08 00:00 (-5) becomes 01:00 (-4).
        let s = zoned("@daily", "America/Havana");
        assert_eq!(
            s.instants(utc(2026, 3, 7, 0, 0, 0), None, 3),
            vec![
                utc(2026, 3, 7, 5, 0, 0),
                utc(2026, 3, 8, 5, 0, 0),
                utc(2026, 3, 9, 4, 0, 0)
            ]
        );
    }

    #[test]
    fn every_second_inside_a_repeat_needs_few_steps() {
        // A search from the second pass of the repeat jumps to its end at once.
        let s = zoned("* * * * * *", "Europe/Berlin");
        assert_eq!(
            s.next_after(utc(2026, 10, 25, 1, 0, 0)),
            Some(utc(2026, 10, 25, 2, 0, 0))
        );
        assert_eq!(
            s.next_after(utc(2026, 10, 25, 0, 59, 59)),
            Some(utc(2026, 10, 25, 2, 0, 0))
        );
    }

    // ---- refusals ---------------------------------------------------------------

    #[test]
    fn out_of_range_minute_is_refused() {
        let (field, reason) = refused("61 * * * *", "");
        assert_eq!(field, "schedule");
        assert!(
            reason.contains("minute 61 is out of range 0-59"),
            "{reason}"
        );
        assert!(reason.contains("\"61 * * * *\""), "{reason}");
    }

    #[test]
    fn unknown_zone_is_refused() {
        let (field, reason) = refused("@daily", "Mars/Olympus");
        assert_eq!(field, "timezone");
        assert!(reason.contains("Mars/Olympus"), "{reason}");
    }

    #[test]
    fn bad_expressions_are_refused_with_a_reason() {
        let cases = [
            ("", "empty schedule"),
            ("* * * *", "has 4 fields"),
            ("0 0 0 * * * 2026", "has 7 fields"),
            ("* 24 * * *", "hour 24 is out of range 0-23"),
            ("0 0 0 * *", "day-of-month 0 is out of range 1-31"),
            ("0 0 * 13 *", "month 13 is out of range 1-12"),
            ("0 0 * * 8", "day-of-week 8 is out of range 0-7"),
            ("60 * * * * *", "second 60 is out of range 0-59"),
            ("00061 * * * *", "minute 61 is out of range 0-59"),
            ("9999999999 * * * *", "not a number"),
            ("30-10 * * * *", "range \"30-10\" runs backwards"),
            ("*/0 * * * *", "must be at least 1"),
            ("*/x * * * *", "step \"x\""),
            ("1,,2 * * * *", "empty list element"),
            ("MON * * * *", "minute \"MON\" is not a number"),
            ("0 0 * * FOO", "not a number or a day name"),
            ("0 0 * FOO *", "not a number or a month name"),
            ("0 0 L * *", "L, W or #"),
            ("0 0 5L * *", "L, W or #"),
            ("0 0 15W * *", "L, W or #"),
            ("0 0 * * 5#2", "L, W or #"),
            ("+5 * * * *", "not a number"),
            ("0 0 30 2 *", "never fires"),
            ("0 0 31 4,6 *", "never fires"),
            ("@reboot", "unknown descriptor \"@reboot\""),
            ("@daily 5", "takes no argument"),
            ("@every", "needs a duration"),
            ("@every 500ms", "shorter than the 1s minimum"),
            ("@every 1.0005s", "whole number of milliseconds"),
            ("@every 5x", "unknown unit"),
            ("@at", "needs a time"),
            ("@at tomorrow", "not an RFC 3339 time"),
            (
                "@at 2026-01-01T00:00:00.0000001Z",
                "kept to the millisecond",
            ),
        ];
        for (expr, expected) in cases {
            let (field, reason) = refused(expr, "");
            assert_eq!(field, "schedule", "{expr:?}");
            assert!(reason.contains(expected), "{expr:?}: {reason}");
        }
    }

    #[test]
    fn unusual_but_valid_expressions_are_accepted() {
        for expr in [
            "0 0 29 2 *",
            "0 0 ? * ?",
            "*/1 * * * *",
            "5/15 * * * *",
            "0 0 * * 0-7",
            "0 0 1-31/2 * *",
            "0 0 1 jul-dec wed",
            "0 0 * * SUN-SAT",
            "0 0 * * mon-sun",
            "  0   0 * *   *  ",
        ] {
            assert!(Schedule::parse(expr, "").is_ok(), "{expr}");
        }
        assert_eq!(
            cron_fields(&parse("5/15 * * * *")).minutes,
            (1 << 5) | (1 << 20) | (1 << 35) | (1 << 50)
        );
        assert!(cron_fields(&parse("*/1 * * * *")).dom_star);
        assert_eq!(cron_fields(&parse("0 0 * * 0-7")).days_of_week, 0x7f);
    }
}
