"""The Python SDK against a real three-scheduler group, through a leader's death.

Run by integration-tests/tests/clients/python.rs, which starts the group (TLS, a
token, one executor) and passes the schedulers' addresses, leader first:

    python failover_script.py --endpoints A,B,C --ca ca.crt --token kairos_...

What a user of the SDK checks, in order: jobs applied from YAML (and applied again:
unchanged), read back and listed; a run waited for, with its status and output; a
watch that sees that run's events; then, through the same client, the leader is
SIGKILLed and another run is waited for, listed, and seen by the watch (which
resumes on another scheduler); pause, resume, delete; the errors a user branches on.

Talking to the test: progress goes to stderr; stdout carries only the protocol
lines. ``KILL-LEADER <addr>`` asks the test to SIGKILL the leader at ``addr``; the
script then blocks reading stdin until the test answers ``KILLED``. ``OK`` ends a
successful run; a failure raises, printing its traceback on stderr, and exits 1.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time

import kairos_sdk
from kairos_sdk import Client

JOBS = """
name: py-hello
schedule: "@manual"
shell:
  command: 'echo "hello from python: $KAIROS_TRIGGER $GREETING"'
  env: { GREETING: yes }     # a YAML 1.1 boolean word, a string to the CLI
timeout: 30s
# Right after a failover the executor is still re-dialling the new leader: a run
# waits for it rather than ending no_target.
target: { wait: 30s }
metadata: { team: sdk }
---
name: py-other
schedule: "@every 1h"
shell: { command: "true" }
"""

BAD_JOB = """
name: py-bad
schedule: "61 * * * *"
shell: { command: "true" }
"""


def log(*parts: object) -> None:
    print("script:", *parts, file=sys.stderr, flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


class Watcher:
    """Collects a watch's events on a thread, so the script can wait for one."""

    def __init__(self, watch: kairos_sdk.ExecutionWatch) -> None:
        self.watch = watch
        self.events: "queue.Queue[kairos_sdk.Execution]" = queue.Queue()
        self.seen: list = []
        self.error: list = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for execution in self.watch:
                self.events.put(execution)
        except Exception as e:  # reported by wait_for
            self.error.append(e)

    def wait_for(self, what: str, accept, deadline_secs: float = 60.0):
        """The first event (new or already seen) that ``accept`` takes."""
        for event in self.seen:
            if accept(event):
                return event
        end = time.monotonic() + deadline_secs
        while time.monotonic() < end:
            if self.error:
                raise AssertionError(f"the watch failed: {self.error[0]}")
            try:
                event = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            log(f"watch: execution {event.id} {event.job} {event.status}")
            self.seen.append(event)
            if accept(event):
                return event
        raise AssertionError(
            f"timed out waiting for the watch to show {what}; it showed: "
            + ", ".join(f"{e.id}:{e.status}" for e in self.seen)
        )


def expect_error(cls, call, what: str):
    try:
        call()
    except cls as e:
        return e
    raise AssertionError(f"{what}: expected {cls.__name__}, got no error")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    endpoints = args.endpoints.split(",")

    client = Client(endpoints, ca_file=args.ca, token=args.token, timeout=60.0)
    status = client.cluster_status()
    old_leader = status.leader_addr
    log(f"leader {status.leader_id} at {old_leader}; endpoints {endpoints}")
    check(status.leader_id != 0 and old_leader == endpoints[0], f"the leader is the first endpoint: {status}")

    # Watch before anything runs: every change from now on is seen.
    watcher = Watcher(client.watch_executions("py-hello"))
    check(watcher.watch.endpoint == old_leader, f"the watch is on the leader, not {watcher.watch.endpoint}")

    applied = client.apply(JOBS)
    check([a.job.name for a in applied] == ["py-hello", "py-other"], f"applied: {applied}")
    check([a.result for a in applied] == ["created", "created"], f"first apply: {[a.result for a in applied]}")
    again = client.apply(JOBS)
    check([a.result for a in again] == ["unchanged", "unchanged"], f"second apply: {[a.result for a in again]}")
    job = client.get_job("py-hello")
    check(job.shell.env["GREETING"] == "yes" and job.metadata["team"] == "sdk", f"stored job: {job}")
    names = [j.name for j in client.list_jobs(page_size=1)]
    check(names == ["py-hello", "py-other"], f"list_jobs one per page: {names}")
    check([j.name for j in client.list_jobs("team=sdk")] == ["py-hello"], "list_jobs with a filter")

    first = client.run_and_wait("py-hello", timeout=60)
    log(f"first run: {first.id} {first.status} {first.output!r}")
    check(first.status == "succeeded", f"first run ended {first.status}: {first.error}")
    check(first.exit_code == 0 and first.HasField("exit_code"), f"exit code {first.exit_code}")
    check(first.trigger == "manual", f"trigger {first.trigger}")
    check(first.output.strip() == "hello from python: manual yes", f"output {first.output!r}")
    tailed = "".join(client.tail_output(first.id, follow=False))
    check(tailed == first.output, f"tail_output of an ended run: {tailed!r}")
    watcher.wait_for(f"execution {first.id} succeeded", lambda e: e.id == first.id and e.status == "succeeded")
    early = [e.status for e in watcher.seen if e.id == first.id]
    check(early[0] in ("pending", "running"), f"the watch saw the run start: {early}")

    # The leader dies; the same client goes on.
    print(f"KILL-LEADER {old_leader}", flush=True)
    answer = sys.stdin.readline().strip()
    check(answer == "KILLED", f"the test answered {answer!r}")
    log("leader killed")

    second = client.run_and_wait("py-hello", timeout=90)
    log(f"second run: {second.id} {second.status} via {client.current_endpoint}")
    check(second.status == "succeeded", f"second run ended {second.status}: {second.error}")
    check(second.id != first.id, "the second run is a new execution")
    check(second.output.strip() == "hello from python: manual yes", f"output {second.output!r}")
    listed = {e.id: e.status for e in client.list_executions("py-hello")}
    check(
        listed.get(first.id) == "succeeded" and listed.get(second.id) == "succeeded" and len(listed) == 2,
        f"list_executions after the failover: {listed}",
    )
    check([j.name for j in client.list_jobs()] == ["py-hello", "py-other"], "list_jobs after the failover")
    status = client.cluster_status()
    check(status.leader_id != 0 and status.leader_addr != old_leader, f"a new leader: {status}")
    log(f"new leader {status.leader_id} at {status.leader_addr}")

    watcher.wait_for(f"execution {second.id} succeeded", lambda e: e.id == second.id and e.status == "succeeded")
    check(watcher.watch.resumes >= 1 and watcher.watch.endpoint != old_leader, "the watch resumed elsewhere")
    delivered = [(e.id, e.SerializeToString(deterministic=True)) for e in watcher.seen]
    check(len(delivered) == len(set(delivered)), "the watch delivered no state twice")
    check({e.id for e in watcher.seen} == {first.id, second.id}, f"watch ids: {[e.id for e in watcher.seen]}")
    watcher.watch.close()

    paused = client.pause("py-other", "sdk test")
    check(paused.paused and paused.status.paused_reason == "sdk test", f"paused: {paused}")
    check(not client.resume("py-other").paused, "resumed")
    check(client.delete_job("py-other") == ["py-other"], "deleted")
    expect_error(kairos_sdk.NotFound, lambda: client.get_job("py-other"), "a deleted job")
    bad = expect_error(kairos_sdk.InvalidArgument, lambda: client.apply(BAD_JOB), "a bad schedule")
    check(bad.field == "schedule" and "py-bad" in str(bad), f"the refusal names the field: {bad} ({bad.field})")
    expect_error(kairos_sdk.JobDocumentError, lambda: client.apply("name: x\nshedule: y\n"), "a typo")
    client.close()
    print("OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
