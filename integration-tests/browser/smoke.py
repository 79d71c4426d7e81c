"""Smoke test of Kairos's web UI, as a person would first check it.

    smoke.py --base URL --screenshots DIR [--via-proxy PREFIX] [--expect-text TEXT]…
             [--min-links N]

Opens URL in headless chromium, in the light and in the dark color scheme; checks that
it answers HTML with a title naming Kairos and shows a heading or a table (and every
`--expect-text`); follows every same-origin link of the page once (in the light
scheme) and checks each answers 2xx and stays under the base path; shoots every HTML
page full-page into DIR (`index-light.png`, `index-dark.png`, `<link path>-light.png`).
Any console error, uncaught exception, failed request or answer of 400 and above on
any of these pages fails it.

`--via-proxy /kairos/` puts a reverse proxy (kairos_ui.PrefixProxy, on 127.0.0.1)
in front of URL and runs the same checks at the proxy's `/kairos/`: what an operator
behind nginx sees. Exits 0 when every check held, 1 with the reasons otherwise.
"""

import argparse
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the work tree
import kairos_ui as ui  # noqa: E402  (beside this file)


def links_of(watch):
    """The page's distinct link targets as (url, is_download), fragments dropped."""
    found = watch.steady(
        "reading the page's links",
        lambda: watch.page.eval_on_selector_all(
            "a[href]", "els => els.map(e => [e.href, e.hasAttribute('download')])"
        ),
    )
    seen, out = set(), []
    for href, download in found:
        url = urllib.parse.urldefrag(href).url
        if url not in seen:
            seen.add(url)
            out.append((url, download))
    return out


def check_page(watch, what, expect_texts):
    """The page has a title naming Kairos, a visible heading or table, and every
    expected text. Playwright's `expect` re-checks until its timeout, so a page
    that reloads itself meanwhile is checked as it settles."""
    page = watch.page
    try:
        ui.expect(page).to_have_title(re.compile("Kairos"), timeout=ui.TIMEOUT_MS)
        ui.expect(page.locator("h1, h2, table").first).to_be_visible(timeout=ui.TIMEOUT_MS)
        for text in expect_texts:
            ui.expect(page.get_by_text(text).first).to_be_visible(timeout=ui.TIMEOUT_MS)
    except AssertionError as e:
        raise ui.Failure(f"{what}: {e}") from e


def follow_links(watch, base, shots):
    """Follows each same-origin link of the page once; returns how many."""
    origin = urllib.parse.urlsplit(base)
    here = urllib.parse.urldefrag(watch.page.url).url
    followed = 0
    for url, download in links_of(watch):
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
            continue
        if url in (here, base):
            continue
        if not parts.path.startswith(origin.path):
            raise ui.Failure(f"link {url} leaves the base path {origin.path}")
        followed += 1
        if download:
            answer = watch.page.request.get(url, timeout=ui.TIMEOUT_MS)
            if not answer.ok:
                raise ui.Failure(f"download link {url} answered {answer.status}")
            print(f"ok   {url} (download, {answer.status})")
            continue
        response = watch.goto(url, html=False)
        kind = response.headers.get("content-type", "")
        shot = ""
        if kind.startswith("text/html"):
            shot = ui.shoot(watch, shots, "link-" + ui.slug(url, base), "light")
        watch.check(f"link {url}")
        print(f"ok   {url} ({response.status} {kind}) {shot}")
    return followed


def smoke(base, args):
    followed = 0
    with ui.Browser(base) as browser:
        for scheme in ui.SCHEMES:
            watch = browser.open(base, scheme)
            try:
                what = f"{base} ({scheme})"
                check_page(watch, what, args.expect_text)
                shot = ui.shoot(watch, args.screenshots, "index", scheme)
                watch.check(what)
                print(f"ok   {what} {shot}")
                if scheme == "light":
                    followed = follow_links(watch, base, args.screenshots)
            finally:
                watch.close()
    if followed < args.min_links:
        raise ui.Failure(f"{base}: {followed} same-origin link(s), want at least {args.min_links}")
    print(f"smoke: {base} rendered in {len(ui.SCHEMES)} color schemes, {followed} link(s) followed")


def check_proxy(proxy):
    """The proxy answers 404 outside its prefix: an absolute link that escapes the
    prefix cannot pass unnoticed."""
    outside = proxy.url[: -len(proxy.prefix)] + "/"
    try:
        with urllib.request.urlopen(outside, timeout=10) as r:
            raise ui.Failure(f"proxy answered {r.status} outside its prefix at {outside}")
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise ui.Failure(f"proxy answered {e.code} at {outside}, want 404") from e


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the UI's URL, e.g. http://127.0.0.1:8080/")
    p.add_argument("--screenshots", required=True, help="directory for the PNG files")
    p.add_argument("--via-proxy", metavar="PREFIX", help="serve --base under PREFIX first")
    p.add_argument("--expect-text", action="append", default=[], help="text the page shows")
    p.add_argument("--min-links", type=int, default=0, help="same-origin links the page has")
    args = p.parse_args()
    try:
        if args.via_proxy:
            with ui.PrefixProxy(args.base, args.via_proxy) as proxy:
                try:
                    check_proxy(proxy)
                    smoke(proxy.url, args)
                except BaseException:
                    print("proxy log:\n  " + "\n  ".join(proxy.log), file=sys.stderr)
                    raise
        else:
            smoke(args.base, args)
    except ui.Failure as e:
        print(f"smoke: FAILED: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
