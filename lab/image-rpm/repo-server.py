#!/usr/bin/env python3
"""The lab's RPM repository over HTTP (container kha-lab-rpmrepo, 172.16.86.20:8080): serves
/srv/kha-rpm-repo read-only and logs one line per request on stdout (`docker logs`).
A SIGTERM ends it at once (as PID 1 it would otherwise be ignored)."""
import functools
import http.server
import signal
import sys

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="/srv/kha-rpm-repo")
http.server.SimpleHTTPRequestHandler.log_message = lambda self, fmt, *args: print(
    "%s %s" % (self.client_address[0], fmt % args), flush=True)
server = http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 8080), handler)
print("serving /srv/kha-rpm-repo on :%d" % server.server_address[1], flush=True)
server.serve_forever()
