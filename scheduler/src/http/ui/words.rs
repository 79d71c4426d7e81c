//! A job's schedule in words, for the job page: the common shapes said plainly,
//! anything else shown as its fields. Only stored (valid) schedules come here.

const DAYS: [&str; 8] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn number(field: &str) -> Option<u32> {
    field.parse().ok()
}

fn clock(hour: u32, minute: u32, second: Option<u32>) -> String {
    match second {
        Some(s) if s != 0 => format!("{hour:02}:{minute:02}:{s:02}"),
        _ => format!("{hour:02}:{minute:02}"),
    }
}

fn day_names(field: &str) -> Option<String> {
    let mut names = Vec::new();
    for part in field.split(',') {
        let day = match number(part) {
            Some(n) if n <= 7 => DAYS[n as usize].to_string(),
            _ => {
                let lower = part.to_ascii_lowercase();
                let full = DAYS
                    .iter()
                    .find(|d| d.to_ascii_lowercase().starts_with(&lower) && lower.len() >= 3)?;
                full.to_string()
            }
        };
        names.push(day);
    }
    Some(names.join(", "))
}

/// `schedule` (as stored) read in `zone`, in words.
pub fn describe(schedule: &str, zone: &str) -> String {
    let zone = if zone.is_empty() { "UTC" } else { zone };
    let s = schedule.trim();
    let plain = |text: String| format!("{text} ({zone})");
    if s.is_empty() || s == "@manual" {
        return "only when started by hand, or by its parent job".into();
    }
    if let Some(d) = s.strip_prefix("@every") {
        return format!("every {} (phase counted from the Unix epoch)", d.trim());
    }
    if let Some(at) = s.strip_prefix("@at") {
        return format!("once, at {}", at.trim());
    }
    match s {
        "@yearly" | "@annually" => return plain("every year on 1 January at 00:00".into()),
        "@monthly" => return plain("on the 1st of every month at 00:00".into()),
        "@weekly" => return plain("every Sunday at 00:00".into()),
        "@daily" | "@midnight" => return plain("every day at 00:00".into()),
        "@hourly" => return "every hour, on the hour".into(),
        "@minutely" => return "every minute".into(),
        _ => {}
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    let (second, rest) = match fields.len() {
        6 => (Some(fields[0]), &fields[1..]),
        5 => (None, &fields[..]),
        _ => return format!("cron {s}"),
    };
    let [minute, hour, dom, month, dow] = [rest[0], rest[1], rest[2], rest[3], rest[4]];
    let sec_num = match second {
        None => Some(0),
        Some(f) => number(f),
    };
    let fallback = || {
        let names = if second.is_some() {
            "second minute hour day-of-month month day-of-week"
        } else {
            "minute hour day-of-month month day-of-week"
        };
        format!("cron {s} ({names}; {zone})")
    };
    if month != "*" {
        return fallback();
    }
    // Sub-hour repetition.
    if dom == "*" && dow == "*" && hour == "*" {
        if let Some(step) = second.and_then(|f| f.strip_prefix("*/"))
            && minute == "*"
        {
            return format!("every {step} seconds");
        }
        if second.is_some_and(|f| f == "*") && minute == "*" {
            return "every second".into();
        }
        if sec_num == Some(0) {
            if minute == "*" {
                return "every minute".into();
            }
            if let Some(step) = minute.strip_prefix("*/") {
                return format!("every {step} minutes");
            }
            if let Some(m) = number(minute) {
                return format!("every hour at minute {m}");
            }
        }
        return fallback();
    }
    let (Some(h), Some(m), Some(sec)) = (number(hour), number(minute), sec_num) else {
        return fallback();
    };
    let at = clock(h, m, Some(sec));
    match (dom, dow) {
        ("*", "*") => plain(format!("every day at {at}")),
        ("*", days) => match day_names(days) {
            Some(names) => plain(format!("every {names} at {at}")),
            None => fallback(),
        },
        (day, "*") => match number(day) {
            Some(d) => plain(format!("on day {d} of every month at {at}")),
            None => fallback(),
        },
        _ => fallback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_shapes_read_plainly() {
        assert_eq!(
            describe("0 30 2 * * *", "Europe/Berlin"),
            "every day at 02:30 (Europe/Berlin)"
        );
        assert_eq!(describe("30 2 * * *", ""), "every day at 02:30 (UTC)");
        assert_eq!(
            describe("0 9 * * 1,5", "UTC"),
            "every Monday, Friday at 09:00 (UTC)"
        );
        assert_eq!(
            describe("0 6 15 * *", "UTC"),
            "on day 15 of every month at 06:00 (UTC)"
        );
        assert_eq!(describe("*/5 * * * *", "UTC"), "every 5 minutes");
        assert_eq!(describe("*/10 * * * * *", "UTC"), "every 10 seconds");
        assert_eq!(describe("7 * * * *", "UTC"), "every hour at minute 7");
        assert_eq!(
            describe("@every 1m30s", "UTC"),
            "every 1m30s (phase counted from the Unix epoch)"
        );
        assert_eq!(
            describe("@manual", "UTC"),
            "only when started by hand, or by its parent job"
        );
        assert_eq!(
            describe("@daily", "Asia/Tokyo"),
            "every day at 00:00 (Asia/Tokyo)"
        );
    }

    #[test]
    fn anything_else_shows_its_fields() {
        assert_eq!(
            describe("0 0 1-5 * 1", "UTC"),
            "cron 0 0 1-5 * 1 (minute hour day-of-month month day-of-week; UTC)"
        );
    }
}
