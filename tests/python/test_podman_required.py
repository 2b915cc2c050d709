"""The container test (test_container_run.py) skips where podman cannot run, except in CI as root
on Linux, where `make sysdeps` installs podman, runc and debootstrap: there it fails."""

from __future__ import annotations

import pytest

from podman_image import podman_required


@pytest.mark.parametrize(
    ("environ", "euid", "platform", "required"),
    [
        ({"CI": "true"}, 0, "linux", True),
        ({"CI": "TRUE"}, 0, "linux", True),
        ({"CI": "true"}, 1000, "linux", False),  # a CI job as a user: no debootstrap
        ({"CI": "true"}, 0, "darwin", False),
        ({}, 0, "linux", False),  # a developer's machine
        ({"CI": "false"}, 0, "linux", False),
        ({"CI": ""}, 0, "linux", False),
    ],
)
def test_podman_required_only_in_ci_as_root_on_linux(
    environ: dict[str, str], euid: int, platform: str, required: bool
) -> None:
    assert podman_required(environ, euid=euid, platform=platform) is required


def test_podman_required_reads_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setattr("sys.platform", "linux")
    assert podman_required() is True
    monkeypatch.delenv("CI")
    assert podman_required() is False
