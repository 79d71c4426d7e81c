"""Job documents read as the CLI reads them (cli/src/client/job_file.rs)."""

from __future__ import annotations

import os
import tempfile
import unittest

from kairos_sdk import JobDocumentError, parse_jobs
from kairos_sdk.documents import read_source


def names(jobs):
    return [job.name for _, job in jobs]


class Documents(unittest.TestCase):
    def test_the_readme_job(self) -> None:
        [(origin, job)] = parse_jobs(
            "job.yaml",
            """
name: nightly-report
schedule: "0 30 2 * * *"
timezone: Europe/Berlin
shell: { command: "report --daily", env: {MODE: full}, cwd: /srv }
target: { selector: "role=web", count: 1, strategy: spread }
timeout: 30m
retry: { max_attempts: 3, backoff: 2s, max_backoff: 1m }
misfire: { policy: run_once, window: 10m }
starts_at: 2026-12-01T00:00:00Z
metadata: { team: billing }
""",
        )
        self.assertEqual(origin, "document 1")
        self.assertEqual(job.schedule, "0 30 2 * * *")
        self.assertEqual(job.shell.command, "report --daily")
        self.assertTrue(job.target.HasField("count"))
        self.assertEqual(job.retry.max_backoff, "1m")
        self.assertEqual(job.starts_at.ToJsonString(), "2026-12-01T00:00:00Z")
        self.assertEqual(job.metadata["team"], "billing")

    def test_snake_case_and_camel_case_are_the_same_field(self) -> None:
        snake = parse_jobs("a", "name: a\nparent_on: failure\nretry: {max_attempts: 2}\nhttp: {url: 'http://x', body_regex: ok}\n")
        camel = parse_jobs("b", "name: a\nparentOn: failure\nretry: {maxAttempts: 2}\nhttp: {url: 'http://x', bodyRegex: ok}\n")
        self.assertEqual(snake[0][1], camel[0][1])
        self.assertEqual(snake[0][1].http.body_regex, "ok")

    def test_yaml_1_2_words_stay_strings(self) -> None:
        [(_, job)] = parse_jobs("a", "name: a\nshell: {command: x, env: {A: yes, B: off, C: on}}\n")
        self.assertEqual(dict(job.shell.env), {"A": "yes", "B": "off", "C": "on"})
        [(_, job)] = parse_jobs("a", "name: a\npaused: true\n")
        self.assertTrue(job.paused)

    def test_streams_lists_and_listings(self) -> None:
        jobs = parse_jobs("j", "name: a\n---\nname: b\n---\n")
        self.assertEqual(names(jobs), ["a", "b"])
        self.assertEqual(jobs[1][0], "document 2")
        jobs = parse_jobs("j", '[{"name": "a"}, {"name": "b", "schedule": "@every 10s"}]')
        self.assertEqual([o for o, _ in jobs], ["item 1", "item 2"])
        jobs = parse_jobs("j", '{"name": "a"}\n{"name": "b"}\n')
        self.assertEqual(names(jobs), ["a", "b"])
        [(_, job)] = parse_jobs(
            "l",
            '{"jobs": [{"name": "a", "version": "4", "createdAt": "2026-01-01T00:00:00Z", "status": {"running": 1}}]}',
        )
        self.assertEqual(job.version, 0, "output-only fields are dropped")
        self.assertFalse(job.HasField("created_at") or job.HasField("status"))
        [(_, job)] = parse_jobs("f", "{name: a, shell: {command: 'true'}}")
        self.assertEqual(job.shell.command, "true")

    def test_errors_name_the_source_and_the_document(self) -> None:
        cases = [
            ("name: a\n---\nname: b\nshedule: x\n", "j.yaml: document 2: ", "shedule"),
            ("name: a\n---\nname: [b\n", "j.yaml: document 2: ", ""),
            ('[{"name": "a"}, {"name": 5}]', "j.yaml: item 2: ", ""),
            ("just a string\n", "j.yaml: document 1: ", "must be a mapping"),
            ("", "j.yaml: no jobs found", ""),
            ("shell: {command: x}\n", "j.yaml: document 1: the job has no name", ""),
            ("name: a\n---\nname: a\n", "j.yaml: job a appears twice (document 1 and document 2)", ""),
        ]
        for text, prefix, inside in cases:
            with self.subTest(text=text), self.assertRaises(JobDocumentError) as caught:
                parse_jobs("j.yaml", text)
            self.assertTrue(str(caught.exception).startswith(prefix), str(caught.exception))
            self.assertIn(inside, str(caught.exception))

    def test_a_source_is_a_path_or_the_text(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "jobs.yaml")
            with open(path, "w") as f:
                f.write("name: a\n")
            self.assertEqual(read_source(path), (path, "name: a\n"))
            self.assertEqual(read_source(__import__("pathlib").Path(path))[1], "name: a\n")
            self.assertEqual(read_source("name: a"), ("<text>", "name: a"))
            with self.assertRaises(JobDocumentError) as caught:
                parse_jobs(*read_source(os.path.join(d, "missing.yaml")))
            self.assertIn("no file named", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
