"""Feeds and audio that live on this machine, served over loopback HTTP: `podbrief run` then fetches them the
way it fetches any podcast host, through the same crawler, SSRF guard (told to allow loopback) and downloader."""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Document:
    """One path's answer: bytes held in memory (a rendered feed) or a file streamed from disk (audio)."""

    content_type: str
    body: bytes = b""
    file: Path | None = None

    @property
    def size(self) -> int:
        return self.file.stat().st_size if self.file is not None else len(self.body)


class LocalHost:
    """A threaded HTTP server on 127.0.0.1 answering GET and HEAD for the paths added to it, 404 otherwise."""

    def __init__(self, port: int = 0) -> None:
        self.documents: dict[str, Document] = {}
        documents = self.documents

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # the runner's terminal shows progress, not requests
                pass

            def _reply(self, with_body: bool) -> None:
                doc = documents.get(self.path.split("?", 1)[0])
                if doc is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", doc.content_type)
                self.send_header("Content-Length", str(doc.size))
                self.end_headers()
                if not with_body:
                    return
                try:
                    if doc.file is None:
                        self.wfile.write(doc.body)
                    else:
                        with doc.file.open("rb") as src:
                            shutil.copyfileobj(src, self.wfile)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a download cancelled at shutdown)

            def do_GET(self) -> None:
                self._reply(with_body=True)

            def do_HEAD(self) -> None:
                self._reply(with_body=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="podbrief-run-localhost", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_bytes(self, path: str, body: bytes | str, content_type: str) -> str:
        """Serve `body` at `path`; returns its URL."""
        data = body.encode() if isinstance(body, str) else body
        self.documents[path] = Document(content_type, body=data)
        return self.base_url + path

    def add_file(self, path: str, file: Path, content_type: str) -> str:
        """Serve `file` (read from disk on each request) at `path`; returns its URL."""
        self.documents[path] = Document(content_type, file=file)
        return self.base_url + path

    def start(self) -> LocalHost:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
