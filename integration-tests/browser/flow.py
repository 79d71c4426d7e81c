"""What an operator does in the web UI, in a real browser, end to end:

1. create a job in the editor: a bad cron schedule shows the server's field error
   next to its line and nothing is saved; fixed, the live preview lists the next
   instants; review shows the diff; save;
2. watch it fire on the job page (the history fills with succeeded runs);
3. open a running execution and see its lines arrive live (server-sent events);
4. pause with a reason and see it on the job page; resume;
5. backfill 5 past instants: preview them, then run them, and see them recorded;
6. delete it.

Every page visited is shot in light and dark into the screenshot directory.

    python flow.py --base http://127.0.0.1:PORT/ --screenshots DIR
"""

import argparse
import datetime
import sys
import urllib.parse

from kairos_ui import SCHEMES, TIMEOUT_MS, Browser, Failure, shoot

try:
    from playwright.sync_api import expect
except ImportError as e:
    sys.exit(f"playwright is not installed ({e}): run scripts/setup-test-deps")

JOB = "ui-flow"
#: Every 3 s, four lines a second apart: runs overlap, so one is always running.
GOOD = f"""name: {JOB}
schedule: "@every 3s"
description: made in the browser
shell:
  command: "for i in 1 2 3 4; do echo line-$i; sleep 1; done"
"""
BAD = GOOD.replace('"@every 3s"', '"0 61 * * * *"')
#: How many page reloads a wait for the group may take (each bounded by TIMEOUT_MS),
#: half a second apart: the longest wait is the backfill's 5 runs of 4 s each, run
#: one at a time.
RELOADS = 90


def shots(browser, base, directory, name, path):
    """`path` shot in every scheme, each in a fresh context; fails on any problem."""
    for scheme in SCHEMES:
        watch = browser.open(urllib.parse.urljoin(base, path), scheme)
        try:
            shoot(watch, directory, name, scheme)
            watch.check(f"{path} ({scheme})")
        finally:
            watch.close()


def shoot_both(watch, directory, name):
    """The watched page as it is now, shot in every scheme."""
    for scheme in SCHEMES:
        watch.page.emulate_media(color_scheme=scheme)
        shoot(watch, directory, name, scheme)


def until(watch, what, check):
    """Reloads the page until `check()` holds, at most RELOADS times."""
    for _ in range(RELOADS):
        if check():
            return
        watch.page.wait_for_timeout(500)  # the group's pace, not a synchronisation
        watch.page.reload(wait_until="load", timeout=TIMEOUT_MS)
    raise Failure(f"{what}: not seen after {RELOADS} reloads")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--screenshots", required=True)
    args = parser.parse_args()
    base = args.base if args.base.endswith("/") else args.base + "/"
    shots_dir = args.screenshots

    with Browser(base) as browser:
        watch = browser.open(urllib.parse.urljoin(base, "jobs/new"))
        page = watch.page

        # 1. A bad cron: refused, the error next to the schedule's line, nothing saved.
        page.fill("#document", BAD)
        page.click("text=Review the change")
        page.wait_for_load_state("load")
        alert = page.locator("#error")
        expect(alert).to_contain_text("schedule")
        expect(alert).to_contain_text("61")
        expect(page.locator(".doc .line.bad")).to_contain_text("schedule:")
        shoot_both(watch, shots_dir, "editor-error")
        answer = page.request.get(urllib.parse.urljoin(base, f"jobs/{JOB}"))
        if answer.status != 404:
            raise Failure(f"a refused job was saved: jobs/{JOB} answered {answer.status}")
        # The 400 of the refused document is the point of this step.
        watch.problems = [
            p for p in watch.problems if not ("400" in p and "jobs/save" in p)
        ]

        # Fixed: the preview lists the next instants while typing.
        page.fill("#document", "")
        page.locator("#document").type(GOOD, delay=2)
        expect(page.locator("#preview li")).to_have_count(10)
        # No preview request left in flight: leaving the page would cut it off.
        page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
        page.click("text=Review the change")
        page.wait_for_load_state("load")
        expect(page.locator("pre.diff .add").first).to_be_visible()
        shoot_both(watch, shots_dir, "editor-review")
        page.click("button:has-text('Save')")
        page.wait_for_load_state("load")
        expect(page.locator("h1")).to_contain_text(JOB)
        expect(page.locator("[role=status]")).to_contain_text("saved: created")

        # 2. It fires: the history fills with succeeded runs.
        until(
            watch,
            "a succeeded run in the history",
            lambda: page.locator("table .status.s-succeeded").count() >= 1,
        )
        shoot_both(watch, shots_dir, "job")

        # 3. A running execution's lines arrive live.
        until(
            watch,
            "a running execution in the history",
            lambda: page.locator("table tr:has(.s-running) a").count() >= 1,
        )
        page.locator("table tr:has(.s-running) a").first.click()
        page.wait_for_load_state("load")
        live = page.locator("#live-output")
        expect(live).to_be_visible()
        expect(page.locator("#live-state")).to_have_text("live")
        expect(live).to_contain_text("line-4")
        shoot_both(watch, shots_dir, "execution-live")
        expect(page.locator("#live-state")).to_contain_text("finished")

        # 4. Pause with a reason; it shows on the job page; resume.
        # Leaving the page ends its event stream: watch.goto does not count that.
        watch.goto(urllib.parse.urljoin(base, f"jobs/{JOB}"))
        page.fill("#reason", "maintenance window")
        page.click("button:has-text('Pause')")
        page.wait_for_load_state("load")
        expect(page.locator("h1 .status")).to_have_text("paused")
        expect(page.locator("dl.spec")).to_contain_text("maintenance window")
        page.click("button:has-text('Resume')")
        page.wait_for_load_state("load")
        expect(page.locator("[role=status]")).to_contain_text("resumed")

        # 5. Backfill 5 past instants: preview, then run them.
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        start = now - datetime.timedelta(minutes=10)
        start -= datetime.timedelta(seconds=start.second % 3)
        # `from` is exclusive, `to` inclusive: (start, start + 15 s] holds 5 instants.
        end = start + datetime.timedelta(seconds=15)
        fmt = "%Y-%m-%dT%H:%M:%S"
        page.fill("input[name=from]", start.strftime(fmt))
        page.fill("input[name=to]", end.strftime(fmt))
        page.click("button:has-text('Preview the instants')")
        page.wait_for_load_state("load")
        run = page.locator("button:has-text('Run these 5 instants')")
        expect(run).to_be_visible()
        shoot_both(watch, shots_dir, "backfill-preview")
        run.click()
        page.wait_for_load_state("load")
        expect(page.locator("[role=status]")).to_contain_text("backfill of 5 instants started")
        until(
            watch,
            "5 backfill runs in the history",
            lambda: page.locator("table tr:has(td:text-is('backfill'))").count() >= 5,
        )

        # Told the run ended, the live page closed its event stream itself, which
        # the browser reports (at some point) as an aborted request: no fault. A
        # stream that really failed would have kept `line-4` from arriving above.
        watch.problems = [
            p
            for p in watch.problems
            if not (p.startswith("request failed: GET ") and p.endswith("/live: net::ERR_ABORTED"))
        ]
        # Every other page, light and dark, while the job exists.
        watch.check("the flow")
        watch.close()
        for name, path in [
            ("dashboard", ""),
            ("jobs", "jobs"),
            ("jobs-filtered", f"jobs?q=flow&outcome=succeeded"),
            ("executions", f"executions?job={JOB}"),
            ("cluster", "cluster"),
            ("edit", f"jobs/{JOB}/edit"),
            ("login", "login"),
        ]:
            shots(browser, base, shots_dir, name, path)

        # 6. Delete it: gone from the list.
        watch = browser.open(urllib.parse.urljoin(base, f"jobs/{JOB}"))
        page = watch.page
        page.click("button:has-text('Delete')")
        page.wait_for_load_state("load")
        expect(page.locator("h1")).to_have_text("Jobs")
        expect(page.locator(f"a[href='jobs/{JOB}']")).to_have_count(0)
        watch.check("delete")
        watch.close()
    print("flow: ok")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        sys.exit(f"flow: FAILED: {e}")
