//! The web UI in a real browser: `kairos dev` with a job firing every second, opened
//! by headless chromium (Debian's, driven by Playwright for Python) through the driver
//! in `integration-tests/browser/`, directly and behind a reverse proxy under
//! `/kairos/`. The driver fails on any console error, uncaught exception, failed
//! request or answer of 400 and above, and leaves full-page screenshots in the light
//! and the dark color scheme under `target/ui-screenshots/<test>/` for a person to
//! look at.
//!
//! `scripts/setup-test-deps` installs chromium and the venv with Playwright; without
//! them these tests fail, naming the script (never a skip).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use kairos_integration_tests::deploy::{self, SETUP, repo_root, tools_dir};
use kairos_integration_tests::{Dev, executions, field, wait_until, write_file};

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// The job that gives the page content.
const JOB: &str = "ui-ticker";

/// What the dashboard shows once the job ran: its outcome.
const EXPECT_TEXT: &str = "succeeded";

/// How long one run of the browser driver may take: every wait inside it is
/// bounded at 20 s, a run takes a few seconds; past this it hangs.
const BROWSER_DEADLINE: Duration = Duration::from_secs(180);

/// Same-origin links the dashboard must have besides itself: at least the
/// navigation's Jobs, Executions and Cluster, so following links (and, behind the
/// proxy, keeping them under the prefix) is really checked.
const MIN_LINKS: &str = "3";

/// The venv's python, with Playwright in it.
fn python() -> Result<PathBuf> {
    let python = tools_dir().join("venv/bin/python");
    ensure!(
        python.is_file(),
        "{} is missing (the browser tests need Playwright and chromium): run {SETUP}",
        python.display()
    );
    Ok(python)
}

/// `target/ui-screenshots/<test>/`, emptied of an earlier run's files.
fn screenshots(test: &str) -> Result<PathBuf> {
    let dir = repo_root().join("target/ui-screenshots").join(test);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `kairos dev` (with `flags`) with the every-second job applied and run at least once, so the
/// page lists a job and an execution.
fn dev_with_job(dir: &Path, flags: &[&str]) -> Result<Dev> {
    let dev = Dev::start_with(BIN.as_ref(), &dir.join("data"), flags)?;
    dev.wait_for_executors(1)?;
    let file = write_file(
        dir,
        "job.yaml",
        &format!("name: {JOB}\nschedule: \"@every 1s\"\nshell:\n  command: echo tick\n"),
    )?;
    dev.cli(&["job", "apply", "-f", &file])?.ok()?;
    wait_until(Duration::from_secs(30), "a succeeded execution", || {
        let list = executions(&dev, JOB).ok()?;
        list.iter()
            .any(|e| field(e, "status") == "succeeded")
            .then_some(())
    })
    .map_err(|e| anyhow!("{e}\n{}", dev.log_tail()))?;
    Ok(dev)
}

/// Runs the driver script `integration-tests/browser/<script>` against `dev`
/// (`--base http://ADDR/ --screenshots target/ui-screenshots/<test>/` and `args`);
/// fails unless it exits 0. Returns the screenshot directory and what it printed.
fn browser(dev: &Dev, script: &str, test: &str, args: &[&str]) -> Result<(PathBuf, String)> {
    let shots = screenshots(test)?;
    let mut cmd = Command::new(python()?);
    // No __pycache__ beside the scripts, in the work tree.
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(repo_root().join("integration-tests/browser").join(script))
        .arg("--base")
        .arg(format!("http://{}/", dev.http_addr))
        .arg("--screenshots")
        .arg(&shots)
        .args(args);
    let out = deploy::run(&mut cmd, BROWSER_DEADLINE)
        .map_err(|e| anyhow!("{e:#}\n--- kairos dev ---\n{}", dev.log_tail()))?;
    if !out.success() {
        bail!("{out}\n--- kairos dev ---\n{}", dev.log_tail());
    }
    print!("{}", out.stdout);
    Ok((shots, out.stdout))
}

/// Runs `smoke.py` against `dev` with `extra` flags; fails unless every check of
/// the driver held and both screenshots of the page are PNG files.
fn smoke(dev: &Dev, test: &str, extra: &[&str]) -> Result<String> {
    let mut args = vec!["--expect-text", EXPECT_TEXT, "--min-links", MIN_LINKS];
    args.extend_from_slice(extra);
    let (shots, stdout) = browser(dev, "smoke.py", test, &args)?;
    for scheme in ["light", "dark"] {
        screenshot(&shots.join(format!("index-{scheme}.png"))).with_context(|| stdout.clone())?;
    }
    Ok(stdout)
}

/// Fails unless `path` is a PNG image of some size (a page really shot).
fn screenshot(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
        "{} is not a screenshot ({} bytes)",
        path.display(),
        bytes.len()
    );
    Ok(())
}

// What a person opening http://127.0.0.1:8080/ checks: the page renders (a title
// naming Kairos, headings or tables, the job's outcome), in light and dark, without an error
// in the console or a failed request, and every link on it leads somewhere that
// answers.
#[test]
fn page_renders_and_every_link_answers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dev = dev_with_job(dir.path(), &[])?;
    let stdout = smoke(&dev, "page_renders_and_every_link_answers", &[])?;
    ensure!(
        stdout.contains("(light)") && stdout.contains("(dark)"),
        "{stdout}"
    );
    Ok(())
}

// An operator's reverse proxy serving Kairos under /kairos/ (the prefix stripped,
// `X-Forwarded-Prefix: /kairos`; the scheduler told with `--http-base-path`): the
// page renders there too, and every link and request it makes stays under the
// prefix (the proxy answers 404 outside it, and the driver checks it does, so an
// absolute link cannot pass unnoticed).
#[test]
fn page_renders_behind_a_prefix_proxy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dev = dev_with_job(dir.path(), &["--http-base-path", "/kairos"])?;
    let stdout = smoke(
        &dev,
        "page_renders_behind_a_prefix_proxy",
        &["--via-proxy", "/kairos/"],
    )?;
    ensure!(stdout.contains("/kairos/ (dark)"), "{stdout}");
    Ok(())
}

// What an operator does in the UI, in the browser (integration-tests/browser/flow.py):
// a job created in the editor (a bad cron refused with the error at its line and
// nothing saved; fixed, previewed, reviewed as a diff, saved), seen firing on its
// page, a running execution's lines arriving live, a pause with a reason, a
// backfill of 5 instants previewed then run, and a delete — with every page shot in
// light and dark.
#[test]
fn an_operator_creates_watches_pauses_backfills_and_deletes_a_job() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dev = Dev::start(BIN.as_ref(), &dir.path().join("data"))?;
    dev.wait_for_executors(1)?;
    let test = "an_operator_creates_watches_pauses_backfills_and_deletes_a_job";
    let (shots, stdout) = browser(&dev, "flow.py", test, &[])?;
    ensure!(stdout.contains("flow: ok"), "{stdout}");
    for page in [
        "editor-error",
        "editor-review",
        "job",
        "execution-live",
        "backfill-preview",
        "dashboard",
        "jobs",
        "executions",
        "cluster",
        "edit",
        "login",
    ] {
        for scheme in ["light", "dark"] {
            screenshot(&shots.join(format!("{page}-{scheme}.png")))?;
        }
    }
    // Through the API too: the job is gone.
    let jobs = dev.cli(&["-o", "json", "job", "list"])?.ok()?.stdout;
    ensure!(
        !jobs.contains("ui-flow"),
        "the deleted job is listed: {jobs}"
    );
    Ok(())
}
