"""The client's rules against fake schedulers in this process (grpc servers on
127.0.0.1, port 0): following ``kairos-leader``, skipping dead endpoints, bounded
retries, sending RunJob once, the replay rule of DeleteJob, the bearer token, and a
watch that resumes on another scheduler without repeating or losing final states.

The real group is exercised by failover_script.py (run by
integration-tests/tests/clients/python.rs); these pin the rules that a real group
only shows by chance of timing.
"""

from __future__ import annotations

import socket
import threading
import time
import unittest
from concurrent import futures

import grpc
from google.protobuf import timestamp_pb2

import kairos_sdk
from kairos_sdk import Client
from kairos_sdk._pb import cluster_pb2, cluster_pb2_grpc
from kairos_sdk._pb import execution_pb2, execution_pb2_grpc
from kairos_sdk._pb import job_pb2, job_pb2_grpc

#: How long a test waits for something a fake does at once.
SETTLE = 10.0


def dead_address() -> str:
    """An address nothing listens on (bound once, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def execution(id: str, status: str, trigger: str = "manual") -> job_pb2.Execution:
    created = timestamp_pb2.Timestamp()
    created.GetCurrentTime()
    return job_pb2.Execution(id=id, job="a", status=status, trigger=trigger, created_at=created)


class Fake(
    job_pb2_grpc.JobServiceServicer,
    execution_pb2_grpc.ExecutionServiceServicer,
    cluster_pb2_grpc.ClusterServiceServicer,
):
    """A scheduler whose answers the test sets per method: ``answers[Method]`` is a
    function ``(request, context) -> response`` (or a generator for streams)."""

    def __init__(self) -> None:
        self.answers = {}
        self.calls = {}
        self.tokens = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        job_pb2_grpc.add_JobServiceServicer_to_server(self, self.server)
        execution_pb2_grpc.add_ExecutionServiceServicer_to_server(self, self.server)
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None)

    def count(self, method: str) -> int:
        with self.lock:
            return self.calls.get(method, 0)

    def _serve(self, method, request, context):
        with self.lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            self.tokens.append(dict(context.invocation_metadata()).get("authorization"))
        answer = self.answers.get(method)
        if answer is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} not faked")
        return answer(request, context)

    def __getattribute__(self, name):
        # Every RPC method of the three services goes to _serve.
        if name[:1].isupper() and name in _METHODS:
            return lambda request, context: self._serve(name, request, context)
        return super().__getattribute__(name)


_METHODS = {
    m
    for service in (
        job_pb2.DESCRIPTOR.services_by_name["JobService"],
        execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"],
        cluster_pb2.DESCRIPTOR.services_by_name["ClusterService"],
    )
    for m in service.methods_by_name
}


def refuse(code=grpc.StatusCode.UNAVAILABLE, leader=None, message="not now"):
    def answer(request, context):
        if leader:
            context.set_trailing_metadata((("kairos-leader", leader),))
        context.abort(code, message)

    return answer


def reply(message):
    return lambda request, context: message


class ClientRules(unittest.TestCase):
    def setUp(self) -> None:
        self.follower = Fake()
        self.leader = Fake()
        self.addCleanup(self.follower.stop)
        self.addCleanup(self.leader.stop)
        self.status = cluster_pb2.ClusterStatus(
            leader_id=2, leader_addr=self.leader.address, answered_by=2
        )
        self.follower.answers["GetStatus"] = refuse(leader=self.leader.address)
        self.leader.answers["GetStatus"] = reply(self.status)

    def client(self, endpoints, **kwargs) -> Client:
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("connect_timeout", 1.0)
        client = Client(endpoints, token="kairos_t_secret", **kwargs)
        self.addCleanup(client.close)
        return client

    def test_a_dead_endpoint_is_skipped_and_kairos_leader_followed(self) -> None:
        client = self.client([dead_address(), self.follower.address])
        status = client.cluster_status()
        self.assertEqual(status.answered_by, 2)
        self.assertEqual(client.current_endpoint, self.leader.address)
        self.assertIn(self.leader.address, client.endpoints, "the leader's address is learned")
        self.assertEqual(self.follower.count("GetStatus"), 1)
        self.assertEqual(self.leader.tokens, ["Bearer kairos_t_secret"], "the token on every call")

    def test_retries_are_bounded_in_attempts_and_time(self) -> None:
        client = self.client([dead_address(), dead_address()], timeout=3.0, max_attempts=4)
        started = time.monotonic()
        with self.assertRaises(kairos_sdk.Unavailable) as caught:
            client.cluster_status()
        self.assertLess(time.monotonic() - started, 3.0 + SETTLE / 2)
        self.assertEqual(len(caught.exception.attempts), 4, str(caught.exception))

        # No leader anywhere (an election that never ends): bounded by time.
        self.follower.answers["GetStatus"] = refuse(message="no leader")
        client = self.client([self.follower.address], timeout=1.5, max_attempts=1000)
        started = time.monotonic()
        with self.assertRaises(kairos_sdk.Unavailable):
            client.cluster_status()
        self.assertLess(time.monotonic() - started, 1.5 + SETTLE / 2)

    def test_the_groups_refusals_are_raised_at_once(self) -> None:
        def invalid(request, context):
            context.set_trailing_metadata((("kairos-field", "schedule"),))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid schedule: minute 61")

        self.leader.answers["PutJob"] = invalid
        client = self.client([self.leader.address])
        with self.assertRaises(kairos_sdk.InvalidArgument) as caught:
            client.apply("name: a\nschedule: '61 * * * *'\n")
        self.assertEqual(caught.exception.field, "schedule")
        self.assertIn("job/a", str(caught.exception))
        self.assertEqual(self.leader.count("PutJob"), 1)

    def test_put_job_is_sent_again_after_an_ambiguous_failure(self) -> None:
        answers = iter([refuse(message="connection reset"), reply(
            job_pb2.PutJobResponse(job=job_pb2.Job(name="a"), result="unchanged")
        )])
        self.leader.answers["PutJob"] = lambda request, context: next(answers)(request, context)
        client = self.client([self.leader.address])
        [answer] = client.apply("name: a\nshell: {command: 'true'}\n")
        self.assertEqual(answer.result, "unchanged")
        self.assertEqual(self.leader.count("PutJob"), 2)

    def test_run_job_goes_to_the_leader_and_is_sent_once(self) -> None:
        self.leader.answers["RunJob"] = reply(
            job_pb2.RunJobResponse(execution=execution("7", "pending"))
        )
        client = self.client([self.follower.address])
        self.assertEqual(client.run("a").id, "7")
        self.assertEqual(self.follower.count("RunJob"), 0, "sent to the leader only")

        # The leader takes it and the answer is lost: not sent again, and the
        # run that did start is shown.
        self.leader.answers["RunJob"] = refuse(message="connection reset")
        self.leader.answers["ListExecutions"] = reply(
            execution_pb2.ListExecutionsResponse(
                executions=[execution("8", "running"), execution("6", "succeeded", "schedule")]
            )
        )
        with self.assertRaises(kairos_sdk.RunOutcomeUnknown) as caught:
            client.run("a")
        self.assertEqual(self.leader.count("RunJob"), 2, "one send for each run() call")
        self.assertEqual([c.id for c in caught.exception.candidates], ["8"])
        self.assertIn("not sent again", str(caught.exception))

        self.leader.answers["RunJob"] = refuse(grpc.StatusCode.NOT_FOUND, message="job a")
        with self.assertRaises(kairos_sdk.NotFound):
            client.run("a")
        self.assertEqual(self.leader.count("RunJob"), 3)

    def test_run_job_waits_for_a_reachable_leader(self) -> None:
        # The group still names a dead leader, then the real one.
        dead = dead_address()
        named = iter([dead, dead])
        self.leader.answers["GetStatus"] = lambda request, context: cluster_pb2.ClusterStatus(
            leader_id=2, leader_addr=next(named, self.leader.address)
        )
        self.leader.answers["RunJob"] = reply(
            job_pb2.RunJobResponse(execution=execution("9", "pending"))
        )
        client = self.client([self.leader.address], timeout=10.0, connect_timeout=0.5)
        self.assertEqual(client.run("a").id, "9")
        self.assertEqual(self.leader.count("RunJob"), 1)

    def test_a_delete_replayed_after_an_ambiguous_failure_counts_as_done(self) -> None:
        answers = iter([refuse(message="reset"), refuse(grpc.StatusCode.NOT_FOUND, message="job a")])
        self.leader.answers["DeleteJob"] = lambda request, context: next(answers)(request, context)
        client = self.client([self.leader.address])
        self.assertEqual(client.delete_job("a"), ["a"])
        # Without an ambiguous try before it, NOT_FOUND is NOT_FOUND.
        self.leader.answers["DeleteJob"] = refuse(grpc.StatusCode.NOT_FOUND, message="job a")
        with self.assertRaises(kairos_sdk.NotFound):
            client.delete_job("a")

    def test_run_and_wait_follows_retries_to_the_final_attempt(self) -> None:
        first = execution("1", "pending")
        first.scheduled_at.FromSeconds(100)
        states = iter(["running", "failed"])

        def get(request, context):
            e = job_pb2.Execution()
            e.CopyFrom(first)
            e.status = next(states, "failed")
            e.attempt = 1
            return e

        second = job_pb2.Execution(id="2", job="a", status="succeeded", attempt=2)
        second.scheduled_at.FromSeconds(100)
        self.leader.answers["RunJob"] = reply(job_pb2.RunJobResponse(execution=first))
        self.leader.answers["GetExecution"] = get
        self.leader.answers["GetJob"] = reply(
            job_pb2.Job(name="a", retry=job_pb2.RetryPolicy(max_attempts=2))
        )
        self.leader.answers["ListExecutions"] = reply(
            execution_pb2.ListExecutionsResponse(executions=[second])
        )
        client = self.client([self.leader.address])
        done = client.run_and_wait("a", timeout=SETTLE, poll_interval=0.01)
        self.assertEqual((done.id, done.status), ("2", "succeeded"))

        self.leader.answers["GetExecution"] = reply(execution("3", "running"))
        self.leader.answers["RunJob"] = reply(job_pb2.RunJobResponse(execution=execution("3", "pending")))
        with self.assertRaises(kairos_sdk.WaitTimeout) as caught:
            client.run_and_wait("a", timeout=0.3, poll_interval=0.01)
        self.assertEqual(caught.exception.execution.status, "running")

    def test_a_watch_resumes_elsewhere_without_repeats_or_lost_final_states(self) -> None:
        listing = [execution("1", "succeeded", "schedule")]  # before the watch
        self.follower.answers["ListExecutions"] = lambda r, c: execution_pb2.ListExecutionsResponse(
            executions=list(reversed(listing))
        )
        self.leader.answers["ListExecutions"] = self.follower.answers["ListExecutions"]
        release = threading.Event()
        self.addCleanup(release.set)

        def first_stream(request, context):
            context.send_initial_metadata(())
            yield execution("2", "pending")
            # The scheduler dies while 2 runs and 3 is created and ends.
            listing.extend([execution("2", "succeeded"), execution("3", "failed")])
            context.abort(grpc.StatusCode.UNAVAILABLE, "socket closed")

        def second_stream(request, context):
            context.send_initial_metadata(())
            yield execution("3", "failed")  # already caught up: not repeated
            yield execution("4", "pending")
            release.wait(SETTLE)

        self.leader.answers["WatchExecutions"] = first_stream
        self.follower.answers["WatchExecutions"] = second_stream
        client = self.client([self.leader.address, self.follower.address])
        seen = []
        with client.watch_executions("a") as watch:
            self.assertEqual(watch.endpoint, self.leader.address)
            for e in watch:
                seen.append((e.id, e.status))
                if e.id == "4":
                    break
            self.assertEqual(watch.resumes, 1)
            self.assertEqual(watch.endpoint, self.follower.address)
        self.assertEqual(
            seen, [("2", "pending"), ("2", "succeeded"), ("3", "failed"), ("4", "pending")]
        )

    def test_a_watch_without_resume_raises_when_its_stream_breaks(self) -> None:
        def stream(request, context):
            context.send_initial_metadata(())
            context.abort(grpc.StatusCode.UNAVAILABLE, "socket closed")
            yield  # a generator

        self.leader.answers["WatchExecutions"] = stream
        client = self.client([self.leader.address])
        watch = client.watch_executions(resume=False)
        with self.assertRaises(kairos_sdk.Unavailable):
            next(watch)


class Options(unittest.TestCase):
    def test_bad_options_name_the_argument(self) -> None:
        cases = {
            "endpoints": dict(endpoints=[]),
            "cert_file and key_file": dict(endpoints=["a:1"], cert_file="c.pem"),
            "timeout": dict(endpoints=["a:1"], timeout=0),
            "max_attempts": dict(endpoints=["a:1"], max_attempts=0),
            "ca_file": dict(endpoints=["a:1"], ca_file="/nonexistent/ca.crt"),
        }
        for name, kwargs in cases.items():
            with self.subTest(name), self.assertRaises(ValueError) as caught:
                Client(kwargs.pop("endpoints"), **kwargs)
            self.assertTrue(str(caught.exception).startswith(name), str(caught.exception))
        with self.assertRaises(ValueError) as caught:
            Client(["http://a:1"], ca_file=__file__)
        self.assertIn("plain text", str(caught.exception))

    def test_endpoints(self) -> None:
        from kairos_sdk.client import normalize_endpoint as n

        self.assertEqual(n("10.0.0.1:7171"), ("10.0.0.1:7171", None))
        self.assertEqual(n("https://kairos.internal"), ("kairos.internal:7070", True))
        self.assertEqual(n("http://127.0.0.1:1/"), ("127.0.0.1:1", False))
        self.assertEqual(n("[::1]:9"), ("[::1]:9", None))
        self.assertEqual(n("::1"), ("[::1]:7070", None))
        with self.assertRaises(ValueError):
            n("host:port")


if __name__ == "__main__":
    unittest.main()
