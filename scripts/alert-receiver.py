#!/usr/bin/env python3
"""A webhook receiver for T-Developer alerts, to try an alerts config on one machine.

Listens on 127.0.0.1:PORT, checks each POST's X-Tdev-Signature (HMAC-SHA256, keyed by
the secret in the variable --secret-env names, of "TIMESTAMP.BODY") and that
X-Tdev-Timestamp is within --max-age seconds, answers 200 to a good alert and 401 to
a bad one, and prints one JSON line per request on stdout:
{"verified": true|false, "why": ..., "delivery": ..., "alert": {...}}.
A delivery id seen before (a retry of an alert already taken) is answered 200 and
printed with "repeat": true.

Standard library only: it is also an independent check of tdev's signature.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--secret-env", required=True, help="the variable holding the HMAC key")
    ap.add_argument("--max-age", type=int, default=300, help="seconds a timestamp may lag")
    args = ap.parse_args()
    secret = os.environ.get(args.secret_env)
    if not secret:
        sys.exit(f"alert-receiver: {args.secret_env} is not set")
    key = secret.encode()
    seen = set()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet: stdout carries the alerts
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_response(413)
                self.end_headers()
                return
            body = self.rfile.read(length)
            ts = self.headers.get("X-Tdev-Timestamp", "")
            sig = self.headers.get("X-Tdev-Signature", "")
            delivery = self.headers.get("X-Tdev-Delivery", "")
            want = "sha256=" + hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            why = None
            if not hmac.compare_digest(want, sig):
                why = "bad signature"
            elif not ts.isdigit() or abs(time.time() - int(ts)) > args.max_age:
                why = "stale timestamp"
            try:
                alert = json.loads(body)
            except ValueError:
                alert, why = None, why or "not JSON"
            line = {"verified": why is None, "why": why, "delivery": delivery, "alert": alert}
            if why is None and delivery in seen:
                line["repeat"] = True
            seen.add(delivery)
            print(json.dumps(line), flush=True)
            self.send_response(401 if why else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"alert-receiver: listening on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
