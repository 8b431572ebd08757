"""A local stand-in for SearXNG's `GET /search?q=...&format=json`, speaking its real JSON shape.

Modes mimic what a real instance does: "ok" (results), "empty" (no results), "forbidden" (JSON format
disabled: 403 with an HTML page), "rate_limited" (429 from the limiter). Every query is recorded, and
`GET /_fake/requests` returns them (`[{"query", "format"}]`) to a test in another process; `POST /_fake/script`
`{"results", "mode"}` sets what the next searches answer.
Run alone with `python -m tests.fakes.searxng --port 0`: it prints `READY <port>` once it listens.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_RESULTS: list[dict[str, Any]] = [
    {
        "url": "https://docs.python.org/3/whatsnew/3.13.html",
        "title": "What's New In Python 3.13",
        "content": "This article explains the new features in Python 3.13, compared to 3.12.",
        "engine": "duckduckgo",
        "engines": ["duckduckgo", "brave"],
        "positions": [1, 2],
        "score": 4.0,
        "category": "general",
        "parsed_url": ["https", "docs.python.org", "/3/whatsnew/3.13.html", "", "", ""],
        "template": "default.html",
        "publishedDate": None,
        "thumbnail": "",
        "priority": "",
    },
    {
        "url": "https://www.python.org/downloads/release/python-3130/",
        "title": "Python Release Python 3.13.0",
        "content": "",
        "engine": "brave",
        "engines": ["brave"],
        "positions": [2],
        "score": 1.0,
        "category": "general",
    },
    {
        "url": "https://peps.python.org/pep-0719/",
        "title": "PEP 719 – Python 3.13 Release Schedule",
        "content": "This document describes the development and release schedule for Python 3.13.",
        "engine": "duckduckgo",
        "engines": ["duckduckgo"],
        "positions": [3],
        "score": 0.8,
        "category": "general",
    },
]

FORBIDDEN_HTML = b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1></body></html>"


class FakeSearxng:
    def __init__(self, results: list[dict[str, Any]] | None = None, port: int = 0) -> None:
        self.mode = "ok"
        self.results = DEFAULT_RESULTS if results is None else results
        self.suggestions: list[str] = []
        self.unresponsive_engines: list[list[str]] = []
        self.queries: list[str] = []
        self.formats: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._server.daemon_threads = True
        # A short poll interval keeps shutdown() (and so each test's teardown) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeSearxng:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def body(self, query: str) -> dict[str, Any]:
        results = [] if self.mode == "empty" else self.results
        return {
            "query": query,
            "results": results,
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": self.suggestions,
            "unresponsive_engines": self.unresponsive_engines,
        }


def _make_handler(fake: FakeSearxng) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/_fake/requests":
                records = [{"query": q, "format": f} for q, f in zip(fake.queries, fake.formats, strict=False)]
                self._send(200, json.dumps(records).encode(), "application/json")
                return
            if url.path != "/search":
                self._send(404, b"Not Found", "text/plain")
                return
            params = parse_qs(url.query)
            query = params.get("q", [""])[0]
            output_format = params.get("format", ["html"])[0]
            fake.queries.append(query)
            fake.formats.append(output_format)
            if fake.mode == "forbidden" and output_format == "json":
                self._send(403, FORBIDDEN_HTML, "text/html; charset=utf-8")
            elif fake.mode == "rate_limited":
                self._send(429, b"Too Many Requests", "text/plain")
            elif not query.strip():
                self._send(400, json.dumps({"error": "No query"}).encode(), "application/json")
            else:
                self._send(200, json.dumps(fake.body(query)).encode(), "application/json")

        def do_POST(self) -> None:
            # POST /_fake/script {"results": [...], "mode"?}: what the next searches answer (a test in another process).
            if urlsplit(self.path).path != "/_fake/script":
                self._send(404, b"Not Found", "text/plain")
                return
            try:
                script = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                results = script.get("results", fake.results)
                mode = script.get("mode", fake.mode)
                if not isinstance(results, list) or mode not in ("ok", "empty", "forbidden", "rate_limited"):
                    raise ValueError("results must be a list and mode one of ok, empty, forbidden, rate_limited")
            except (ValueError, AttributeError) as exc:
                self._send(400, json.dumps({"error": str(exc)}).encode(), "application/json")
                return
            fake.results, fake.mode = results, mode
            self._send(200, b"{}", "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest output clean

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with FakeSearxng(port=args.port) as fake:
        sys.stdout.write(f"READY {fake.url.rsplit(':', 1)[1]}\n")
        sys.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
