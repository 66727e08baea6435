#!/usr/bin/env python3
"""Peak RSS of one whole `flarefeed refresh` (the release binary, folder store) against a fake
FlareSolverr on loopback that answers with a page in each of the three shapes the solver
returns: the raw feed (PyPI build), Chrome's <pre> view and Chrome's XML viewer, of 5 to 20 MB.

Prints a Markdown table: page size, reply size, peak RSS, and the bound of issue 30, 1.5 × the
page + 16 MB (its four cases are marked). A 1 KB feed gives the process's own baseline in the
same run. Then the refresh of the 15 MB XML-viewer reply against
`xmllint --format` and minidom on the feed inside it, timed in the same run (median of 5, minidom 3).
usage: memory.py FLAREFEED_BINARY
"""
import html
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import fakesolver  # noqa: E402
import genfeed  # noqa: E402

MB = 1024 * 1024
VIEWER_HEAD = ('<html xmlns="http://www.w3.org/1999/xhtml"><head><style id="xml-viewer-style">'
               'div.header { margin: 10px; } #webkit-xml-viewer-source-xml { display: none; }</style></head>'
               '<body><div id="webkit-xml-viewer-source-xml">')


def shaped(shape, target):
    """(page, bytes of the feed in it) for a page of about `target` characters in the given shape."""
    if shape == "raw":
        feed = genfeed.rss(target)
        return feed, len(feed.encode())
    if shape == "pre":
        feed = genfeed.rss(int(target / 1.12))
        return (f'<html><head></head><body><pre style="word-wrap: break-word; white-space: pre-wrap;">'
                f'{html.escape(feed, quote=False)}</pre></body></html>'), len(feed.encode())
    # Chrome's XML viewer: the hidden source, then the rendered tree, about twice its size.
    feed = genfeed.rss(target // 3)
    body = feed.split("?>", 1)[1]
    lines = "".join(f'<div class="line"><span class="html-tag">{html.escape(line)}</span></div>' for line in body.splitlines())
    rendered = f'<div class="pretty-print">{lines}</div>'
    while len(rendered) < 2 * len(body):
        rendered += rendered[: 2 * len(body) - len(rendered)]
    rendered = rendered[: rendered.rfind("</div>") + 6] if not rendered.endswith("</div>") else rendered
    return f"{VIEWER_HEAD}{body}</div>{rendered}</body></html>", len(body.encode())


def page(shape, target, of="page"):
    """A page in the given shape whose page (or, with of="feed", the feed in it) is about
    `target` bytes: sized in characters, then once more in the ratio it came out at."""
    response, feed_bytes = shaped(shape, target)
    size = len(response.encode()) if of == "page" else feed_bytes
    return shaped(shape, int(target * target / size))[0]


# (label, shape, MB, of the page or of the feed in it, one of issue 30's four cases, with a
# self link for readers).
CASES = [
    ("raw 5 MB feed", "raw", 5, "page", False, False),
    ("raw 15 MB feed", "raw", 15, "page", False, False),
    ("raw 20 MB feed (PyPI build)", "raw", 20, "page", True, False),
    ("<pre> page of a 5 MB feed", "pre", 5, "feed", True, False),
    ("<pre> page of a 15 MB feed", "pre", 15, "feed", False, False),
    ("<pre> page of 18 MB", "pre", 18, "page", True, False),
    ("XML viewer page of 5 MB", "viewer", 5, "page", False, False),
    ("XML viewer page of 15 MB", "viewer", 15, "page", True, False),
    ("XML viewer page of 20 MB", "viewer", 20, "page", False, False),
    ("raw 20 MB feed with a self link", "raw", 20, "page", False, True),
    ("<pre> page of 18 MB with a self link", "pre", 18, "page", False, True),
]


class Solver(fakesolver.Solver):
    reply = b""

    def request_get(self, command):
        return Solver.reply


# A feed published for readers: `[site] base_url` gives it a self link, so every refresh
# rewrites it (issue 30: in the text's own buffer).
READERS_CONFIG = """[site]
base_url = "https://feeds.example/"

[[feeds]]
name = "bench"
url = "https://example.test/feed.xml"
fetch = "solver"
"""


def peak_rss(binary, port, response, readers=False):
    """(peak RSS bytes, reply bytes, seconds) of one `flarefeed refresh` answered with `response`;
    with `readers`, of a configured feed with a self link."""
    Solver.reply = json.dumps(fakesolver.solution("https://example.test/feed.xml", response)).encode()
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, FLAREFEED_SOLVER_URL=f"http://127.0.0.1:{port}/v1", RUST_LOG="warn")
        if readers:
            with open(os.path.join(work, "flarefeed.toml"), "w") as config:
                config.write(READERS_CONFIG)
            target = ["--config", "flarefeed.toml"]
        else:
            target = ["--url", "https://example.test/feed.xml"]
        started = time.perf_counter()
        run = subprocess.run(["/usr/bin/time", "-f", "%M", binary, "refresh", *target],
                             cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if run.returncode != 0:
            sys.exit(f"refresh failed: {run.stderr}")
        return int(run.stderr.strip().splitlines()[-1]) * 1024, len(Solver.reply), seconds


def tool_run(argv):
    """(seconds, peak RSS bytes) of one run of a tool, output thrown away."""
    started = time.perf_counter()
    run = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"{argv[0]} failed: {run.stderr[-300:]}")
    return seconds, int(run.stderr.strip().splitlines()[-1]) * 1024


MINIDOM = "import sys, xml.dom.minidom as m; sys.stdout.write(m.parse(sys.argv[1]).toprettyxml())"


def viewer_against_tools(binary, port):
    """The whole refresh of a 15 MB XML-viewer reply, and the tools on the feed inside it."""
    response = page("viewer", 15 * MB)
    feed = response[len(VIEWER_HEAD):response.index("</div>")]
    feed = '<?xml version="1.0" encoding="UTF-8"?>\n' + feed
    refreshes = []
    for _ in range(5):
        rss_bytes, reply, seconds = peak_rss(binary, port, response)
        refreshes.append((seconds, rss_bytes))
    with tempfile.NamedTemporaryFile("w", suffix=".xml", encoding="utf-8") as file:
        file.write(feed)
        file.flush()
        tools = {
            "xmllint --format": [tool_run(["xmllint", "--format", file.name]) for _ in range(5)],
            "minidom": [tool_run([sys.executable, "-c", MINIDOM, file.name]) for _ in range(3)],
        }
    median = lambda runs: (statistics.median(t for t, _ in runs), statistics.median(r for _, r in runs))
    refresh = median(refreshes)
    print(f"The refresh of a {len(response.encode()) / MB:.1f} MB XML-viewer page ({reply / MB:.1f} MB reply; "
          f"the feed inside is {len(feed.encode()) / MB:.1f} MB) against the tools on that feed:")
    print()
    print("| run | median time | peak RSS | time vs refresh | RSS vs refresh |")
    print("|---|---:|---:|---:|---:|")
    bound = 1.5 * len(response.encode()) + 16 * MB
    flag = "" if refresh[1] <= bound else " **over**"
    print(f"| flarefeed refresh (fake solver, folder store; bound {bound / MB:.1f} MB) | {refresh[0] * 1000:.0f} ms | "
          f"{refresh[1] / MB:.1f} MB{flag} | 1.00× | 1.00× |")
    for tool, runs in tools.items():
        seconds, rss_bytes = median(runs)
        print(f"| {tool} on the feed alone | {seconds * 1000:.0f} ms | {rss_bytes / MB:.1f} MB | "
              f"{seconds / refresh[0]:.2f}× | {rss_bytes / refresh[1]:.2f}× |")


def main():
    binary = os.path.abspath(sys.argv[1])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Solver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    baseline, _, _ = peak_rss(binary, port, genfeed.rss(1024))
    print(f"Baseline (a 1 KB feed): peak RSS {baseline / MB:.1f} MB")
    print()
    print("| page | reply | peak RSS | bound 1.5 × page + 16 MB | peak / page |")
    print("|---|---:|---:|---:|---:|")
    for label, shape, target, of, issue, readers in CASES:
        response = page(shape, int(target * MB), of)
        rss_bytes, reply, _ = peak_rss(binary, port, response, readers)
        size = len(response.encode())
        bound = 1.5 * size + 16 * MB
        over = " **over**" if rss_bytes > bound else ""
        mark = " (issue 30)" if issue else ""
        print(f"| {label}{mark}: {size / MB:.1f} MB | {reply / MB:.1f} MB | {rss_bytes / MB:.1f} MB{over} | "
              f"{bound / MB:.1f} MB | {rss_bytes / size:.2f} |")
    print()
    viewer_against_tools(binary, port)
    server.shutdown()


if __name__ == "__main__":
    main()
