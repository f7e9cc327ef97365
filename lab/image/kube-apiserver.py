#!/usr/bin/python3
"""Stand-in for kube-apiserver in the kha-deploy lab.

Serves TLS with this host's serving certificate and answers what `kubectl version` asks
(GET /version, with the JSON shape of a real apiserver), GET /api (the core group's
APIVersions) and the health endpoints /healthz, /livez, /readyz ("ok"). Every response carries
`X-Kha-Lab-Host: <hostname>` so tests can tell which backend served a request that went through
the VIP. Authentication is not checked. Tells systemd it is ready (Type=notify) once it listens.

Failure modes, for failover tests: the mode is read from MODE_FILE (/run/kha-lab/apiserver-mode)
for every new connection and every request, so switching needs no restart; absent, empty or
unknown = ready.
  ready    as above.
  unready  like an apiserver that lost etcd: /readyz and /healthz answer 500 with the failed
           check listed ("[-]etcd failed: reason withheld"), /livez 200, /version 200 (so
           `kubectl version` still passes), every other path 503 (a Status object).
  hung     accepts TCP connections and completes nothing: a new connection gets no TLS
           handshake, a request on an established connection gets no answer. Bytes sent are read
           and dropped; the connection is held until the client closes it, the mode changes or
           HOLD_MAX_S passes, then closed without a word.
  anonymous-denied  like --anonymous-auth=false: the health endpoints (/readyz, /healthz, /livez)
           answer 401 Unauthorized to everyone (this stand-in checks no credentials); the rest
           as in ready (kubectl version still passes).
A stopped apiserver is the unit stopped (`systemctl stop kube-apiserver`), not a mode.
"""
import argparse
import http.server
import json
import os
import socket
import socketserver
import ssl
import sys
import time

HOSTNAME = socket.gethostname()
MODE_FILE = os.environ.get("KHA_LAB_APISERVER_MODE_FILE", "/run/kha-lab/apiserver-mode")
MODES = ("ready", "unready", "hung", "anonymous-denied")
HOLD_MAX_S = 600
VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0",
    "gitCommit": "7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T17:27:03Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
NOT_FOUND = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "the server could not find the requested resource",
    "reason": "NotFound",
    "details": {},
    "code": 404,
}
UNAVAILABLE = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "the server is currently unable to handle the request (etcd unavailable)",
    "reason": "ServiceUnavailable",
    "details": {},
    "code": 503,
}
# What a real apiserver that lost etcd prints on its failing health endpoints (abridged list of checks).
CHECKS_FAILED = (
    "[+]ping ok\n"
    "[+]log ok\n"
    "[-]etcd failed: reason withheld\n"
    "[+]etcd-readiness ok\n"
    "[+]informer-sync ok\n"
    "[+]poststarthook/start-apiserver-admission-initializer ok\n"
    "[+]poststarthook/generic-apiserver-start-informers ok\n"
    "[+]shutdown ok\n"
)
UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
CTX = None


def current_mode():
    try:
        with open(MODE_FILE) as f:
            mode = f.read().strip()
    except OSError:
        return "ready"
    return mode if mode in MODES else "ready"


class Hung(Exception):
    """A connection held in hung mode ended (closed by the client, mode changed, or held too long)."""


def hold(sock):
    """Holds a connection without answering: reads and drops what arrives until the peer closes
    it, the mode leaves `hung`, or HOLD_MAX_S passes."""
    deadline = time.monotonic() + HOLD_MAX_S
    sock.settimeout(1.0)
    while time.monotonic() < deadline and current_mode() == "hung":
        try:
            if not sock.recv(65536):
                return
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        except OSError:
            return


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kha-lab-apiserver"
    sys_version = ""
    timeout = 15

    def setup(self):
        if current_mode() == "hung":
            # TCP accepted by the kernel; no TLS handshake, no answer.
            hold(self.request)
            raise Hung()
        # TLS handshake in this connection's own thread (a bare TCP health check or a slow
        # client never blocks the accept loop).
        self.request.settimeout(self.timeout)
        self.request = CTX.wrap_socket(self.request, server_side=True)
        super().setup()

    def _send(self, code, body, ctype):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Kha-Lab-Host", HOSTNAME)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        mode = current_mode()
        path = self.path.split("?", 1)[0]
        if mode == "hung":
            # After the handshake (a connection opened before the switch): the request is read, never answered.
            self.close_connection = True
            hold(self.request)
            return
        if path == "/version":
            self._send(200, json.dumps(VERSION, indent=2) + "\n", "application/json")
        elif mode == "anonymous-denied" and path in ("/healthz", "/livez", "/readyz"):
            self._send(401, json.dumps(UNAUTHORIZED) + "\n", "application/json")
        elif mode == "unready":
            if path == "/livez":
                self._send(200, "ok", "text/plain; charset=utf-8")
            elif path in ("/healthz", "/readyz"):
                self._send(500, CHECKS_FAILED + "%s check failed\n" % path[1:], "text/plain; charset=utf-8")
            else:
                self._send(503, json.dumps(UNAVAILABLE) + "\n", "application/json")
        elif path in ("/healthz", "/livez", "/readyz"):
            self._send(200, "ok", "text/plain; charset=utf-8")
        elif path == "/api":
            body = {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "%s:%d" % self.connection.getsockname()[:2]}],
            }
            self._send(200, json.dumps(body) + "\n", "application/json")
        else:
            self._send(404, json.dumps(NOT_FOUND) + "\n", "application/json")

    do_HEAD = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        err = sys.exc_info()[1]
        if isinstance(err, Hung):
            return
        sys.stderr.write("%s connection error: %s\n" % (client_address[0], err))


def sd_notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(msg.encode())


def main():
    global CTX
    p = argparse.ArgumentParser()
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    a = p.parse_args()
    CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    CTX.minimum_version = ssl.TLSVersion.TLSv1_2
    CTX.load_cert_chain(a.cert, a.key)
    srv = Server((a.bind, a.port), Handler)
    sys.stderr.write("serving https on %s:%d as %s (mode file %s, now %s)\n" % (a.bind, a.port, HOSTNAME, MODE_FILE, current_mode()))
    sys.stderr.flush()
    sd_notify("READY=1")
    srv.serve_forever()


if __name__ == "__main__":
    main()
