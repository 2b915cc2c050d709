"""Build containers/Dockerfile.cpu with podman on this machine, without an image registry.

The base image is bootstrapped from Debian packages (debootstrap), the Python packages come from a
wheelhouse that the host's pip fills (its cache holds the compiled MACS3; its find-links the CPU
torch), and the host's extra CA certificates go in as a site's would (containers/certs/). Podman's
settings, storage, the wheelhouse and the base image live in a cache folder outside the checkout
(``SCREGNET_CONTAINER_CACHE``, default ``~/.cache/scregnet/podman``): a second build reuses them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
#: Debian packages the local base image gets (the Dockerfile's BASE needs Python 3.11 + venv)
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
SUITE = "bookworm"
#: what the build copies from the checkout (the Dockerfile's COPY sources)
CONTEXT = ("pyproject.toml", "README.md", "LICENSE", "constraints.txt", "src", "bin", "containers")
SITE_CERTS = Path("/usr/local/share/ca-certificates")
#: podman's settings; without them every RUN and `podman run` fails on these machines
CONTAINERS_CONF = """\
[containers]
# podman's default limits exceed root's hard limits here
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
# crun fails on a mixed cgroup v1/v2 host
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class PodmanUnavailable(RuntimeError):
    """Podman cannot build or run images on this machine (the reason is the message)."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "scregnet" / "podman"
    path = Path(os.environ.get("SCREGNET_CONTAINER_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sh(
    argv: list[str], *, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        msg = f"{' '.join(argv[:3])} ... exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        raise RuntimeError(msg)
    return proc


def podman_env() -> dict[str, str]:
    """The environment that points podman at the cache's settings and storage."""
    cache = cache_dir()
    conf = cache / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    storage = cache / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{cache / "storage"}"\n'
        f'runroot = "{cache / "run"}"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}


def podman_required(
    environ: Mapping[str, str] | None = None,
    *,
    euid: int | None = None,
    platform: str | None = None,
) -> bool:
    """Whether podman must work here, so that the container test fails instead of skipping: in CI
    (``CI=true``, as GitHub Actions sets it) as root on Linux, where `make sysdeps`
    installs podman, runc and debootstrap. Defaults: this process's environment, uid, platform."""
    environ = os.environ if environ is None else environ
    euid = os.geteuid() if euid is None else euid
    platform = sys.platform if platform is None else platform
    return environ.get("CI", "").lower() == "true" and euid == 0 and platform == "linux"


def check_podman(env: dict[str, str]) -> None:
    """Raise :class:`PodmanUnavailable` unless podman, runc and debootstrap are installed (`make
    sysdeps` installs them) and podman works with the cache's settings."""
    missing = [t for t in ("podman", "runc", "debootstrap") if shutil.which(t) is None]
    if missing:
        raise PodmanUnavailable(
            f"{', '.join(missing)} not installed (`make sysdeps` installs them)"
        )
    if os.geteuid() != 0:
        raise PodmanUnavailable("debootstrap and these podman settings need root (CI runs as root)")
    proc = subprocess.run(
        ["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise PodmanUnavailable(f"`podman info` fails: {proc.stderr.strip()[-500:]}")


def debian_mirror() -> str:
    """The machine's own Debian mirror (its apt sources), else deb.debian.org."""
    for source in sorted(Path("/etc/apt").glob("sources.list*")) + sorted(
        Path("/etc/apt/sources.list.d").glob("*")
    ):
        if not source.is_file():
            continue
        for line in source.read_text().splitlines():
            if line.startswith(("URIs:", "deb ")):
                for word in line.split():
                    if word.startswith("http") and word.rstrip("/").endswith("/debian"):
                        return word
    return "http://deb.debian.org/debian"


def base_image(env: dict[str, str]) -> str:
    """A Debian bookworm image with BASE_PACKAGES, made with debootstrap unless stored already."""
    mirror = debian_mirror()
    key = hashlib.sha256(f"{SUITE} {mirror} {BASE_PACKAGES}".encode()).hexdigest()[:12]
    image = f"localhost/scregnet-base:{SUITE}-{key}"
    if subprocess.run(["podman", "image", "exists", image], env=env, check=False).returncode == 0:
        return image
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _sh(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ]
        )
        for folder in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / folder).glob("*"):
                if path.is_file():
                    path.unlink()
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            _sh(["podman", "import", "-q", "-", image], env=env, stdin=tar.stdout)
        if tar.returncode != 0:
            raise RuntimeError(f"tar of {rootfs} failed")
    return image


def image_requirements() -> list[str]:
    """What the image's pip installs besides the package (the Dockerfile's pinned requirements)
    and what building the package needs (pyproject.toml's build-system requires)."""
    dockerfile = (REPO / "containers" / "Dockerfile.cpu").read_text()
    pins = sorted(set(re.findall(r'"([A-Za-z0-9_.\-]+==[^"]+)"', dockerfile)))
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    return [*pins, *build]


def wheelhouse() -> Path:
    """Wheels of everything the image installs, at constraints.txt's versions, from the host's pip
    (its cache and find-links). Kept per constraints.txt + pyproject.toml + the Dockerfile."""
    key = hashlib.sha256(
        b"".join(
            (REPO / name).read_bytes()
            for name in ("constraints.txt", "pyproject.toml", "containers/Dockerfile.cpu")
        )
    ).hexdigest()[:12]
    wheels = cache_dir() / f"wheels-{key}"
    if (wheels / ".complete").exists():
        return wheels
    for old in cache_dir().glob("wheels-*"):  # this one unfinished, or for other versions
        shutil.rmtree(old)
    _sh(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "-c",
            str(REPO / "constraints.txt"),
            "-w",
            str(wheels),
            *image_requirements(),
            str(REPO),
        ]
    )
    for own in wheels.glob("scregnet-*.whl"):  # the image builds the package from its sources
        own.unlink()
    (wheels / ".complete").touch()
    return wheels


def build_context(dest: Path) -> Path:
    """The files the Dockerfile copies, plus this machine's extra CA certificates as a site's."""
    for name in CONTEXT:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    for cert in sorted(SITE_CERTS.glob("*.crt")):
        shutil.copy2(cert, dest / "containers" / "certs" / cert.name)
    return dest


def build_cpu_image(
    env: dict[str, str], tag: str = "localhost/scregnet-test:cpu"
) -> dict[str, float]:
    """Build containers/Dockerfile.cpu from the local base and wheelhouse; the seconds each of
    the three took (a stored base image and wheelhouse are reused)."""
    seconds = {}
    start = time.monotonic()
    base = base_image(env)
    seconds["base image"] = time.monotonic() - start
    wheels = wheelhouse()
    seconds["wheelhouse"] = time.monotonic() - start - seconds["base image"]
    with tempfile.TemporaryDirectory() as tmp:
        context = build_context(Path(tmp))
        _sh(
            [
                "podman",
                "build",
                "-q",
                "-f",
                str(context / "containers" / "Dockerfile.cpu"),
                "--build-arg",
                f"BASE={base}",
                "--build-arg",
                "WHEELS=/wheels",
                "-v",
                f"{wheels}:/wheels:ro",
                "-t",
                tag,
                str(context),
            ],
            env=env,
        )
    _sh(["podman", "image", "prune", "-f"], env=env)  # earlier builds' images, now untagged
    seconds["podman build"] = time.monotonic() - start - sum(seconds.values())
    return seconds


def run_in_image(
    env: dict[str, str],
    image: str,
    argv: list[str],
    *,
    mounts: dict[Path, str],
    user: str = "1000:1000",
    workdir: str = "/tmp",
) -> subprocess.CompletedProcess[str]:
    """``podman run`` as ``user``, without network, with host folders mounted (``mounts``: host
    path -> container path, suffixed ``:ro`` for read-only)."""
    volumes = [f"-v={host}:{inside}" for host, inside in mounts.items()]
    return subprocess.run(
        [
            "podman",
            "run",
            "--rm",
            "--network=none",
            "-u",
            user,
            *volumes,
            "-w",
            workdir,
            image,
            *argv,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
