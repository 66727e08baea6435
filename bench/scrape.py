#!/usr/bin/env python3
"""A feed built from a page: reading a 2 MB CJK forum board of 500 posts (bench/genpage.py) with
`flarefeed preview --page --json` (the release binary: the configuration, html5ever's parse, the
selectors, dates, content with absolute links, the JSON) against the same extraction with
Python's lxml (libxml2's HTML parser and XPath), each a whole process, in the same run.

Each is timed as a whole process (median of 7) and by its peak RSS (getrusage of the one child);
the same on a page of one post gives each process's own start and baseline, and the difference is
the extraction's. Both must find the same 500 titles and links.
usage: scrape.py FLAREFEED_BINARY PYTHON_WITH_LXML
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import genpage  # noqa: E402

MB = 1024 * 1024
RUNS = 7
CONFIG = """[[feeds]]
name = "board"
url = "https://forum.example/categories/tech"
[feeds.html]
item = "li.post-list-item"
title = ".post-title a"
link = ".post-title a@href"
content = ".post-summary"
date = "time@datetime"
author = ".info-author a"
id = "@data-pid"
"""

LXML = r"""
import json, sys
from datetime import datetime
from urllib.parse import urljoin
import lxml.html
page_url = "https://forum.example/categories/tech"
doc = lxml.html.parse(sys.argv[1]).getroot()
cls = lambda name: f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"
items = []
for item in doc.xpath(f"//li[{cls('post-list-item')}]"):
    a = item.xpath(f".//div[{cls('post-title')}]//a")
    if not a:
        continue
    link = urljoin(page_url, a[0].get("href"))
    summary = item.xpath(f".//div[{cls('post-summary')}]")
    content = None
    if summary:
        # make_links_absolute() walks the whole document for each call: resolve by hand.
        for element in summary[0].iter():
            for name in ("href", "src"):
                if element.get(name) is not None:
                    element.set(name, urljoin(page_url, element.get(name)))
        content = (summary[0].text or "") + "".join(lxml.html.tostring(c, encoding="unicode") for c in summary[0])
    time = item.xpath(".//time/@datetime")
    author = item.xpath(f".//span[{cls('info-author')}]//a")
    items.append({"id": page_url + "#" + item.get("data-pid"), "title": " ".join(a[0].text_content().split()),
                  "link": link, "date": datetime.fromisoformat(time[0].replace("Z", "+00:00")).isoformat() if time else None,
                  "author": author[0].text_content().strip() if author else None, "content": content})
print(json.dumps({"items": items}, ensure_ascii=False))
"""

PEAK = """import resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
took = time.perf_counter() - started
if done.returncode:
    sys.exit(done.stderr.decode(errors="replace"))
sys.stdout.write(f"{took} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}\\n")
sys.stdout.buffer.write(done.stdout)
"""


def measure(command):
    """Median seconds and peak RSS (bytes) of `command` over RUNS runs, and its last output."""
    times, peaks, out = [], [], b""
    for _ in range(RUNS):
        done = subprocess.run([sys.executable, "-c", PEAK, *command], stdout=subprocess.PIPE, check=True)
        head, out = done.stdout.split(b"\n", 1)
        took, peak = head.split()
        times.append(float(took))
        peaks.append(int(peak))
    return statistics.median(times), statistics.median(peaks), out


def main():
    flarefeed, python = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "flarefeed.toml")
        with open(config, "w") as f:
            f.write(CONFIG)
        script = os.path.join(tmp, "lxml_extract.py")
        with open(script, "w") as f:
            f.write(LXML)
        rows, outputs = [], {}
        for posts in (1, 500):
            page = os.path.join(tmp, f"page-{posts}.html")
            with open(page, "w", encoding="utf-8") as f:
                f.write(genpage.page(posts))
            size = os.path.getsize(page)
            ours = measure([flarefeed, "preview", "board", "--config", config, "--page", page, "--json"])
            theirs = measure([python, script, page])
            rows.append((posts, size, ours, theirs))
            outputs[posts] = (json.loads(ours[2]), json.loads(theirs[2]))
        ours, theirs = outputs[500]
        pick = lambda out: [(i["title"], i["link"], i["date"][:19]) for i in out["items"]]
        assert len(ours["items"]) == 500, len(ours["items"])
        assert pick(ours) == pick(theirs), "flarefeed and lxml read different items"
        assert [i["author"] for i in ours["items"]] == [i["author"] for i in theirs["items"]]
        print("| page | flarefeed preview | lxml (Python) | flarefeed / lxml |")
        print("|---|---|---|---|")
        for posts, size, (t1, p1, _), (t2, p2, _) in rows:
            print(f"| {posts} posts, {size / MB:.2f} MB | {t1 * 1000:.0f} ms, {p1 / MB:.1f} MB | "
                  f"{t2 * 1000:.0f} ms, {p2 / MB:.1f} MB | {t1 / t2:.2f}× time, {p1 / p2:.2f}× memory |")
        (_, _, (b1, q1, _), (b2, q2, _)), (_, _, (t1, p1, _), (t2, p2, _)) = rows
        print(f"| extraction alone (500 posts less 1) | {(t1 - b1) * 1000:.0f} ms, +{(p1 - q1) / MB:.1f} MB | "
              f"{(t2 - b2) * 1000:.0f} ms, +{(p2 - q2) / MB:.1f} MB | {(t1 - b1) / (t2 - b2):.2f}× time, "
              f"{(p1 - q1) / (p2 - q2):.2f}× memory |")
        print()
        print(f"Both read the same 500 titles, links, dates and authors (median of {RUNS} runs each).")


if __name__ == "__main__":
    main()
