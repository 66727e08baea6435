#!/usr/bin/env python3
"""What a feed costs on AWS, from what flarefeed measurably does (issue 21).

1. Requests per refresh: runs the counting test (`tests/it/lambda.rs`,
   `each_kind_of_refresh_makes_few_requests`: the real binary on moto behind a counting proxy)
   and reads the counts it prints.
2. Duration by memory size: the release binary under a Lambda Runtime API emulated here on
   loopback, refreshing a 100 KB feed directly (from an origin on loopback with an ETag) and
   through a fake FlareSolverr that answers at once, at 128, 256 and 512 MB. Lambda gives a
   function CPU in proportion to its memory (1,769 MB is one vCPU,
   https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html); where this machine
   lets us (cgroup v1 `cpu.cfs_quota_us`, as root), the process gets that share of one CPU, so
   that the durations are Lambda's rather than this machine's.
3. Dollars per feed-month at 15 minutes and 1 hour, for 10, 1,000 and 10,000 feeds, with 80 %
   and 0 % of the feeds direct. A solver refresh also waits on the solver: SOLVER_WAIT_S
   (a warm FlareSolverr session answers in about 0.3 s, a cold one in 3 to 60 s).

usage: cost.py FLAREFEED_BINARY [--skip-count]
"""
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import fakesolver  # noqa: E402
import genfeed  # noqa: E402
from fakesolver import NoDelay  # noqa: E402

# --- Prices: AWS list prices, us-east-1, read 2026-12; the one place they live. ---------------
# Lambda, arm64 (the template's architecture): per GB-second and per request
# (https://aws.amazon.com/lambda/pricing/). Billed duration is rounded up to 1 ms.
LAMBDA_GB_SECOND = 0.0000133334
LAMBDA_REQUEST = 0.20 / 1e6
# S3 Standard: PUT, COPY, POST, LIST per request; GET, SELECT and all others (HEAD) per request
# (https://aws.amazon.com/s3/pricing/).
S3_PUT = 0.005 / 1000
S3_GET = 0.0004 / 1000
# SQS FIFO, per request (each 64 KB chunk of a payload is one; our messages are tiny)
# (https://aws.amazon.com/sqs/pricing/).
SQS_FIFO_REQUEST = 0.50 / 1e6
# EventBridge Scheduler, per invocation (https://aws.amazon.com/eventbridge/pricing/).
SCHEDULER_INVOCATION = 1.00 / 1e6
# Free tiers are left out: the figures are what the usage costs at list price.

MONTH_S = 30 * 24 * 3600
SOLVER_WAIT_S = 5.0
MEMORIES = (128, 256, 512)
LOG = None  # the function's log, for a failure's message
RUNS = 15


def count_requests():
    """The counting test's figures: {kind: (puts, site_puts, reads, sqs_calls)}."""
    run = subprocess.run(
        ["cargo", "test", "--quiet", "--test", "it", "each_kind_of_refresh_makes_few_requests", "--", "--nocapture"],
        capture_output=True, text=True)
    line = next((l for l in run.stdout.splitlines() if l.startswith("requests per refresh:")), None)
    if run.returncode != 0 or line is None:
        sys.exit(f"the counting test failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    counts = {}
    for kind, body in re.findall(r"(tick|changed|304|failed) \(([^)]*)\)", line):
        parts = [p.strip() for p in body.split(",")]
        counts[kind] = (int(parts[0]), int(parts[1]), int(parts[2]), len([p for p in parts[3:] if p.strip("[] \"")]))
    hour = re.search(r"\(PUTs, site PUTs, reads\) \((\d+), (\d+), (\d+)\) in (\d+)", line)
    puts, site_puts, reads, refreshes = (int(x) for x in hour.groups())
    counts["unchanged"] = (puts / refreshes, site_puts / refreshes, reads / refreshes, 0)
    return counts, line


class Quiet(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if os.environ.get("BENCH_LOG"):
            super().handle_error(request, client_address)
        # else: a client that hangs up (the function killed after a run) is no error here


class Feeds:
    """The origin (a feed with an ETag, 304 for it) and the fake solver's page."""
    body = b""
    etag = '"v1"'


class Origin(NoDelay):
    def do_GET(self):
        if self.headers.get("If-None-Match") == Feeds.etag:
            self.send_response(304)
            self.send_header("ETag", Feeds.etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("ETag", Feeds.etag)
        self.send_header("Content-Length", str(len(Feeds.body)))
        self.end_headers()
        self.wfile.write(Feeds.body)

    def log_message(self, *args):
        pass


class Solver(fakesolver.Solver):
    def request_get(self, command):
        return json.dumps(fakesolver.solution(command["url"], Feeds.body.decode())).encode()


class RuntimeApi(NoDelay):
    """Lambda's Runtime API, enough of it: `next` hands out the queued events, `response` and
    `error` record the answer and its time."""
    events = []
    answered = {}
    lock = threading.Condition()
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if not self.path.endswith("/invocation/next"):
            self.send_error(404)
            return
        with RuntimeApi.lock:
            while not RuntimeApi.events:
                RuntimeApi.lock.wait()
            request_id, event = RuntimeApi.events.pop(0)
        body = json.dumps(event).encode()
        RuntimeApi.answered[request_id] = {"sent": time.perf_counter()}
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 120_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:flarefeed")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # The function gave up on this `next` (its client closed the connection): the event
            # waits for the next one.
            with RuntimeApi.lock:
                RuntimeApi.events.insert(0, (request_id, event))
                RuntimeApi.lock.notify_all()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        parts = self.path.split("/")
        if "invocation" in parts:
            request_id = parts[parts.index("invocation") + 1]
            with RuntimeApi.lock:
                RuntimeApi.answered[request_id].update(done=time.perf_counter(), body=body, error=parts[-1] == "error")
                RuntimeApi.lock.notify_all()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def invoke(event):
    request_id = str(uuid.uuid4())
    with RuntimeApi.lock:
        RuntimeApi.events.append((request_id, event))
        RuntimeApi.lock.notify_all()
        deadline = time.time() + 120
        while "done" not in RuntimeApi.answered.get(request_id, {}):
            RuntimeApi.lock.wait(timeout=1)
            if time.time() > deadline:
                sys.exit(f"the function did not answer: {open(LOG).read()[-3000:] if LOG else ''}")
    answer = RuntimeApi.answered.pop(request_id)
    if answer["error"]:
        sys.exit(f"the invocation failed: {answer['body'][:500]}")
    return answer["done"] - answer["sent"]


def serve(handler):
    server = Quiet(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def cpu_cgroup(memory_mb):
    """A cgroup v1 with Lambda's CPU share for `memory_mb`, or None where we cannot make one."""
    path = f"/sys/fs/cgroup/cpu/flarefeed-bench-{memory_mb}"
    try:
        os.makedirs(path, exist_ok=True)
        with open(f"{path}/cpu.cfs_period_us", "w") as f:
            f.write("100000")
        with open(f"{path}/cpu.cfs_quota_us", "w") as f:
            f.write(str(int(100000 * memory_mb / 1769)))
        return path
    except OSError:
        return None


def durations(binary, memory_mb, origin, solver, work):
    """Median milliseconds of each kind of refresh, and the peak RSS, at `memory_mb`."""
    runtime = serve(RuntimeApi)
    config = (f'[solver]\nurl = "http://127.0.0.1:{solver.server_address[1]}/v1"\nsession = "none"\n'
              f'[store]\ndir = "{work}/store-{memory_mb}"\n[site]\nenabled = false\n'
              f'[[feeds]]\nname = "direct"\nurl = "http://127.0.0.1:{origin.server_address[1]}/feed.xml"\nfetch = "direct"\n'
              f'[[feeds]]\nname = "solved"\nurl = "http://127.0.0.1:{origin.server_address[1]}/solved.xml"\nfetch = "solver"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLAREFEED_", "AWS_"))}
    env.update(AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime.server_address[1]}", AWS_LAMBDA_FUNCTION_NAME="flarefeed",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(memory_mb), AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               FLAREFEED_CONFIG=config, RUST_LOG=os.environ.get("BENCH_LOG", "error"), NO_PROXY="127.0.0.1")
    cgroup = cpu_cgroup(memory_mb)
    global LOG
    LOG = f"{work}/function-{memory_mb}.log"
    log = open(LOG, "w")
    process = subprocess.Popen([binary], env=env, stdout=log, stderr=log)
    if cgroup:
        with open(f"{cgroup}/cgroup.procs", "w") as f:
            f.write(str(process.pid))
    queued = lambda feed: {"Records": [{"messageId": str(uuid.uuid4()), "body": json.dumps({"feed": feed}),
                                        "eventSource": "aws:sqs"}]}
    asked = lambda feed: {"Records": [{"messageId": str(uuid.uuid4()),
                                       "body": json.dumps({"feed": feed, "asked": True, "force": True}),
                                       "eventSource": "aws:sqs"}]}
    try:
        invoke(asked("direct"))  # the first invocation; a cold start is not a refresh's cost
        times = {kind: [] for kind in ("direct, changed", "direct, 304", "solver, changed", "solver, unchanged")}
        for _ in range(RUNS):
            times["direct, changed"].append(invoke(asked("direct")))  # forced: read, checked, written
            times["direct, 304"].append(invoke(queued("direct")))
            times["solver, changed"].append(invoke(asked("solved")))
            times["solver, unchanged"].append(invoke(queued("solved")))
        with open(f"/proc/{process.pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    finally:
        process.kill()
        process.wait()
        runtime.shutdown()
        if cgroup:
            try:
                os.rmdir(cgroup)
            except OSError:
                pass
    return {kind: statistics.median(t) * 1000 for kind, t in times.items()}, rss, cgroup is not None


def refresh_cost(memory_mb, ms, s3_puts, s3_gets, sqs_requests):
    """Dollars of one refresh: its invocation, its S3 and SQS requests."""
    billed_s = max(1, round(ms + 0.4999)) / 1000
    return (LAMBDA_REQUEST + LAMBDA_GB_SECOND * memory_mb / 1024 * billed_s
            + S3_PUT * s3_puts + S3_GET * s3_gets + SQS_FIFO_REQUEST * sqs_requests)


def main():
    binary = os.path.abspath(sys.argv[1])
    if "--skip-count" in sys.argv:
        counts = {"changed": (2, 4, 2, 0), "304": (0, 0, 1, 0), "failed": (1, 3, 1, 0), "unchanged": (0.125, 0, 1.125, 0),
                  "tick": (0, 0, 0, 1)}
        line = "(the counting test's figures as recorded; --skip-count)"
    else:
        counts, line = count_requests()
    print(f"Requests per refresh, from the counting test: {line}")
    print()

    Feeds.body = genfeed.rss(100_000).encode()
    origin, solver = serve(Origin), serve(Solver)
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for memory in MEMORIES:
            rows[memory] = durations(binary, memory, origin, solver, work)
    throttled = all(r[2] for r in rows.values())
    print("Duration of one refresh of a 100 KB feed (median of %d), the function's CPU %s:" % (
        RUNS, "held to Lambda's share for its memory (cgroup quota)" if throttled else "NOT throttled (no cgroup here): this machine's, not Lambda's"))
    print()
    print("| memory | direct, changed | direct, 304 | solver, changed (+ wait) | solver, unchanged (+ wait) | peak RSS | reply cap | $ per million unchanged refreshes (direct 304 / solver 5 s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    best = None
    for memory, (ms, rss, _) in rows.items():
        cap = (memory - 40) / 3
        direct = refresh_cost(memory, ms["direct, 304"], 0.125, 1.125, 2)
        solved = refresh_cost(memory, ms["solver, unchanged"] + SOLVER_WAIT_S * 1000, 0.125, 1.125, 2)
        mix = 0.8 * direct + 0.2 * solved
        # The template's rule (tests/it/template.rs): the reply cap holds twice the 19 MB reply
        # of a 5 MB feed in Chrome's XML viewer.
        if cap >= 2 * 19 and (best is None or mix < best[1]):
            best = (memory, mix)
        print(f"| {memory} MB | {ms['direct, changed']:.1f} ms | {ms['direct, 304']:.1f} ms | {ms['solver, changed']:.1f} ms "
              f"| {ms['solver, unchanged']:.1f} ms | {rss:.1f} MB | {cap:.0f} MB | ${direct * 1e6:.2f} / ${solved * 1e6:.2f} |")
    print()
    print(f"Cheapest per refresh (80 % direct) whose reply cap ((memory - 40 MB) / 3) holds twice the 19 MB reply of a "
          f"5 MB feed in Chrome's XML viewer (the template's rule): {best[0]} MB.")
    print()

    memory = 256
    ms = rows[memory][0]
    unchanged = counts["unchanged"]
    print(f"Dollars per feed-month at {memory} MB (AWS list prices, us-east-1, free tiers left out; an unchanged "
          f"refresh makes {unchanged[0]:.3f} S3 PUTs and {unchanged[2]:.3f} GET/HEADs, 2 SQS requests (receive, "
          f"delete) and 0.1 of a tick's SendMessageBatch; a solver refresh waits {SOLVER_WAIT_S:.0f} s on the solver; "
          f"each warm environment reads the configuration once a minute and ticks once a minute, shared by the fleet):")
    print()
    direct_refresh = refresh_cost(memory, ms["direct, 304"], unchanged[0], unchanged[2], 2.1)
    solver_refresh = refresh_cost(memory, ms["solver, unchanged"] + SOLVER_WAIT_S * 1000, unchanged[0], unchanged[2], 2.1)
    for interval_s, label in ((900, "15 minutes"), (3600, "hour")):
        refreshes = MONTH_S / interval_s
        print(f"One feed refreshed every {label}, before the fleet's fixed costs: fetched directly "
              f"${refreshes * direct_refresh:.4f} a month, through the solver ${refreshes * solver_refresh:.4f}.")
    print()
    print("| feeds | interval | direct | per feed-month | fleet per month |")
    print("|---:|---|---:|---:|---:|")
    tick_ms = 5.0
    for feeds in (10, 1000, 10_000):
        for interval_s, label in ((900, "15 min"), (3600, "1 hour")):
            for direct_share in (0.8, 0.0):
                refreshes = MONTH_S / interval_s
                per_refresh = (direct_share * refresh_cost(memory, ms["direct, 304"], unchanged[0], unchanged[2], 2.1)
                               + (1 - direct_share) * refresh_cost(memory, ms["solver, unchanged"] + SOLVER_WAIT_S * 1000,
                                                                   unchanged[0], unchanged[2], 2.1))
                minutes = MONTH_S / 60
                fixed = minutes * (SCHEDULER_INVOCATION + refresh_cost(memory, tick_ms, 0, 1, 0))
                fleet = feeds * refreshes * per_refresh + fixed
                print(f"| {feeds:,} | {label} | {direct_share:.0%} | ${fleet / feeds:.4f} | ${fleet:,.2f} |")


if __name__ == "__main__":
    main()
