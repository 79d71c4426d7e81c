//! `google.protobuf.Timestamp`, with the proto3 JSON form the specification asks
//! for: RFC 3339, always Z-normalised, with 0, 3, 6 or 9 fractional digits
//! (`2026-11-29T02:30:00Z`). Generated messages use this type wherever a .proto
//! says `google.protobuf.Timestamp`; the wire encoding is the well-known type's.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::Error as _;

/// A point in time: seconds and nanoseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// 0..=999_999_999, also for times before the epoch.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// As a chrono time, when in chrono's range and well-formed.
    pub fn to_datetime(&self) -> Option<DateTime<Utc>> {
        let nanos = u32::try_from(self.nanos).ok()?;
        DateTime::from_timestamp(self.seconds, nanos)
    }

    pub fn from_datetime(t: DateTime<Utc>) -> Timestamp {
        Timestamp {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        }
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp::from_datetime(t)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self.to_datetime().ok_or_else(|| {
            serde::ser::Error::custom(format!(
                "timestamp out of range: {}s {}ns",
                self.seconds, self.nanos
            ))
        })?;
        serializer.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        let t = DateTime::parse_from_rfc3339(&s)
            .map_err(|e| D::Error::custom(format!("{s:?} is not an RFC 3339 time: {e}")))?;
        Ok(Timestamp::from_datetime(t.with_timezone(&Utc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_z_normalised_with_minimal_fraction() {
        let t = |seconds, nanos| serde_json::to_string(&Timestamp { seconds, nanos }).unwrap();
        assert_eq!(t(1_795_919_400, 0), "\"2026-11-29T02:30:00Z\"");
        assert_eq!(t(1_795_919_400, 5_000_000), "\"2026-11-29T02:30:00.005Z\"");
        assert_eq!(t(0, 1), "\"1970-01-01T00:00:00.000000001Z\"");
    }

    #[test]
    fn any_offset_is_accepted_on_input() {
        let t: Timestamp = serde_json::from_str("\"2026-11-29T03:30:00+01:00\"").unwrap();
        assert_eq!(
            t,
            Timestamp {
                seconds: 1_795_919_400,
                nanos: 0
            }
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }

    #[test]
    fn wire_encoding_is_the_well_known_types() {
        use prost::Message as _;
        let ours = Timestamp {
            seconds: 12,
            nanos: 34,
        }
        .encode_to_vec();
        let theirs = pbjson_types::Timestamp {
            seconds: 12,
            nanos: 34,
        }
        .encode_to_vec();
        assert_eq!(ours, theirs);
    }
}
