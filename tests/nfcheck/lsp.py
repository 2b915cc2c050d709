"""A minimal client for the Nextflow language server over stdio (JSON-RPC with Content-Length).

One server is started per test session; every ``.nf`` and ``.config`` file is opened in one go and
the client waits until the server has published diagnostics for each of them.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfcheck.tools import ensure_jar, java

#: Diagnostics that are false positives offline, matched as whole messages: the plugin registry
#: cannot be reached, so the server knows neither the nf-schema plugin nor its `validation` scope.
OFFLINE_FALSE_POSITIVES = (
    re.compile(r"Plugin 'nf-schema' does not exist"),
    re.compile(r"Unrecognized config option 'validation(\.[A-Za-z]+)+'"),
)

SEVERITY = {1: "error", 2: "warning", 3: "info", 4: "hint"}
EXCLUDE = (".git", ".nf-test", "work", ".nextflow", ".venv", "tests/.tools", "node_modules")


@dataclass(frozen=True)
class Diagnostic:
    path: Path
    line: int
    column: int
    severity: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity.upper()} {self.path}:{self.line}:{self.column}: {self.message}"

    @property
    def allowlisted(self) -> bool:
        return any(fp.fullmatch(self.message) for fp in OFFLINE_FALSE_POSITIVES)


def nextflow_files(root: Path) -> list[Path]:
    """Every ``.nf`` and ``.config`` file under ``root`` outside caches, work dirs and venvs
    (``nf-test.config`` is nf-test's, checked with the nf-test files)."""
    found = []
    for path in sorted([*root.rglob("*.nf"), *root.rglob("*.config")]):
        rel = path.relative_to(root).as_posix()
        if any(rel == ex or rel.startswith(ex + "/") or f"/{ex}/" in f"/{rel}" for ex in EXCLUDE):
            continue
        if path.name == "nf-test.config":  # nf-test's own DSL, not a Nextflow config
            continue
        found.append(path)
    return found


class LanguageServer:
    """The Nextflow language server as a subprocess (use as a context manager)."""

    def __init__(self, *roots: Path, mode: str = "warnings") -> None:
        """Start the server on one or more workspace folders (diagnostics only come for files in them)."""
        self.roots = [root.resolve() for root in roots]
        self.mode = mode
        self._home = tempfile.TemporaryDirectory(prefix="nxf-lsp-home-")
        env = dict(os.environ, NXF_HOME=self._home.name, NXF_OFFLINE="true")
        self._proc = subprocess.Popen(
            [java(), "-jar", str(ensure_jar())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self._next_id = 0
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        threading.Thread(target=self._read, daemon=True).start()
        self._initialize()

    # -- transport -------------------------------------------------------------------------------
    def _read(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        while True:
            header = b""
            while not header.endswith(b"\r\n\r\n"):
                byte = stream.read(1)
                if not byte:
                    return
                header += byte
            length = next(
                int(line.split(b":")[1])
                for line in header.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            self._inbox.put(json.loads(stream.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self._proc.stdin is not None
        self._proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self._proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: Any, *, timeout: float = 120) -> Any:
        self._next_id += 1
        rid = self._next_id
        self._send({"id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._pump(deadline - time.monotonic())
            if message is not None and message.get("id") == rid and "method" not in message:
                if "error" in message:
                    msg = f"{method} failed: {message['error']}"
                    raise RuntimeError(msg)
                return message.get("result")
        msg = f"no answer to {method} within {timeout} s"
        raise TimeoutError(msg)

    def _pump(self, wait: float) -> dict[str, Any] | None:
        try:
            message = self._inbox.get(timeout=max(0.05, min(wait, 1.0)))
        except queue.Empty:
            if self._proc.poll() is not None:
                msg = f"language server exited with code {self._proc.returncode}"
                raise RuntimeError(msg) from None
            return None
        method = message.get("method")
        if method == "textDocument/publishDiagnostics":
            self.diagnostics[message["params"]["uri"]] = message["params"]["diagnostics"]
        elif method is not None and "id" in message:  # a request from the server: acknowledge
            self._send({"id": message["id"], "result": None})
        return message

    # -- protocol --------------------------------------------------------------------------------
    def _initialize(self) -> None:
        self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": self.roots[0].as_uri(),
                "workspaceFolders": [
                    {"uri": root.as_uri(), "name": f"{i}-{root.name}"}
                    for i, root in enumerate(self.roots)
                ],
                "capabilities": {"window": {"workDoneProgress": True}},
            },
        )
        self.notify("initialized", {})
        self.notify(
            "workspace/didChangeConfiguration",
            {
                "settings": {
                    "nextflow": {
                        "errorReportingMode": self.mode.upper(),
                        "files": {"exclude": list(EXCLUDE)},
                    }
                }
            },
        )

    def open(self, files: Iterable[Path], *, timeout: float = 400) -> None:
        """Open ``files`` and wait until the server has published diagnostics for each."""
        uris = []
        for path in files:
            path = path.resolve()
            uri = path.as_uri()
            uris.append(uri)
            self.diagnostics.pop(uri, None)
            self.notify(
                "textDocument/didOpen",
                {
                    "textDocument": {
                        "uri": uri,
                        "languageId": "nextflow-config" if path.suffix == ".config" else "nextflow",
                        "version": 1,
                        "text": path.read_text(),
                    }
                },
            )
        deadline = time.monotonic() + timeout
        while any(u not in self.diagnostics for u in uris):
            if time.monotonic() > deadline:
                missing = [u for u in uris if u not in self.diagnostics]
                msg = f"no diagnostics within {timeout} s for {len(missing)} file(s), e.g. {missing[0]}"
                raise TimeoutError(msg)
            self._pump(deadline - time.monotonic())
        # late re-publications (a file re-checked after its includes) arrive within a moment
        settle = time.monotonic() + 1.5
        while time.monotonic() < settle:
            self._pump(settle - time.monotonic())

    def problems(self, files: Iterable[Path]) -> list[Diagnostic]:
        """Errors and warnings of ``files`` (after :meth:`open`), allowlisted ones included."""
        out = []
        for path in files:
            path = path.resolve()
            for d in self.diagnostics.get(path.as_uri(), []):
                severity = SEVERITY.get(d.get("severity", 1), "error")
                if severity not in ("error", "warning"):
                    continue
                start = d["range"]["start"]
                out.append(
                    Diagnostic(
                        path, start["line"] + 1, start["character"] + 1, severity, d["message"]
                    )
                )
        return out

    def preview_dag(self, path: Path, name: str | None = None) -> str:
        """The Mermaid DAG of the workflow ``name`` (the entry workflow when None) in ``path``."""
        result = self.request(
            "workspace/executeCommand",
            {"command": "nextflow.server.previewDag", "arguments": [path.resolve().as_uri(), name]},
        )
        if not isinstance(result, dict) or not result.get("result"):
            msg = f"no DAG for workflow {name!r} in {path}: {result!r}"
            raise RuntimeError(msg)
        return str(result["result"])

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self._proc.wait(timeout=5)
        except (TimeoutError, RuntimeError, subprocess.TimeoutExpired, BrokenPipeError, OSError):
            pass
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            self._home.cleanup()

    def __enter__(self) -> LanguageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
