"""Apply a job and run it once, waiting for the outcome: the SDK's smallest useful
script.

    PYTHONPATH=sdk/python/src python sdk/python/examples/run_and_wait.py \
        --endpoints 10.0.0.1:7070,10.0.0.2:7070,10.0.0.3:7070 \
        --ca ca.crt --token "$KAIROS_TOKEN"

Against `kairos dev` (plain text, no token): `--endpoints http://127.0.0.1:7070`.
Exits 0 when the run succeeded, 1 when it ended otherwise, 2 when it is not known
whether it started.
"""

import argparse
import os
import sys

from kairos_sdk import Client, RunOutcomeUnknown

JOB = """
name: hello-sdk
schedule: "@manual"
shell:
  command: 'echo "hello from $KAIROS_JOB, attempt $KAIROS_ATTEMPT"'
timeout: 1m
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", default=os.environ.get("KAIROS_ENDPOINT", "http://127.0.0.1:7070"))
    parser.add_argument("--ca", help="CA file of a TLS group")
    parser.add_argument("--token", default=os.environ.get("KAIROS_TOKEN"))
    args = parser.parse_args()

    with Client(args.endpoints.split(","), ca_file=args.ca, token=args.token) as kairos:
        for answer in kairos.apply(JOB):
            print(f"job/{answer.job.name} {answer.result}")
        try:
            done = kairos.run_and_wait("hello-sdk", timeout=120)
        except RunOutcomeUnknown as e:
            # Never sent twice by the SDK: look before running again.
            print(e, file=sys.stderr)
            return 2
        print(f"execution {done.id}: {done.status} (exit code {done.exit_code})")
        print(done.output, end="")
        return 0 if done.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
