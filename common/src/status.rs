//! The words of the contract: execution statuses, triggers and policies.
//!
//! On the wire and in documents these are lowercase strings (`timed_out`,
//! `run_once`); here they are enums so that a typo cannot compile. `as_str` and
//! `FromStr` are the only conversions, and they are exact inverses.

use std::fmt;
use std::str::FromStr;

macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The contract's word for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// The accepted words, for error messages.
            pub fn expected() -> String {
                [$($word),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(format!("{other:?} is not one of: {}", $name::expected())),
                }
            }
        }
    };
}

word_enum! {
    /// Where an execution is in its life. The first two are transient; every other one
    /// is a final outcome, and each scheduled instant ends with exactly one.
    ExecutionStatus {
        /// Committed and assigned; the executor has not reported a start yet.
        Pending = "pending",
        /// The executor reported the process started.
        Running = "running",
        /// Exit code 0 (or, for HTTP, an expected response).
        Succeeded = "succeeded",
        /// Non-zero exit, a failed spawn, or an unexpected HTTP response.
        Failed = "failed",
        /// Killed because it outlived the job's timeout.
        TimedOut = "timed_out",
        /// Its executor went away and did not come back before the lease expired.
        Lost = "lost",
        /// Stopped on request (CancelExecution, replace, delete).
        Cancelled = "cancelled",
        /// Not started because an execution was still running (concurrency forbid).
        SkippedOverlap = "skipped_overlap",
        /// Not started because the job was paused.
        SkippedPaused = "skipped_paused",
        /// The instant passed while no leader could fire it, and the misfire policy
        /// did not run it.
        Missed = "missed",
        /// No connected executor matched the job's target.
        NoTarget = "no_target",
    }
}

impl ExecutionStatus {
    /// True for every final outcome.
    pub fn is_final(self) -> bool {
        !self.is_active()
    }

    /// Pending or running: the execution holds a lease and may still change.
    pub fn is_active(self) -> bool {
        matches!(self, ExecutionStatus::Pending | ExecutionStatus::Running)
    }

    /// An attempt that went wrong: `failed`, `timed_out` or `lost`. These are the
    /// outcomes a retry policy runs again and a `parent_on: failure` child follows.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Lost
        )
    }

    /// The process (or request) ran to an end it reported: `succeeded`, `failed`,
    /// `timed_out`. Not `lost` (nobody knows), nor any skip or stop before a start.
    pub fn ran_to_an_end(self) -> bool {
        matches!(
            self,
            ExecutionStatus::Succeeded | ExecutionStatus::Failed | ExecutionStatus::TimedOut
        )
    }

    /// The status of a stored or received execution, typed; `None` for a word this
    /// version does not know (written by a newer one).
    pub fn of(execution: &kairos_proto::v1::Execution) -> Option<ExecutionStatus> {
        execution.status.parse().ok()
    }
}

word_enum! {
    /// Why an execution exists (`KAIROS_TRIGGER`).
    Trigger {
        /// The job's schedule reached an instant.
        Schedule = "schedule",
        /// Someone asked for a run (RunJob, `kairos job run`).
        Manual = "manual",
        /// A failed, timed-out or lost attempt is tried again.
        Retry = "retry",
        /// The parent job finished.
        Dependency = "dependency",
        /// An instant missed while no leader existed, run by the misfire policy.
        Catchup = "catchup",
        /// A past range run on request.
        Backfill = "backfill",
    }
}

word_enum! {
    /// What a start does while an execution of the same job is running.
    Concurrency {
        Allow = "allow",
        Forbid = "forbid",
        Queue = "queue",
        Replace = "replace",
    }
}

word_enum! {
    /// What happens to instants that passed while no leader could fire them.
    MisfirePolicy {
        Skip = "skip",
        RunOnce = "run_once",
        RunAll = "run_all",
    }
}

word_enum! {
    /// How a fire picks among matching executors.
    TargetStrategy {
        Spread = "spread",
        Random = "random",
        LeastLoaded = "least_loaded",
        Hash = "hash",
    }
}

word_enum! {
    /// When a parent's finished execution starts its children.
    ParentOn {
        Success = "success",
        Failure = "failure",
        Always = "always",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in ExecutionStatus::ALL {
            assert_eq!(s.as_str().parse::<ExecutionStatus>(), Ok(*s));
        }
        for t in Trigger::ALL {
            assert_eq!(t.as_str().parse::<Trigger>(), Ok(*t));
        }
    }

    #[test]
    fn unknown_word_lists_the_expected_ones() {
        let err = "sometimes".parse::<Concurrency>().unwrap_err();
        assert!(err.contains("allow, forbid, queue, replace"), "{err}");
    }

    #[test]
    fn failures_are_what_retries_run_again() {
        let failures: Vec<_> = ExecutionStatus::ALL
            .iter()
            .filter(|s| s.is_failure())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(failures, ["failed", "timed_out", "lost"]);
        let ran: Vec<_> = ExecutionStatus::ALL
            .iter()
            .filter(|s| s.ran_to_an_end())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(ran, ["succeeded", "failed", "timed_out"]);
    }

    #[test]
    fn only_pending_and_running_are_transient() {
        let transient: Vec<_> = ExecutionStatus::ALL
            .iter()
            .filter(|s| !s.is_final())
            .collect();
        assert_eq!(
            transient,
            [&ExecutionStatus::Pending, &ExecutionStatus::Running]
        );
    }
}
