//! Conversions between the three forms a time takes here: Unix milliseconds (inside
//! commands and the state machine), `chrono::DateTime<Utc>` (schedules, clocks) and
//! protobuf `Timestamp` (the API).

use chrono::{DateTime, TimeZone, Utc};
use kairos_proto::Timestamp;

pub fn ts_from_ms(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn ms_from_ts(ts: &Timestamp) -> i64 {
    ts.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(ts.nanos) / 1_000_000)
}

pub fn dt_from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub fn ts_from_dt(dt: DateTime<Utc>) -> Timestamp {
    ts_from_ms(dt.timestamp_millis())
}

pub fn dt_from_ts(ts: &Timestamp) -> DateTime<Utc> {
    dt_from_ms(ms_from_ts(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_and_timestamps_round_trip_including_before_epoch() {
        for ms in [0, 1, 999, 1000, 1_764_000_000_123, -1, -1001] {
            assert_eq!(ms_from_ts(&ts_from_ms(ms)), ms);
        }
        assert_eq!(
            ts_from_ms(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_000_000
            }
        );
    }
}
