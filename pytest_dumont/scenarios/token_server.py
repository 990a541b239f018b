"""A tiny Ollama-compatible token server the inference scenario uploads to an emulated instance.

Each token costs real work (``WORK`` SHA-256 rounds), so the throughput meter measures a real workload rather than a
sleep. It speaks ``GET /api/tags`` and a streamed ``POST /api/generate`` (one NDJSON line per token), binds a free
loopback port and writes it to the file named by its first argument. Standard library only: it runs on the instance.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import sys

WORK = 2000


class TokenHandler(http.server.BaseHTTPRequestHandler):
    """Answers like Ollama, one token at a time."""

    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the scenario reads the answers, not a log."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"models": []}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        state = str(body["prompt"]).encode()
        count = int(body.get("options", {}).get("num_predict", 32))
        for _ in range(count):
            for _ in range(WORK):
                state = hashlib.sha256(state).digest()
            self._line({"model": body["model"], "response": state.hex()[:4] + " ", "done": False})
        self._line({"model": body["model"], "response": "", "done": True, "eval_count": count})

    def _line(self, data: dict[str, object]) -> None:
        self.wfile.write(json.dumps(data).encode() + b"\n")
        self.wfile.flush()


def main(argv: list[str]) -> None:
    global WORK
    port_file, WORK = argv[1], int(argv[2])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    with open(port_file + ".new", "w") as out:
        out.write(str(server.server_address[1]))
    os.replace(port_file + ".new", port_file)  # the scenario sees the whole port number or nothing
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
