//! Who may do what: the roles a caller can hold, the permissions each method needs,
//! and which roles grant which permissions. Pure rules; the scheduler finds out who
//! is calling (a verified client certificate or a token) and asks here.
//!
//! | role | may |
//! |---|---|
//! | `admin` | everything: read, write, membership, tokens |
//! | `operator` | read, and write jobs, runs, backfills, cancels |
//! | `viewer` | read (jobs, executions, cluster status, reflection) |
//! | `executor` | the executor gateway only |
//! | `scheduler` | the raft transport; and, as a peer forwarding a caller's request, what that caller may |
//!
//! Health (`grpc.health.v1`, `/healthz`, `/readyz`) needs no credentials: probes
//! must work. Everything else does.

use std::fmt;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Admin,
    Operator,
    Viewer,
    Executor,
    Scheduler,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Viewer,
        Role::Executor,
        Role::Scheduler,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Executor => "executor",
            Role::Scheduler => "scheduler",
        }
    }

    /// Whether holding this role grants `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => matches!(permission, Read | Write | Admin),
            Role::Operator => matches!(permission, Read | Write),
            Role::Viewer => matches!(permission, Read),
            Role::Executor => matches!(permission, Executor),
            Role::Scheduler => matches!(permission, Peer),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("{s:?} is not a role (admin, operator, viewer, executor, scheduler)")
            })
    }
}

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Nothing: health checks.
    Open,
    /// Read jobs, executions, the cluster's status; reflection.
    Read,
    /// Change jobs, start and cancel runs, backfills.
    Write,
    /// Change the group's membership and leadership; manage tokens.
    Admin,
    /// The executor gateway.
    Executor,
    /// The raft transport between schedulers.
    Peer,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Open => "open",
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
            Permission::Executor => "executor",
            Permission::Peer => "peer",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The permission a gRPC method (`/package.Service/Method`) needs; `None` for a
/// method this table does not know (refused: a new method must be placed here).
pub fn grpc_permission(path: &str) -> Option<Permission> {
    let (service, method) = path.trim_start_matches('/').rsplit_once('/')?;
    use Permission::*;
    Some(match service {
        "grpc.health.v1.Health" => Open,
        "grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection" => Read,
        "kairos.v1.RaftTransport" => Peer,
        "kairos.v1.ExecutorGateway" => Executor,
        "kairos.v1.JobService" => match method {
            "GetJob" | "ListJobs" | "PreviewSchedule" => Read,
            "PutJob" | "DeleteJob" | "RunJob" | "PauseJob" | "ResumeJob" | "Backfill" => Write,
            _ => return None,
        },
        "kairos.v1.ExecutionService" => match method {
            "ListExecutions" | "GetExecution" | "WatchExecutions" | "TailOutput" => Read,
            "CancelExecution" | "ClearExecutions" => Write,
            _ => return None,
        },
        "kairos.v1.ClusterService" => match method {
            "GetStatus" | "ListExecutors" => Read,
            "AddScheduler" | "RemoveScheduler" | "TransferLeader" => Admin,
            _ => return None,
        },
        "kairos.v1.TokenService" => match method {
            "CreateToken" | "ListTokens" | "RevokeToken" => Admin,
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_grants_what_the_table_says() {
        use Permission::*;
        let grants = |r: Role| -> Vec<Permission> {
            [Open, Read, Write, Admin, Executor, Peer]
                .into_iter()
                .filter(|p| r.allows(*p))
                .collect()
        };
        assert_eq!(grants(Role::Admin), [Read, Write, Admin]);
        assert_eq!(grants(Role::Operator), [Read, Write]);
        assert_eq!(grants(Role::Viewer), [Read]);
        assert_eq!(grants(Role::Executor), [Executor]);
        assert_eq!(grants(Role::Scheduler), [Peer]);
    }

    #[test]
    fn methods_map_to_permissions_and_unknown_ones_to_none() {
        use Permission::*;
        for (path, want) in [
            ("/grpc.health.v1.Health/Check", Some(Open)),
            ("/kairos.v1.JobService/ListJobs", Some(Read)),
            ("/kairos.v1.JobService/PutJob", Some(Write)),
            ("/kairos.v1.ExecutionService/CancelExecution", Some(Write)),
            ("/kairos.v1.ExecutionService/ClearExecutions", Some(Write)),
            ("/kairos.v1.ClusterService/RemoveScheduler", Some(Admin)),
            ("/kairos.v1.ExecutorGateway/Connect", Some(Executor)),
            ("/kairos.v1.RaftTransport/Send", Some(Peer)),
            ("/kairos.v1.JobService/DropTables", None),
            ("/other.Service/Method", None),
            ("nonsense", None),
        ] {
            assert_eq!(grpc_permission(path), want, "{path}");
        }
    }

    #[test]
    fn roles_read_back_from_their_words() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().unwrap_err().contains("not a role"));
    }
}
