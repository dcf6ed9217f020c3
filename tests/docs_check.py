"""Read the built documentation site as a reader would, in headless Chromium.

    python tests/docs_check.py site/             # after `mkdocs build`; nox -s docs runs it

Serves the site on 127.0.0.1, opens it in Chromium through the DevTools protocol and
checks that:

- every internal link of every page leads somewhere: pages are opened in the browser
  (following links from the home page until no new page turns up), other files
  (notebook downloads, images) are fetched, and a link's ``#fragment`` names an
  element of its target page;
- every page of the site is reached that way, and no page or asset answers with an
  error status; with ``--executed-notebooks``, every tutorial shows its cells' outputs;
- nothing is fetched from outside the site (fonts, scripts, styles: the site works
  offline) and no page raises a JavaScript error;
- the site's own search (Material's, running in the page) finds the layers page when
  a reader types ``conv_forward_naive`` into the search box.

Exit status 0 when all holds, 1 with the list of problems otherwise, 2 when Chromium
is missing (``XPNET_CHROMIUM`` names it when it is not on PATH as chromium,
chromium-browser, google-chrome or chrome). Not collected by pytest (no ``test_`` prefix):
the ``docs`` nox session runs it after the build.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urldefrag, urlsplit

SEARCH_QUERY = "conv_forward_naive"
SEARCH_EXPECTED = "/reference/layers/"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The Chromium executable: $XPNET_CHROMIUM, else the first of BROWSERS on PATH."""
    named = os.environ.get("XPNET_CHROMIUM")
    if named:
        return shutil.which(named) or (named if Path(named).exists() else None)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(site: Path) -> tuple[ThreadingHTTPServer, str]:
    """The site on an HTTP server of its own (a free port on 127.0.0.1), in a thread."""
    handler = functools.partial(_Quiet, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page target)."""

    def __init__(self, executable: str) -> None:
        import websocket  # websocket-client

        self.profile = tempfile.mkdtemp(prefix="xpnet-docs-chromium-")
        args = [executable, "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--metrics-recording-only",
                "--remote-debugging-port=0", "--remote-allow-origins=*",
                f"--user-data-dir={self.profile}", "about:blank"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium exited with {self.process.returncode}: {err}")
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("Chromium did not open its DevTools port within 60 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: object) -> dict:
        """Send one command; the events that arrive meanwhile are kept in ``events``."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def pump(self, seconds: float) -> None:
        """Collect events for up to ``seconds``."""
        self.ws.settimeout(seconds)
        try:
            while True:
                self.events.append(json.loads(self.ws.recv()))
        except Exception:  # the timeout: nothing more arrived
            pass
        finally:
            self.ws.settimeout(60)

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, timeout: float = 60) -> None:
        """Navigate to ``url`` and wait for its load event."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not finish loading within {timeout:.0f} s")
            self.pump(0.2)
        self.pump(0.3)  # late requests (the search worker, images)

    def type_text(self, text: str) -> None:
        """Type ``text`` key by key into the focused element."""
        for char in text:
            for kind in ("keyDown", "char", "keyUp"):
                params = {"type": kind, "text": char} if kind == "char" else {
                    "type": kind, "key": char}
                self.call("Input.dispatchKeyEvent", **params)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # already closed, or never opened
            pass
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


_PAGE_FACTS = """JSON.stringify({
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  ids: Array.from(document.querySelectorAll('[id], a[name]')).map(e => e.id || e.name),
  outputs: document.querySelectorAll('div.jp-OutputArea-output').length,
  title: document.title})"""


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def _is_page(path: str) -> bool:
    return path.endswith("/") or path.endswith(".html")


def check_links(browser: Browser, base: str, site: Path,
                executed: bool = False) -> tuple[list[str], int]:
    """Crawl from the home page; the problems found and the number of pages opened.

    With ``executed``, every notebook page (``/notebooks/NAME/``) must show cell outputs:
    the build ran the notebooks."""
    problems: list[str] = []
    queue, seen_pages = [base + "/"], {base + "/"}
    referrer = {base + "/": "(the home page)"}
    ids_of: dict[str, set[str]] = {}
    fragments: list[tuple[str, str, str]] = []  # (from page, target page, fragment)
    files_checked: dict[str, int] = {}
    while queue:
        page = queue.pop(0)
        browser.open(page)
        for event in browser.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith((base, "data:", "blob:", "about:")):
                    problems.append(f"{page} fetches {url} from outside the site")
            elif method == "Network.responseReceived":
                response = params["response"]
                if (response["url"].startswith(base) and response["status"] >= 400
                        and not response["url"].endswith("/favicon.ico")):
                    where = (f"{referrer[page]} links to {page}, which" if response["url"] == page
                             else f"{page} loads {response['url']}, which")
                    problems.append(f"{where} answers {response['status']}")
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get("text")
                problems.append(f"{page}: JavaScript error {text}")
        facts = json.loads(browser.evaluate(_PAGE_FACTS))
        if facts["title"].startswith("404"):
            problems.append(f"{page} is the 404 page")
        ids_of[page] = set(facts["ids"])
        notebook = urlsplit(page).path.strip("/").split("/")
        if executed and len(notebook) == 2 and notebook[0] == "notebooks" and not facts["outputs"]:
            problems.append(f"{page} shows no cell outputs: the notebook was not executed")
        for link in facts["links"]:
            target, fragment = urldefrag(link)
            if not target.startswith(base):
                continue  # external links are not followed (the build is offline)
            path = urlsplit(target).path
            if fragment:
                fragments.append((page, target, fragment))
            if _is_page(path):
                if target not in seen_pages:
                    seen_pages.add(target)
                    referrer[target] = page
                    queue.append(target)
            elif target not in files_checked:
                files_checked[target] = _status(target)
                if files_checked[target] != 200:
                    problems.append(f"{page} links to {target}: status {files_checked[target]}")
    for page, target, fragment in fragments:
        if target in ids_of and fragment not in ids_of[target]:
            problems.append(f"{page} links to {target}#{fragment}: no such anchor there")
    problems = list(dict.fromkeys(problems))  # each problem once
    reached = {urlsplit(p).path for p in seen_pages}
    for html in sorted(site.rglob("index.html")):
        relative = html.parent.relative_to(site).as_posix()
        path = "/" if relative == "." else f"/{relative}/"
        if path not in reached:
            problems.append(f"page {path} is not reached by any link")
    return problems, len(seen_pages)


def check_search(browser: Browser, base: str) -> tuple[list[str], list[str]]:
    """Type SEARCH_QUERY into the search box of the home page; (problems, results)."""
    browser.open(base + "/")
    found: list[str] = []
    for _attempt in range(3):
        browser.evaluate("(() => { const q = document.querySelector("
                         "'input[data-md-component=search-query]'); q.value = ''; q.focus();"
                         " return true; })()")
        browser.type_text(SEARCH_QUERY)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            browser.pump(0.25)
            links = browser.evaluate(
                "Array.from(document.querySelectorAll('.md-search-result__item a'))"
                ".map(a => a.href)") or []
            # results of the whole query, not of a prefix typed so far: ?h= holds the
            # query (empty on a page whose match is only in its sections)
            terms = [parse_qs(urlsplit(u).query).get("h") for u in links]
            if [SEARCH_QUERY] in terms and all(t in (None, [SEARCH_QUERY]) for t in terms):
                found = links
                break
        if found:
            break
    if not found:
        return [f"searching {SEARCH_QUERY!r} shows no results"], found
    if not any(SEARCH_EXPECTED in urlsplit(url).path for url in found):
        return [f"searching {SEARCH_QUERY!r} does not list the layers page: {found[:5]}"], found
    return [], found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build's site_dir)")
    parser.add_argument("--executed-notebooks", action="store_true",
                        help="require cell outputs on every notebook page")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        print(f"docs check: {args.site}/index.html does not exist; build the site first",
              file=sys.stderr)
        return 1
    executable = find_chromium()
    if executable is None:
        print("docs check: no Chromium found (install the chromium package, or set "
              "XPNET_CHROMIUM)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    server, base = serve(args.site.resolve())
    browser = Browser(executable)
    try:
        problems, pages = check_links(browser, base, args.site.resolve(),
                                      executed=args.executed_notebooks)
        search_problems, results = check_search(browser, base)
        problems += search_problems
    finally:
        browser.close()
        server.shutdown()
    seconds = time.perf_counter() - start
    if problems:
        print(f"docs check: {len(problems)} problem(s) in {pages} pages:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"docs check: {pages} pages opened in Chromium, every internal link and anchor "
          f"resolves, nothing fetched from outside the site; searching {SEARCH_QUERY!r} "
          f"lists {len(results)} results, among them {SEARCH_EXPECTED} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
