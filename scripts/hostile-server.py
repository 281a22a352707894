#!/usr/bin/env python3
"""A hostile storage server for checking the client by hand (issue 12).

Answers `GET /v1/datasets` with the listing in LISTING_JSON (save it from a
real `selmask serve` with curl, so the artifact's hash matches), and every
other request with MODE:

  endless   200, chunked, 64 KiB chunks that never end
  declared  200, `content-length: 10^12`, then a few bytes and silence

Listens on 127.0.0.1 only, prints its URL, and stops by itself after
--seconds (default 120). Example (peak memory of the client):

  python3 scripts/hostile-server.py listing.json endless &
  /usr/bin/time -v target/debug/selmask infer --server http://127.0.0.1:PORT --artifact ART
"""

import argparse
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler


def main():
    p = argparse.ArgumentParser()
    p.add_argument("listing_json")
    p.add_argument("mode", choices=["endless", "declared"])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seconds", type=float, default=120.0)
    args = p.parse_args()
    listing = open(args.listing_json, "rb").read()
    stop_at = time.monotonic() + args.seconds

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self):
            if self.path == "/v1/datasets":
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(listing)))
                self.end_headers()
                self.wfile.write(listing)
                return
            self.send_response(200)
            self.send_header("content-type", "application/vnd.selmask.items")
            if args.mode == "declared":
                self.send_header("content-length", str(10**12))
                self.end_headers()
                self.wfile.write(b"SLMX")
                time.sleep(max(0.0, min(30.0, stop_at - time.monotonic())))
                return
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            chunk = b"%x\r\n" % 65536 + b"7" * 65536 + b"\r\n"
            try:
                while time.monotonic() < stop_at:
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client hung up: what it should do

        def do_GET(self):
            self.answer()

        def do_POST(self):
            n = int(self.headers.get("content-length", "0"))
            self.rfile.read(min(n, 1 << 20))
            self.answer()

    class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server(("127.0.0.1", args.port), Handler) as srv:
        print(f"http://127.0.0.1:{srv.server_address[1]}", flush=True)
        threading.Timer(args.seconds, srv.shutdown).start()
        srv.serve_forever()


if __name__ == "__main__":
    main()
