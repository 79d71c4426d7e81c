//! `GET /v1/jobs` and `GET /v1/jobs/{job}/executions` parameters, as Dkron reads them.
//!
//! Jobs: `metadata[KEY]=VALUE` (repeatable, every pair must match; the older
//! `metadata=KEY:VALUE` too), `q` (text in the name or the display name), `status`
//! (`success`, `failed`, `running`, or `untriggered` for a job that never ran),
//! `disabled` (`true`/`false`), `_sort` (`id`/`name`, `displayname`, `schedule`,
//! `success_count`, `error_count`, `last_success`, `last_error`, `next`), `_order`
//! (`ASC`, the default, or `DESC`), `_start` and `_end` (a slice of the sorted
//! list). `X-Total-Count` is the number of jobs that matched, before the slice.
//!
//! Executions: `_sort` (`id`/`started_at`, `finished_at`, `attempt`), `_order`
//! (`DESC`, the default, newest first), `output_size_limit` (keep the last N bytes of
//! each output, `output_truncated: true` when cut), and the same `_start`/`_end`.
//!
//! A value that cannot be read (a `_start` that is not a number, an unknown `_sort`)
//! is a 400 naming the parameter; Dkron ignored some of them silently.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::job::DkronJob;
use crate::Error;

fn bad(field: &str, reason: impl Into<String>) -> Error {
    Error::invalid(field, reason)
}

/// The query string's pairs, decoded.
pub fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (super::percent_decode(k), super::percent_decode(v))
        })
        .collect()
}

/// Which slice of a sorted list to answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub start: Option<usize>,
    pub end: Option<usize>,
}

impl Slice {
    fn read(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        let slot = match key {
            "_start" => &mut self.start,
            "_end" => &mut self.end,
            _ => return Ok(false),
        };
        *slot = Some(
            value
                .trim()
                .parse()
                .map_err(|_| bad(key, format!("{value:?} is not a number of 0 or more")))?,
        );
        Ok(true)
    }

    /// The part of `items` this slice names (empty when it starts past the end).
    pub fn apply<T>(self, mut items: Vec<T>) -> Vec<T> {
        let len = items.len();
        let end = self.end.unwrap_or(len).min(len);
        let start = self.start.unwrap_or(0).min(end);
        items.truncate(end);
        items.drain(..start);
        items
    }
}

fn descending(key: &str, value: &str) -> Result<bool, Error> {
    match value.to_ascii_uppercase().as_str() {
        "ASC" => Ok(false),
        "DESC" => Ok(true),
        _ => Err(bad(key, format!("{value:?} is neither ASC nor DESC"))),
    }
}

/// What `GET /v1/jobs` asked for.
#[derive(Debug, Default)]
pub struct JobQuery {
    pub metadata: BTreeMap<String, String>,
    pub text: String,
    pub status: Option<String>,
    pub disabled: Option<bool>,
    pub sort: JobSort,
    pub descending: bool,
    pub slice: Slice,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum JobSort {
    #[default]
    Name,
    DisplayName,
    Schedule,
    SuccessCount,
    ErrorCount,
    LastSuccess,
    LastError,
    Next,
}

impl JobQuery {
    pub fn parse(raw: Option<&str>) -> Result<JobQuery, Error> {
        let mut q = JobQuery::default();
        for (key, value) in pairs(raw) {
            if q.slice.read(&key, &value)? {
                continue;
            }
            if let Some(k) = key
                .strip_prefix("metadata[")
                .and_then(|k| k.strip_suffix(']'))
            {
                q.metadata.insert(k.to_string(), value);
                continue;
            }
            match key.as_str() {
                "metadata" => {
                    let (k, v) = value.split_once(':').ok_or_else(|| {
                        bad(
                            "metadata",
                            format!("{value:?} is neither metadata[KEY]=VALUE nor KEY:VALUE"),
                        )
                    })?;
                    q.metadata.insert(k.to_string(), v.to_string());
                }
                "q" => q.text = value,
                "status" if value.is_empty() => {}
                "status" => q.status = Some(value),
                "disabled" if value.is_empty() => {}
                "disabled" => {
                    q.disabled = Some(match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(bad("disabled", format!("{value:?} is not true or false")));
                        }
                    })
                }
                "_sort" => {
                    q.sort = match value.as_str() {
                        "" | "id" | "name" => JobSort::Name,
                        "displayname" => JobSort::DisplayName,
                        "schedule" => JobSort::Schedule,
                        "success_count" => JobSort::SuccessCount,
                        "error_count" => JobSort::ErrorCount,
                        "last_success" => JobSort::LastSuccess,
                        "last_error" => JobSort::LastError,
                        "next" => JobSort::Next,
                        other => {
                            return Err(bad(
                                "_sort",
                                format!(
                                    "{other:?} is not a sort key (id, name, displayname, schedule, success_count, error_count, last_success, last_error, next)"
                                ),
                            ));
                        }
                    }
                }
                "_order" => q.descending = descending("_order", &value)?,
                // Dkron's `pretty` and anything a tool adds: no effect on the answer.
                _ => {}
            }
        }
        Ok(q)
    }

    /// Whether a job (in Dkron's shape) is one the query asks for.
    pub fn matches(&self, job: &DkronJob) -> bool {
        self.metadata
            .iter()
            .all(|(k, v)| job.metadata.get(k) == Some(v))
            && (self.text.is_empty()
                || job.name.contains(&self.text)
                || job.displayname.contains(&self.text))
            && self.disabled.is_none_or(|d| job.disabled == d)
            && match self.status.as_deref() {
                None => true,
                Some("untriggered") => job.status.is_empty(),
                Some(s) => job.status == s,
            }
    }

    /// Sorts in place; ties (and the default) go by name, so the order is stable.
    pub fn sort(&self, jobs: &mut [DkronJob]) {
        let key = |a: &DkronJob, b: &DkronJob| -> Ordering {
            match self.sort {
                JobSort::Name => Ordering::Equal,
                JobSort::DisplayName => a.displayname.cmp(&b.displayname),
                JobSort::Schedule => a.schedule.cmp(&b.schedule),
                JobSort::SuccessCount => a.success_count.cmp(&b.success_count),
                JobSort::ErrorCount => a.error_count.cmp(&b.error_count),
                JobSort::LastSuccess => a.last_success.cmp(&b.last_success),
                JobSort::LastError => a.last_error.cmp(&b.last_error),
                JobSort::Next => a.next.cmp(&b.next),
            }
            .then_with(|| a.name.cmp(&b.name))
        };
        jobs.sort_by(|a, b| {
            let o = key(a, b);
            if self.descending { o.reverse() } else { o }
        });
    }
}

/// What `GET /v1/jobs/{job}/executions` asked for.
#[derive(Debug)]
pub struct ExecutionQuery {
    pub sort: ExecutionSort,
    pub descending: bool,
    pub output_size_limit: Option<usize>,
    pub slice: Slice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionSort {
    StartedAt,
    FinishedAt,
    Attempt,
}

impl ExecutionQuery {
    pub fn parse(raw: Option<&str>) -> Result<ExecutionQuery, Error> {
        let mut q = ExecutionQuery {
            sort: ExecutionSort::StartedAt,
            descending: true,
            output_size_limit: None,
            slice: Slice::default(),
        };
        for (key, value) in pairs(raw) {
            if q.slice.read(&key, &value)? {
                continue;
            }
            match key.as_str() {
                "_sort" => {
                    q.sort = match value.as_str() {
                        "" | "id" | "started_at" => ExecutionSort::StartedAt,
                        "finished_at" => ExecutionSort::FinishedAt,
                        "attempt" => ExecutionSort::Attempt,
                        other => {
                            return Err(bad(
                                "_sort",
                                format!(
                                    "{other:?} is not a sort key (id, started_at, finished_at, attempt)"
                                ),
                            ));
                        }
                    }
                }
                "_order" => q.descending = descending("_order", &value)?,
                // Dkron treats anything but a number as "no limit".
                "output_size_limit" => q.output_size_limit = value.trim().parse().ok(),
                _ => {}
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, display: &str, disabled: bool, status: &str) -> DkronJob {
        DkronJob {
            name: name.into(),
            displayname: display.into(),
            disabled,
            status: status.into(),
            metadata: BTreeMap::from([("team".to_string(), name[..1].to_string())]),
            ..Default::default()
        }
    }

    #[test]
    fn dkron_s_job_filters_combine() {
        let jobs = [
            job("alpha", "Nightly", false, "success"),
            job("beta", "", true, ""),
            job("bravo", "alpha copy", false, "failed"),
        ];
        let names = |raw: &str| -> Vec<String> {
            let q = JobQuery::parse(Some(raw)).unwrap();
            jobs.iter()
                .filter(|j| q.matches(j))
                .map(|j| j.name.clone())
                .collect()
        };
        assert_eq!(names("metadata%5Bteam%5D=b"), ["beta", "bravo"]);
        assert_eq!(names("metadata=team:a"), ["alpha"]);
        assert_eq!(names("q=alpha"), ["alpha", "bravo"]);
        assert_eq!(names("status=untriggered"), ["beta"]);
        assert_eq!(names("status=failed&metadata[team]=b"), ["bravo"]);
        assert_eq!(names("disabled=true"), ["beta"]);
        assert_eq!(names("disabled=false&q=Night"), ["alpha"]);
    }

    #[test]
    fn sorting_and_slicing_follow_dkron() {
        let mut jobs = vec![
            job("c", "x", false, ""),
            job("a", "z", false, ""),
            job("b", "y", false, ""),
        ];
        let q = JobQuery::parse(Some("_sort=displayname&_order=DESC&_start=1&_end=3")).unwrap();
        q.sort(&mut jobs);
        let sorted: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(sorted, ["a", "b", "c"]);
        let page: Vec<String> = q.slice.apply(jobs).into_iter().map(|j| j.name).collect();
        assert_eq!(page, ["b", "c"]);
        assert_eq!(
            Slice {
                start: Some(5),
                end: None
            }
            .apply(vec![1, 2]),
            Vec::<i32>::new()
        );
        assert_eq!(
            Slice {
                start: Some(1),
                end: Some(9)
            }
            .apply(vec![1, 2, 3]),
            [2, 3]
        );
    }

    #[test]
    fn unreadable_parameters_are_named() {
        for (raw, field) in [
            ("_start=x", "_start"),
            ("_end=-1", "_end"),
            ("_sort=color", "_sort"),
            ("_order=up", "_order"),
            ("disabled=maybe", "disabled"),
            ("metadata=nocolon", "metadata"),
        ] {
            match JobQuery::parse(Some(raw)) {
                Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field, "{raw}"),
                other => panic!("{raw}: {other:?}"),
            }
        }
        let q = ExecutionQuery::parse(Some("output_size_limit=200&_order=ASC")).unwrap();
        assert_eq!((q.output_size_limit, q.descending), (Some(200), false));
    }
}
