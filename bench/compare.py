#!/usr/bin/env python3
"""Times pretty-printing with flarefeed, xmllint --format and Python's minidom on each feed:
wall time and peak RSS (/usr/bin/time -v), medians over several runs, ratios from the same run.

usage: compare.py FLAREFEED_BINARY FEED...
"""
import os
import statistics
import subprocess
import sys
import time

RUNS = {"flarefeed": 7, "xmllint": 7, "minidom": 3}
MINIDOM = "import sys, xml.dom.minidom as m; sys.stdout.write(m.parse(sys.argv[1]).toprettyxml())"


def measure(argv):
    """(seconds, peak RSS bytes) of one run, output thrown away. The time is taken around
    /usr/bin/time -v (a constant few hundred microseconds for every tool), and the RSS is what
    it reports for the tool alone."""
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-v", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{argv[0]} failed: {result.stderr[-500:]}")
    rss_kb = next(int(line.rsplit(":", 1)[1]) for line in result.stderr.splitlines() if "Maximum resident set size" in line)
    return seconds, rss_kb * 1024


def main():
    binary, feeds = sys.argv[1], sys.argv[2:]
    tools = {
        "flarefeed": lambda f: [binary, "format", f],
        "xmllint": lambda f: ["xmllint", "--format", f],
        "minidom": lambda f: [sys.executable, "-c", MINIDOM, f],
    }
    print(f"| feed | tool | median time | peak RSS | RSS / input | time vs xmllint | minidom / flarefeed |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for feed in feeds:
        size = os.path.getsize(feed)
        medians = {}
        for tool, argv in tools.items():
            runs = [measure(argv(feed)) for _ in range(RUNS[tool])]
            medians[tool] = (statistics.median(t for t, _ in runs), statistics.median(r for _, r in runs))
        for tool, (seconds, rss) in medians.items():
            vs_xmllint = seconds / medians["xmllint"][0]
            speedup = medians["minidom"][0] / seconds if tool == "flarefeed" else None
            print(f"| {os.path.basename(feed)} ({size / 1e6:.1f} MB) | {tool} | {seconds * 1000:.0f} ms | "
                  f"{rss / 1e6:.1f} MB | {rss / size:.2f}× | {vs_xmllint:.2f}× | "
                  f"{'' if speedup is None else f'{speedup:.0f}×'} |")


if __name__ == "__main__":
    main()
