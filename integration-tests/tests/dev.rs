//! One-node Kairos end to end: `kairos dev` (real raft over RocksDB, real gRPC, an
//! in-process executor running real shell commands) driven through the real CLI.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use kairos_integration_tests::{Dev, executions, field, process_gone, wait_until, write_file};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

fn start() -> Result<(tempfile::TempDir, Dev)> {
    let dir = tempfile::tempdir()?;
    let dev = Dev::start(BIN.as_ref(), &dir.path().join("data"))?;
    Ok((dir, dev))
}

fn apply(dev: &Dev, dir: &std::path::Path, name: &str, yaml: &str) -> Result<()> {
    let file = write_file(dir, &format!("{name}.yaml"), yaml)?;
    let out = dev.cli(&["job", "apply", "-f", &file])?;
    assert!(out.success(), "apply failed: {out:?}\n{}", dev.log_tail());
    Ok(())
}

fn scheduled_at(e: &Value) -> DateTime<Utc> {
    field(e, "scheduledAt")
        .parse()
        .expect("scheduledAt is RFC 3339")
}

fn final_status(s: &str) -> bool {
    !matches!(s, "" | "pending" | "running")
}

#[test]
fn an_every_second_job_succeeds_with_its_output() -> Result<()> {
    let (dir, dev) = start()?;
    let applied_at = Utc::now();
    apply(
        &dev,
        dir.path(),
        "hello",
        "name: hello\nschedule: \"@every 1s\"\nshell:\n  command: echo hello\n",
    )?;
    let done = wait_until(Duration::from_secs(30), "3 succeeded executions", || {
        let list = executions(&dev, "hello").ok()?;
        let ok: Vec<Value> = list
            .into_iter()
            .filter(|e| field(e, "status") == "succeeded")
            .collect();
        (ok.len() >= 3).then_some(ok)
    })
    .map_err(|e| anyhow::anyhow!("{e}\n{}", dev.log_tail()))?;
    for e in &done[..3] {
        assert_eq!(field(e, "output").trim(), "hello", "{e}");
        assert_eq!(field(e, "trigger"), "schedule", "{e}");
        assert_eq!(field(e, "job"), "hello");
    }
    // The schedule produced them: the first three instants all fall within 5 s of the
    // apply, one second apart.
    let instants: Vec<DateTime<Utc>> = done[..3].iter().map(scheduled_at).collect();
    assert!(
        instants[2] - applied_at <= chrono::Duration::seconds(5),
        "{instants:?} vs {applied_at}"
    );
    for pair in instants.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            chrono::Duration::seconds(1),
            "{instants:?}"
        );
    }
    Ok(())
}

#[test]
fn a_manual_run_starts_at_once_with_trigger_manual() -> Result<()> {
    let (dir, dev) = start()?;
    apply(
        &dev,
        dir.path(),
        "by-hand",
        "name: by-hand\nschedule: \"@manual\"\nshell: {command: \"echo manual\"}\n",
    )?;
    // The executor registers right after the scheduler listens; wait for it so the
    // run has a target.
    dev.wait_for_executors(1)?;
    let out = dev.cli(&["job", "run", "by-hand", "-o", "json"])?.ok()?;
    let exec = out.json()?;
    let exec = exec.get("execution").cloned().unwrap_or(exec);
    assert_eq!(field(&exec, "trigger"), "manual", "{exec}");
    let id = field(&exec, "id").to_string();
    assert!(!id.is_empty(), "{exec}");
    let finished = wait_until(Duration::from_secs(30), "the manual run to finish", || {
        let out = dev.cli(&["exec", "get", &id, "-o", "json"]).ok()?;
        let e = out.json().ok()?;
        final_status(field(&e, "status")).then_some(e)
    })?;
    assert_eq!(field(&finished, "status"), "succeeded", "{finished}");
    assert_eq!(field(&finished, "output").trim(), "manual");

    // --wait returns once the run ended, and says how.
    let out = dev
        .cli(&["job", "run", "by-hand", "--wait", "-o", "json"])?
        .ok()?;
    let e = out.json()?;
    assert_eq!(field(&e, "status"), "succeeded", "{e}");
    assert_eq!(field(&e, "trigger"), "manual", "{e}");
    Ok(())
}

#[test]
fn after_sigkill_the_job_and_history_survive_and_no_instant_fires_twice() -> Result<()> {
    let (dir, mut dev) = start()?;
    let log = dir.path().join("instants.log");
    apply(
        &dev,
        dir.path(),
        "ticker",
        &format!(
            "name: ticker\nschedule: \"@every 1s\"\nshell:\n  command: echo \"$KAIROS_SCHEDULED_AT\" >> {}\n",
            log.display()
        ),
    )?;
    let lines = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    wait_until(Duration::from_secs(30), "3 fires before the kill", || {
        (lines(&log).len() >= 3).then_some(())
    })?;
    let before: BTreeSet<String> = executions(&dev, "ticker")?
        .iter()
        .map(|e| field(e, "id").to_string())
        .collect();

    dev.kill();
    let fired_before_restart = lines(&log).len();
    dev.restart()?;

    // The job is still there.
    let job = dev
        .cli(&["job", "get", "ticker", "-o", "json"])?
        .ok()?
        .json()?;
    assert_eq!(field(&job, "name"), "ticker");
    // Its history is still there.
    let after: BTreeSet<String> = executions(&dev, "ticker")?
        .iter()
        .map(|e| field(e, "id").to_string())
        .collect();
    assert!(
        before.is_subset(&after),
        "lost executions: {:?}",
        before.difference(&after).collect::<Vec<_>>()
    );
    // Firing resumes.
    wait_until(
        Duration::from_secs(30),
        "3 more fires after the restart",
        || (lines(&log).len() >= fired_before_restart + 3).then_some(()),
    )
    .map_err(|e| anyhow::anyhow!("{e}\n{}", dev.log_tail()))?;

    // No scheduled instant ran twice, and none is recorded twice.
    let ran = lines(&log);
    let unique: BTreeSet<&String> = ran.iter().collect();
    assert_eq!(unique.len(), ran.len(), "an instant ran twice: {ran:?}");
    let recorded: Vec<String> = executions(&dev, "ticker")?
        .iter()
        .filter(|e| field(e, "trigger") == "schedule")
        .map(|e| field(e, "scheduledAt").to_string())
        .collect();
    let unique: BTreeSet<&String> = recorded.iter().collect();
    assert_eq!(
        unique.len(),
        recorded.len(),
        "an instant was recorded twice: {recorded:?}"
    );

    // Nothing that was in flight at the kill stays pending or running for ever: the
    // lease resolves it.
    wait_until(
        Duration::from_secs(40),
        "pre-kill executions to be final",
        || {
            let list = executions(&dev, "ticker").ok()?;
            list.iter()
                .filter(|e| before.contains(field(e, "id")))
                .all(|e| final_status(field(e, "status")))
                .then_some(())
        },
    )?;
    Ok(())
}

#[test]
fn bad_jobs_are_refused_naming_the_field_and_nothing_is_stored() -> Result<()> {
    let (dir, dev) = start()?;
    let cases = [
        (
            "bad-cron",
            "name: bad-cron\nschedule: \"61 * * * *\"\nshell: {command: \"true\"}\n",
            "schedule",
        ),
        (
            "bad-tz",
            "name: bad-tz\nschedule: \"@every 1m\"\ntimezone: Mars/Olympus\nshell: {command: \"true\"}\n",
            "timezone",
        ),
        (
            "bad-name",
            "name: \"Bad Name!\"\nschedule: \"@every 1m\"\nshell: {command: \"true\"}\n",
            "name",
        ),
    ];
    for (file, yaml, field_name) in cases {
        let path = write_file(dir.path(), &format!("{file}.yaml"), yaml)?;
        let out = dev.cli(&["job", "apply", "-f", &path])?;
        assert!(!out.success(), "{file} was accepted: {out:?}");
        let stderr = out.stderr.trim_end();
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
        assert!(
            stderr.contains(field_name),
            "{file}: {stderr:?} does not name {field_name}"
        );
        assert!(stderr.contains("invalid_argument"), "{stderr:?}");
    }
    let jobs = dev.cli(&["job", "list", "-o", "json"])?.ok()?.json()?;
    let count = jobs
        .get("jobs")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    assert_eq!(count, 0, "a refused job was stored: {jobs}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_refused_over_grpc_with_invalid_argument() -> Result<()> {
    use kairos_proto::v1 as pb;
    let (_dir, dev) = tokio::task::spawn_blocking(start).await??;
    let channel = tonic::transport::Endpoint::from_shared(dev.endpoint())?
        .connect()
        .await?;
    let mut client = pb::job_service_client::JobServiceClient::new(channel);
    let shell = || {
        Some(pb::job::Action::Shell(pb::ShellAction {
            command: "true".into(),
            ..Default::default()
        }))
    };
    let cases = [
        (
            pb::Job {
                name: "bad-cron".into(),
                schedule: "61 * * * *".into(),
                action: shell(),
                ..Default::default()
            },
            "schedule",
        ),
        (
            pb::Job {
                name: "bad-tz".into(),
                schedule: "@every 1m".into(),
                timezone: "Mars/Olympus".into(),
                action: shell(),
                ..Default::default()
            },
            "timezone",
        ),
        (
            pb::Job {
                name: "Bad Name!".into(),
                schedule: "@every 1m".into(),
                action: shell(),
                ..Default::default()
            },
            "name",
        ),
    ];
    for (job, field_name) in cases {
        let err = client
            .put_job(pb::PutJobRequest {
                job: Some(job),
                expected_version: None,
            })
            .await
            .expect_err("a bad job was accepted");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains(field_name),
            "{:?} does not name {field_name}",
            err.message()
        );
        assert_eq!(
            err.metadata()
                .get("kairos-field")
                .and_then(|v| v.to_str().ok()),
            Some(field_name)
        );
    }
    Ok(())
}

#[test]
fn the_command_sees_its_identity_in_the_environment() -> Result<()> {
    let (dir, dev) = start()?;
    apply(
        &dev,
        dir.path(),
        "whoami",
        "name: whoami\nschedule: \"@every 1s\"\nshell: {command: \"env | grep ^KAIROS_ | sort\"}\n",
    )?;
    let e = wait_until(Duration::from_secs(30), "a finished execution", || {
        executions(&dev, "whoami")
            .ok()?
            .into_iter()
            .find(|e| final_status(field(e, "status")))
    })?;
    assert_eq!(field(&e, "status"), "succeeded", "{e}");
    let out = field(&e, "output");
    let var = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing from {out:?}"))
            .to_string()
    };
    assert_eq!(var("KAIROS_JOB"), "whoami");
    assert_eq!(var("KAIROS_EXECUTION_ID"), field(&e, "id"));
    assert_eq!(var("KAIROS_ATTEMPT"), "1");
    assert_eq!(var("KAIROS_TRIGGER"), "schedule");
    let at: DateTime<Utc> = var("KAIROS_SCHEDULED_AT").parse()?;
    assert_eq!(at, scheduled_at(&e));
    assert!(var("KAIROS_SCHEDULED_AT").ends_with('Z'));
    Ok(())
}

#[test]
fn a_run_past_its_timeout_is_timed_out_and_its_children_are_gone() -> Result<()> {
    let (dir, dev) = start()?;
    let pid_file = dir.path().join("child.pid");
    apply(
        &dev,
        dir.path(),
        "slow",
        &format!(
            "name: slow\nschedule: \"@manual\"\ntimeout: 1s\nshell:\n  command: \"sleep 60 & echo $! > {}; sleep 60\"\n",
            pid_file.display()
        ),
    )?;
    dev.wait_for_executors(1)?;
    let e = dev.cli(&["job", "run", "slow", "--wait", "-o", "json"])?;
    let e = e.json()?;
    assert_eq!(field(&e, "status"), "timed_out", "{e}");
    let pid: u32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
    wait_until(
        Duration::from_secs(10),
        "the background child to be gone",
        || process_gone(pid).then_some(()),
    )?;
    Ok(())
}

// `WatchExecutions` for one job: a run of it streams each change in order, from
// pending to its end, while a run of another job started first does not appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_executions_streams_each_change_of_the_job_s_runs_and_no_other() -> Result<()> {
    use kairos_proto::v1 as pb;
    let (dir, dev) = tokio::task::spawn_blocking(start).await??;
    let dev = std::sync::Arc::new(dev);
    for name in ["watched", "other"] {
        let (dev, path) = (dev.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || {
            apply(
                &dev,
                &path,
                name,
                &format!(
                    "name: {name}\nschedule: \"@manual\"\nshell: {{command: \"echo {name}\"}}\n"
                ),
            )
        })
        .await??;
    }
    let channel = tonic::transport::Endpoint::from_shared(dev.endpoint())?
        .connect()
        .await?;
    let mut executions = pb::execution_service_client::ExecutionServiceClient::new(channel.clone());
    let mut jobs = pb::job_service_client::JobServiceClient::new(channel);
    // The answer comes once the watcher is subscribed: what follows is seen.
    let mut stream = executions
        .watch_executions(pb::WatchExecutionsRequest {
            job: "watched".into(),
        })
        .await?
        .into_inner();
    let run = |name: &str| pb::RunJobRequest { name: name.into() };
    let other = jobs.run_job(run("other")).await?.into_inner();
    let watched = jobs.run_job(run("watched")).await?.into_inner();
    let id = watched
        .execution
        .map(|e| e.id)
        .ok_or_else(|| anyhow::anyhow!("the run of watched started nothing"))?;

    // Bounded: at most 50 changes, each within 30 s.
    let mut seen: Vec<pb::Execution> = Vec::new();
    for _ in 0..50 {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no change within 30 s; seen {:?}\n{}",
                    seen.iter().map(|e| (&e.id, &e.status)).collect::<Vec<_>>(),
                    dev.log_tail()
                )
            })??
            .ok_or_else(|| anyhow::anyhow!("the watch ended"))?;
        let done = next.id == id && final_status(&next.status);
        seen.push(next);
        if done {
            break;
        }
    }
    let summary: Vec<(String, String, String)> = seen
        .iter()
        .map(|e| (e.job.clone(), e.id.clone(), e.status.clone()))
        .collect();
    assert!(
        seen.iter().all(|e| e.job == "watched" && e.id == id),
        "changes of another execution or job (other ran as {:?}): {summary:?}",
        other.execution.map(|e| e.id)
    );
    // Each change in order: pending, then running, then the end, none going back.
    let rank = |status: &str| match status {
        "pending" => 0,
        "running" => 1,
        _ => 2,
    };
    let statuses: Vec<&str> = seen.iter().map(|e| e.status.as_str()).collect();
    eprintln!("execution {id} of watched streamed as {statuses:?}");
    assert!(
        statuses.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "the changes go back: {statuses:?}"
    );
    assert!(
        statuses.contains(&"running") && statuses.last() == Some(&"succeeded"),
        "the run's start and end are not both streamed: {statuses:?}"
    );
    let last = seen.last().expect("at least one change");
    assert_eq!(last.output.trim(), "watched", "{last:?}");
    Ok(())
}
