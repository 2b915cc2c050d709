"""The CPU image, built with podman here (tests/podman_image.py: a Debian base made with debootstrap,
the host's wheels, the machine's extra CA certificates as a site's), runs the tiny world's pipeline
as a non-root user with the output folder mounted, and its results equal the host run's golden
summary within its regression tolerances.

Skipped, with the reason, only when podman cannot run on the machine: podman, runc or debootstrap
not installed (`make sysdeps` installs them) or `podman info` failing. In CI as root on Linux
(tests/podman_image.py `podman_required`), where `make sysdeps` has installed them, the same
reasons fail the test instead.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import scregnet
from golden_summary import compare_summaries, summarize
from golden_tolerance import golden_tolerance
from podman_image import (
    SITE_CERTS,
    PodmanUnavailable,
    build_cpu_image,
    check_podman,
    podman_env,
    podman_required,
    run_in_image,
)
from tiny_run import run, tiny_params

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "tiny_summary.json"
IMAGE = "localhost/scregnet-test:cpu"
USER = (1000, 1000)


@pytest.fixture(scope="module")
def podman() -> dict[str, str]:
    try:
        env = podman_env()
        check_podman(env)
    except PodmanUnavailable as exc:
        if podman_required():
            pytest.fail(f"podman cannot run in CI as root on Linux (`make sysdeps`): {exc}")
        pytest.skip(f"podman cannot run here: {exc}")
    return env


@pytest.fixture(scope="module")
def cpu_image(podman: dict[str, str]) -> str:
    seconds = build_cpu_image(podman, IMAGE)
    print("CPU image:", ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return IMAGE


@pytest.fixture(scope="module")
def container_run(
    podman: dict[str, str],
    cpu_image: str,
    tiny_world: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The tiny run inside the image: the host run's params, the world mounted read-only at its
    own path, the output folder mounted read-write, as uid:gid 1000:1000."""
    base = tmp_path_factory.mktemp("container")
    os.chown(base, *USER)
    params = tiny_params(tiny_world, base / "params.yaml")
    start = time.monotonic()
    proc = run_in_image(
        podman,
        cpu_image,
        [
            "scregnet",
            "run",
            "--params",
            "/out/params.yaml",
            "--outdir",
            "/out/results",
            "--jobs",
            "2",
        ],
        mounts={tiny_world: f"{tiny_world}:ro", base: "/out"},
        user=":".join(map(str, USER)),
        workdir="/out",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"tiny run in the image: {time.monotonic() - start:.0f} s")
    assert "report: /out/results/report/report.html" in proc.stdout
    assert params.is_file()
    return base / "results"


def test_the_image_runs_as_the_given_user_and_trusts_the_site_certificates(
    podman: dict[str, str], cpu_image: str
) -> None:
    proc = run_in_image(
        podman,
        cpu_image,
        ["sh", "-c", "id -u; id -g; scregnet --version; cat /etc/ssl/certs/ca-certificates.crt"],
        mounts={},
    )
    assert proc.returncode == 0, proc.stderr
    uid, gid, version, *bundle = proc.stdout.splitlines()
    assert (int(uid), int(gid)) == USER
    assert version == f"scregnet {scregnet.__version__}"
    certs = sorted(SITE_CERTS.glob("*.crt"))
    for cert in certs:  # each site certificate's PEM body is in the image's trust bundle
        body = [x for x in cert.read_text().splitlines() if x and not x.startswith("-----")]
        assert body and all(line in bundle for line in body), cert


def test_container_run_writes_as_the_user_into_the_mounted_folder(container_run: Path) -> None:
    written = [p for p in container_run.rglob("*") if p.is_file()]
    assert len(written) > 20
    assert {(p.stat().st_uid, p.stat().st_gid) for p in written} == {USER}
    assert (container_run / "grn" / "grn_edges.tsv").is_file()


def test_container_run_equals_the_host_run(container_run: Path) -> None:
    """Same numbers as the golden file of the host's tiny run (test_end_to_end.py holds the host
    run to it) within the regression tolerances (tests/golden_tolerance.py): integers exactly,
    floats within the measured CPU-kernel spread."""
    summary = summarize(container_run)
    golden = json.loads(GOLDEN.read_text())
    assert compare_summaries(summary, golden, tolerance=golden_tolerance()) == []


@pytest.mark.skipif(
    not os.environ.get("SCREGNET_CONTAINER_PROFILE_TEST"),
    reason="opt-in (~17 min on 2 busy cores): `scregnet run --profile test` in the image and on the "
    "host; set SCREGNET_CONTAINER_PROFILE_TEST=1",
)
def test_profile_test_in_the_image_equals_the_host_run(
    podman: dict[str, str], cpu_image: str, tmp_path: Path
) -> None:
    """`scregnet run --profile test` (the small world, conf/test.config's settings) in the image
    and on the host: the same results within the regression tolerances."""
    argv = ["run", "--profile", "test", "--jobs", "2", "--outdir"]
    inside = tmp_path / "container"
    inside.mkdir()
    os.chown(inside, *USER)
    proc = run_in_image(
        podman,
        cpu_image,
        ["scregnet", *argv, "/out/results"],
        mounts={inside: "/out"},
        user=":".join(map(str, USER)),
        workdir="/out",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    host = run([*argv, str(tmp_path / "host")])
    assert host.returncode == 0, host.stderr[-3000:]
    summary = summarize(inside / "results")
    assert (
        compare_summaries(summary, summarize(tmp_path / "host"), tolerance=golden_tolerance()) == []
    )
