"""The two Dkron clients on PyPI, `pydkron` (0.2.4) and `dkron` (0.0.5), driven
against Kairos's Dkron-compatible `/v1` API as their users drive them against Dkron:
create, list, show, update, run, read the executions, toggle (or disable), delete.

Run by integration-tests/tests/clients/dkron.rs with the tool venv's python and
PYTHONPATH holding the two packages (scripts/setup-test-deps unpacks them), as

    python dkron_clients.py HOST:PORT

Each step prints one line (`ok ...`); the first check that fails raises, so the
script exits non-zero with the traceback and what the API answered on stderr.
Every wait polls with a deadline.
"""

import sys
import time

import requests
from pydkron.client import DkronClient, DkronJobNotFound
from dkron import Dkron, DkronException

# How long a run may take to be recorded (a debug build on a busy machine).
RUN_DEADLINE_S = 60.0
POLL_S = 0.2


def step(what):
    print("ok", what, flush=True)


def check(cond, what, seen):
    if not cond:
        raise AssertionError("%s; saw: %r" % (what, seen))


def wait_for(what, fetch, accept):
    """Polls `fetch()` until `accept` holds for it; the last value on failure."""
    deadline = time.monotonic() + RUN_DEADLINE_S
    seen = None
    while time.monotonic() < deadline:
        seen = fetch()
        if accept(seen):
            return seen
        time.sleep(POLL_S)
    raise AssertionError("timed out waiting for %s; last seen: %r" % (what, seen))


def succeeded(executions):
    return [e for e in executions if e.get("success") and e.get("finished_at")]


def with_pydkron(host):
    client = DkronClient(hosts=[host])
    status = client.status()
    check(status["tags"]["server"] == "true", "pydkron status() names a server", status)
    step("pydkron status")

    # The job of pydkron's README: Dkron 1's top-level command.
    data = {
        "name": "pydkron-job",
        "schedule": "@every 2m",
        "command": "echo hello from pydkron",
        "owner": "Tait Clarridge",
        "tags": {"server": "true:1"},
    }
    job = client.create_job(data)
    check(job.name == "pydkron-job", "create_job returns the job", job)
    step("pydkron create_job")

    names = [j.name for j in client.jobs()]
    check("pydkron-job" in names, "jobs() lists the new job", names)
    stored = client.get_job("pydkron-job")
    check(stored["owner"] == "Tait Clarridge", "get_job has the owner", stored)
    check(stored["executor"] == "shell", "a top-level command is the shell executor", stored)
    step("pydkron jobs, get_job")

    # Update, as the README does: change a field, save.
    job.schedule = "@every 3m"
    job.save()
    stored = client.get_job("pydkron-job")
    check(stored.schedule == "@every 3m", "save() updated the schedule", stored)
    step("pydkron save")

    client.run_job("pydkron-job")
    done = wait_for(
        "a successful pydkron-job execution",
        lambda: client.get_executions("pydkron-job"),
        lambda execs: len(succeeded(execs)) >= 1,
    )
    out = succeeded(done)[0]["output"]
    check(out == "hello from pydkron\n", "the run printed the command's words", out)
    step("pydkron run_job, get_executions")

    toggled = client.toggle("pydkron-job")
    check(toggled["disabled"] is True, "the first toggle disables", toggled)
    check(client.get_job("pydkron-job")["disabled"] is True, "disabled as stored", None)
    toggled = client.toggle("pydkron-job")
    check(toggled["disabled"] is False, "the second toggle enables", toggled)
    step("pydkron toggle")

    client.delete_job("pydkron-job")
    try:
        client.get_job("pydkron-job")
        raise AssertionError("get_job found a deleted job")
    except DkronJobNotFound:
        pass
    try:
        client.run_job("pydkron-job")
        raise AssertionError("run_job ran a deleted job")
    except DkronJobNotFound:
        pass
    step("pydkron delete_job")


def with_dkron(host):
    api = Dkron(["http://%s" % host])
    check(api.get_status()["agent"]["name"], "get_status names the agent", None)
    leader = api.get_leader()
    members = api.get_members()
    check(len(members) == 1 and members[0]["Name"] == leader["Name"],
          "one member, the leader", (leader, members))
    step("dkron get_status, get_leader, get_members")

    job = {
        "name": "dkron-py-job",
        "schedule": "@every 2m",
        "executor": "shell",
        "executor_config": {"command": "echo hello from dkron-python"},
        "tags": {"server": "true:1"},
    }
    created = api.apply_job(job)
    check(created["name"] == "dkron-py-job", "apply_job answers the job", created)
    names = [j["name"] for j in api.get_jobs()]
    check("dkron-py-job" in names, "get_jobs lists it", names)
    check(api.get_job("dkron-py-job")["schedule"] == "@every 2m", "get_job", None)
    step("dkron apply_job, get_jobs, get_job")

    api.run_job("dkron-py-job")
    done = wait_for(
        "a successful dkron-py-job execution (Dkron 1's /v1/executions/{job})",
        lambda: api.get_executions("dkron-py-job"),
        lambda execs: len(succeeded(execs)) >= 1,
    )
    out = succeeded(done)[0]["output"]
    check(out == "hello from dkron-python\n", "the run printed the command's words", out)
    step("dkron run_job, get_executions")

    # The package has no toggle: disabling is an update with "disabled": true.
    job["disabled"] = True
    check(api.apply_job(job)["disabled"] is True, "apply_job disables", None)
    check(api.get_job("dkron-py-job")["disabled"] is True, "disabled as stored", None)
    job["disabled"] = False
    check(api.apply_job(job)["disabled"] is False, "apply_job enables", None)
    step("dkron disable and enable through apply_job")

    api.delete_job("dkron-py-job")
    try:
        api.get_job("dkron-py-job")
        raise AssertionError("get_job found a deleted job")
    except DkronException as e:
        check("404" in str(e), "a deleted job is a 404", str(e))
    step("dkron delete_job")


def main():
    host = sys.argv[1]
    with_pydkron(host)
    with_dkron(host)
    # Both clients speak plain HTTP to HOST:PORT; nothing else was needed.
    check(requests.get("http://%s/health" % host, timeout=10).json() == {"status": "healthy"},
          "/health", None)
    step("all")


if __name__ == "__main__":
    main()
