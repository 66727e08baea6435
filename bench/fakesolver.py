"""A FlareSolverr that answers at once, for the bench scripts (cost.py, memory.py): what they
measure is flarefeed, never the solver's wait."""
import http.server
import json
import socket


class NoDelay(http.server.BaseHTTPRequestHandler):
    """Headers and body go out as written: without TCP_NODELAY a body written after its headers
    waits for the peer's delayed ACK (40 ms on Linux), which would be measured as flarefeed's."""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass


def solution(url, response):
    """FlareSolverr 3.3.21's "ok" reply to `request.get`, its page being `response`."""
    return {
        "status": "ok", "message": "", "startTimestamp": 0, "endTimestamp": 1, "version": "3.3.21",
        "solution": {"url": url, "status": 200, "headers": {}, "response": response,
                     "cookies": [], "userAgent": "bench"},
    }


class Solver(NoDelay):
    """`POST /v1`: `request.get` is answered with `request_get(command)`, a subclass's; the session
    commands with an "ok"."""

    def request_get(self, command):
        raise NotImplementedError

    def do_POST(self):
        command = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if command.get("cmd") == "request.get":
            body = self.request_get(command)
        else:
            body = json.dumps({"status": "ok", "message": "", "session": command.get("session", "s"),
                               "sessions": [], "version": "3.3.21"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
