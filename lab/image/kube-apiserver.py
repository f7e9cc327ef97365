#!/usr/bin/python3
"""Stand-in for kube-apiserver in the kha-deploy lab.

Serves TLS with this host's serving certificate and answers what `kubectl version` asks
(GET /version, with the JSON shape of a real apiserver) and the health endpoints /healthz,
/livez, /readyz ("ok"). Every response carries `X-Kha-Lab-Host: <hostname>` so tests can tell
which backend served a request that went through the VIP. Authentication is not checked.
Tells systemd it is ready (Type=notify) once it listens.
"""
import argparse
import http.server
import json
import os
import socket
import socketserver
import ssl
import sys

HOSTNAME = socket.gethostname()
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
CTX = None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kha-lab-apiserver"
    sys_version = ""
    timeout = 15

    def setup(self):
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
        self.send_header("X-Kha-Lab-Host", HOSTNAME)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/version":
            self._send(200, json.dumps(VERSION, indent=2) + "\n", "application/json")
        elif path in ("/healthz", "/livez", "/readyz"):
            self._send(200, "ok", "text/plain; charset=utf-8")
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
    sys.stderr.write("serving https on %s:%d as %s\n" % (a.bind, a.port, HOSTNAME))
    sys.stderr.flush()
    sd_notify("READY=1")
    srv.serve_forever()


if __name__ == "__main__":
    main()
