"""The browser driver of Kairos's UI tests (integration-tests/tests/ui.rs runs the
scripts beside this file with the venv's python, from scripts/setup-test-deps).

What it gives a page test:
- `Browser`: Debian's chromium (/usr/bin/chromium), headless, driven by Playwright;
  Playwright's own browser builds are never downloaded or used.
- `Browser.open(url, scheme)`: a fresh context in the `light` or `dark` color scheme
  with a `Watch` on its page, which records every problem the page shows: a console
  error, an uncaught exception, a request that failed, an answer of 400 or above, a
  same-origin request outside the base path. Any problem fails the test (`check`).
- `shoot(page, dir, name)`: a full-page screenshot, `DIR/NAME-SCHEME.png`.
- `PrefixProxy`: a reverse proxy on 127.0.0.1 that serves an upstream under a path
  prefix (`/kairos/`), as an operator's nginx would.

Every wait is bounded by a Playwright timeout (`TIMEOUT_MS`); nothing sleeps to
synchronise. What it deliberately does not do: click forms or follow anything but
links (a GET must be safe; actions belong in forms), or compare screenshots with
references (they are for a person to look at).
"""

import http.client
import http.server
import os
import re
import sys
import threading
import urllib.parse

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError as e:  # the message a test shows when the venv lacks it
    sys.exit(f"playwright is not installed ({e}): run scripts/setup-test-deps")

#: Debian's chromium launcher (the `chromium` package, from scripts/setup-test-deps).
CHROMIUM = "/usr/bin/chromium"
#: The bound of every single wait: a launch, a navigation, a locator, a screenshot.
TIMEOUT_MS = 20_000
#: The color schemes every page is shot in.
SCHEMES = ("light", "dark")
#: How often one action is retried when the page navigates under it (a page that
#: refreshes itself, as `<meta http-equiv=refresh>` does): bounded.
STEADY_ATTEMPTS = 3


class Failure(Exception):
    """A check that did not hold: the test fails with this message."""


class Watch:
    """Records the problems one page shows while the test uses it."""

    def __init__(self, page, base):
        self.page = page
        self.base = urllib.parse.urlsplit(base)
        self.problems = []
        # Main-frame navigations so far (a self-refresh counts), for `steady`.
        self.navigations = 0
        # Requests numbered as they start, with the navigation count then; requests
        # numbered below `_left_before` belong to a page the test itself left.
        self._started_at = {}
        self._left_before = 0
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught exception: {exc}"))
        page.on("request", self._request)
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("framenavigated", self._navigated)

    def _console(self, msg):
        if msg.type == "error":
            where = msg.location.get("url", "") if msg.location else ""
            # (A page that declares no icon makes chromium ask for /favicon.ico at
            # the origin's root, a request Playwright does not report: its 404
            # shows here, and fails the page, as it would fill a person's console.)
            self.problems.append(f"console error: {msg.text} ({where})")

    def _request(self, request):
        self._started_at[request] = (len(self._started_at), self.navigations)
        url = urllib.parse.urlsplit(request.url)
        if (url.scheme, url.netloc) == (self.base.scheme, self.base.netloc) and not (
            url.path.startswith(self.base.path)
        ):
            self.problems.append(
                f"request {request.method} {request.url} leaves the base path {self.base.path}"
            )

    def _failed(self, request):
        failure = request.failure or "unknown failure"
        # A request cut short because its page went away (the test moving on, or
        # the page refreshing itself) is the browser's routine, not a fault.
        seq, navigations = self._started_at.get(request, (len(self._started_at), 0))
        left = seq < self._left_before or navigations < self.navigations
        if not (failure == "net::ERR_ABORTED" and left):
            self.problems.append(f"request failed: {request.method} {request.url}: {failure}")

    def _response(self, response):
        if response.status >= 400:
            self.problems.append(
                f"{response.request.method} {response.url} answered {response.status}"
            )

    def _navigated(self, frame):
        if frame == self.page.main_frame:
            self.navigations += 1

    def goto(self, url, html=True):
        """Navigates to `url` and waits for its `load`; fails unless it answered 2xx
        (and, with `html`, HTML)."""
        self._left_before = len(self._started_at)
        response = self.page.goto(url, wait_until="load", timeout=TIMEOUT_MS)
        if response is None:
            raise Failure(f"{url}: no response")
        if not 200 <= response.status < 300:
            raise Failure(f"{url}: answered {response.status}")
        kind = response.headers.get("content-type", "")
        if html and not kind.startswith("text/html"):
            raise Failure(f"{url}: content-type {kind!r}, not text/html")
        return response

    def steady(self, what, action):
        """Runs `action()` until a run ends with no navigation in between (a page
        that refreshes itself may reload under it); bounded by STEADY_ATTEMPTS."""
        for _ in range(STEADY_ATTEMPTS):
            before = self.navigations
            try:
                result = action()
            except PlaywrightError as e:
                if self.navigations == before and "context was destroyed" not in str(e):
                    raise Failure(f"{what}: {e}") from e
                result = None
                before = -1
            if self.navigations == before:
                return result
            self.page.wait_for_load_state("load", timeout=TIMEOUT_MS)
        raise Failure(f"{what}: the page navigated under it {STEADY_ATTEMPTS} times")

    def check(self, what):
        """Fails with every problem recorded so far, if any."""
        if self.problems:
            raise Failure(f"{what}:\n  " + "\n  ".join(self.problems))

    def close(self):
        """Closes the page's context: whatever it still had in flight is dropped."""
        self._left_before = float("inf")
        self.page.context.close()


class Browser:
    """Debian's chromium, headless, for the length of a `with` block."""

    def __init__(self, base, executable=CHROMIUM):
        if not os.access(executable, os.X_OK):
            raise Failure(f"{executable} is not installed: run scripts/setup-test-deps")
        self.base = base
        self.executable = executable

    def __enter__(self):
        self._playwright = sync_playwright().start()
        args = []
        # Chromium refuses to start as root with its sandbox (the sandbox drops
        # privileges a root process cannot meaningfully give up). The tests run as
        # root on this project's machines and CI, and only load pages of the
        # server under test on 127.0.0.1, so the sandbox goes only then.
        if os.geteuid() == 0:
            args.append("--no-sandbox")
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable,
                headless=True,
                args=args,
                timeout=TIMEOUT_MS,
            )
        except BaseException:
            self._playwright.stop()
            raise
        return self

    def __exit__(self, *exc):
        try:
            self._browser.close()
        finally:
            self._playwright.stop()

    def open(self, url, scheme="light"):
        """A new context in `scheme` with a watched page at `url` (see `Watch.goto`)."""
        context = self._browser.new_context(
            color_scheme=scheme, viewport={"width": 1280, "height": 800}
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        watch = Watch(context.new_page(), self.base)
        try:
            watch.goto(url)
        except BaseException:
            watch.close()
            raise
        return watch


def shoot(watch, directory, name, scheme):
    """A full-page screenshot of the watched page into `DIR/NAME-SCHEME.png`."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}-{scheme}.png")
    watch.steady(
        f"screenshot {path}",
        lambda: watch.page.screenshot(path=path, full_page=True, timeout=TIMEOUT_MS),
    )
    return path


def slug(url, base):
    """A file name for `url`: its path below `base`, `index` for the base itself."""
    rel = urllib.parse.urlsplit(url)
    path = rel.path[len(urllib.parse.urlsplit(base).path) :]
    if rel.query:
        path += "-" + rel.query
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path).strip("-.")
    return name[:100] or "index"


class PrefixProxy:
    """A reverse proxy on 127.0.0.1 (a free port) serving `upstream` under `prefix`
    (e.g. `/kairos/`), the way an operator's nginx would: `/kairos/x` goes to the
    upstream's `/x` with `X-Forwarded-Prefix`,
    `X-Forwarded-Host`, `X-Forwarded-Proto` and `X-Forwarded-For`; a `Location`
    naming the upstream is rewritten under the prefix (nginx's `proxy_redirect
    default`); anything outside the prefix answers 404. Responses stream (live
    pages work). It runs for a `with` block, and at most `lifetime_s` seconds."""

    def __init__(self, upstream, prefix="/kairos/", lifetime_s=600):
        up = urllib.parse.urlsplit(upstream)
        if up.scheme != "http" or not up.hostname:
            raise Failure(f"proxy upstream {upstream!r}: want http://HOST:PORT")
        self.upstream = (up.hostname, up.port or 80)
        self.upstream_url = f"http://{up.netloc}/"
        self.prefix = "/" + prefix.strip("/") + "/"
        self.lifetime_s = lifetime_s
        self.log = []

    @property
    def url(self):
        """Where the browser opens the upstream's `/`."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    def __enter__(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # kept for failure messages, not printed
                pass

            def do_GET(self):
                proxy._forward(self)

            do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self._server.shutdown)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    _HOP = {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
    }

    def _forward(self, h):
        path = urllib.parse.urlsplit(h.path).path
        if path == self.prefix.rstrip("/"):
            return self._answer(h, 308, b"", [("Location", self.prefix)])
        if not path.startswith(self.prefix):
            body = f"{path} is outside the proxy's prefix {self.prefix}\n".encode()
            return self._answer(h, 404, body, [("Content-Type", "text/plain")])
        target = h.path[len(self.prefix) - 1 :]
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        headers = {k: v for k, v in h.headers.items() if k.lower() not in self._HOP}
        headers["Host"] = "%s:%d" % self.upstream
        headers["X-Forwarded-Prefix"] = self.prefix.rstrip("/")
        headers["X-Forwarded-Host"] = h.headers.get("Host", "")
        headers["X-Forwarded-Proto"] = "http"
        headers["X-Forwarded-For"] = h.client_address[0]
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        started = False
        try:
            conn.request(h.command, target, body=body, headers=headers)
            resp = conn.getresponse()
            self.log.append(f"{h.command} {h.path} -> {target}: {resp.status}")
            h.send_response(resp.status, resp.reason)
            started = True
            length = None
            for k, v in resp.getheaders():
                if k.lower() == "content-length":
                    length = v
                elif k.lower() not in self._HOP:
                    if k.lower() == "location" and v.startswith(self.upstream_url):
                        v = self.prefix + v[len(self.upstream_url) :]
                    h.send_header(k, v)
            no_body = h.command == "HEAD" or resp.status in (204, 304)
            chunked = length is None and not no_body
            if length is not None:
                h.send_header("Content-Length", length)
            elif chunked:
                h.send_header("Transfer-Encoding", "chunked")
            else:
                h.send_header("Content-Length", "0")
            h.end_headers()
            while not no_body:
                data = resp.read1(65536)
                if chunked:
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                elif data:
                    h.wfile.write(data)
                h.wfile.flush()
                if not data:
                    break
        except (OSError, http.client.HTTPException) as e:
            self.log.append(f"{h.command} {h.path} -> {target}: {e}")
            h.close_connection = True
            if not started:  # past the status line, only closing tells the client
                try:
                    self._answer(h, 502, f"upstream: {e}\n".encode(), [])
                except OSError:
                    pass
        finally:
            conn.close()

    @staticmethod
    def _answer(h, status, body, headers):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
