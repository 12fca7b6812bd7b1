"""`bendi service`: the unit passes systemd's own checks, and the process it describes starts and serves."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bendi.cli.main import main
from bendi.ops.service import command_line, parse_unit
from server_process import free_port

BENDI = str(Path(sys.executable).parent / "bendi")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
# systemd-analyze's own scale: up to 4.9 is "OK", from 5 on "MEDIUM", then "EXPOSED" and "UNSAFE".
MAX_EXPOSURE = 4.9


def _bendi(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BENDI, *args], capture_output=True, text=True, timeout=120, env=env)


def _verify(unit: Path) -> None:
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd; scripts/test installs it)")
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [
        line for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "Special user nobody" not in line  # the refusal test's stand-in account
    ]  # fmt: skip
    assert done.returncode == 0 and not complaints, done.stdout + done.stderr


@pytest.fixture()
def shared_tmp() -> Iterator[Path]:
    """A folder other accounts may enter (pytest's own tmp folders are closed to all but root)."""
    folder = Path(tempfile.mkdtemp(prefix="bendi-service-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_printed_unit_is_hardened_and_passes_systemd_analyze(tmp_path: Path) -> None:
    done = _bendi("service", "install", "--print", "--user", "bendi", "--home", "/var/lib/bendi",
                  "--port", "11500", "--model", "smollm2:135m")  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    values = parse_unit(text)
    assert values["User"] == "bendi"
    assert values["NoNewPrivileges"] == "yes" and values["ProtectSystem"] == "strict"
    assert values["ReadWritePaths"] == "/var/lib/bendi" and values["PrivateTmp"] == "yes"
    assert values["Restart"] == "on-failure" and int(values["LimitNOFILE"]) >= 65536
    assert values["CapabilityBoundingSet"] == ""  # a port above 1024 needs no capability at all
    assert (
        values["Environment.BENDI_HOME"] == "/var/lib/bendi" and values["Environment.BENDI_PORT"] == "11500"
    )
    assert command_line(text) == [BENDI, "serve", "--model", "smollm2:135m"]
    unit = tmp_path / "bendi.service"
    unit.write_text(text)
    _verify(unit)
    # systemd's own rating of the sandbox (offline: no running systemd needed).
    rated = subprocess.run([str(SYSTEMD_ANALYZE), "security", "--offline=true", str(unit)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", rated.stdout + rated.stderr)
    if found is None:
        pytest.skip(f"this systemd-analyze cannot rate a unit offline: {rated.stderr[-300:]}")
    assert float(found.group(1)) <= MAX_EXPOSURE, rated.stdout[-3000:]


def test_low_port_gets_only_the_bind_capability(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["service", "install", "--print", "--port", "443", "--host", "0.0.0.0"]) == 0
    values = parse_unit(capsys.readouterr().out)
    assert values["CapabilityBoundingSet"] == values["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--user", "Root;rm"], "not a valid account name"),
        (["--home", "/"], "system folder"),
        (["--home", "/var/lib/../../etc"], "system folder"),
        (["--home", "relative/dir"], "absolute path"),
        (["--port", "0"], "out of range"),
        (["--name", "../evil"], "service name"),
    ],
)
def test_bad_values_are_refused_with_a_sentence(
    flags: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["service", "install", "--print", *flags]) == 1
    captured = capsys.readouterr()
    assert words in captured.err and captured.out == ""


def _can_run_as(user: str) -> bool:
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return False
    probe = subprocess.run(["runuser", "-u", user, "--", sys.executable, "-c", "import bendi"],
                           capture_output=True, timeout=60)  # fmt: skip
    return probe.returncode == 0


def _unit_user() -> str:
    """nobody where that account can run this installation; else the account running the tests."""
    return "nobody" if _can_run_as("nobody") else pwd.getpwuid(os.geteuid()).pw_name


def test_install_writes_a_unit_whose_command_serves(shared_tmp: Path) -> None:
    user = _unit_user()
    home, unit_dir, port = shared_tmp / "data", shared_tmp / "units", free_port()
    done = _bendi("service", "install", "--user", user, "--home", str(home), "--port", str(port),
                  "--unit-dir", str(unit_dir), "--no-start")  # fmt: skip
    assert done.returncode == 0, done.stderr
    unit = unit_dir / "bendi.service"
    assert f"Wrote {unit}" in done.stdout and home.is_dir()
    assert home.stat().st_uid == pwd.getpwnam(user).pw_uid and home.stat().st_mode & 0o007 == 0
    _verify(unit)
    # Run exactly what the unit runs, with only the unit's environment, as the unit's user.
    values = parse_unit(unit.read_text())
    env = {k.removeprefix("Environment."): v for k, v in values.items() if k.startswith("Environment.")}
    env.update(PATH="/usr/bin:/bin", BENDI_THREADS="2")  # PATH as systemd sets it; 2 threads on a busy CI
    argv = command_line(unit.read_text())
    if values["User"] != pwd.getpwuid(os.geteuid()).pw_name:
        argv = ["runuser", "-u", values["User"], "--", *argv]
    log = open(shared_tmp / "service.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen(
        argv, env=env, cwd=values["WorkingDirectory"], stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (shared_tmp / "service.log").read_text()
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (shared_tmp / "service.log").read_text()
            time.sleep(0.2)
        answer = httpx.post(base + "/v1/chat/completions", timeout=120, json={
            "model": "smollm2:135m", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
        assert (home / "models").is_dir()  # state went to the unit's data directory
        status = _bendi("service", "status", "--unit-dir", str(unit_dir))
        assert status.returncode == 0 and "health:   OK" in status.stdout, status.stdout + status.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == 0, (shared_tmp / "service.log").read_text()  # SIGTERM is a clean stop
    status = _bendi("service", "status", "--unit-dir", str(unit_dir))
    assert status.returncode == 3 and "health:   DOWN" in status.stdout
    if not Path("/run/systemd/system").is_dir():  # no journal without systemd: said, not a traceback
        logs = _bendi("service", "logs", "--unit-dir", str(unit_dir))
        assert logs.returncode == 1 and "systemd is not running" in logs.stderr
    removed = _bendi("service", "uninstall", "--unit-dir", str(unit_dir))
    assert removed.returncode == 0 and not unit.exists() and home.is_dir()  # data kept
    again = _bendi("service", "uninstall", "--unit-dir", str(unit_dir))
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_account_that_cannot_run_bendi_is_refused_before_anything_is_written(shared_tmp: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can switch accounts")
    if _can_run_as("nobody"):
        pytest.skip("here nobody can run this installation (the serving test runs as nobody instead)")
    unit_dir = shared_tmp / "units"
    done = _bendi("service", "install", "--user", "nobody", "--home", str(shared_tmp / "data"),
                  "--unit-dir", str(unit_dir), "--no-start")  # fmt: skip
    assert done.returncode == 1 and "nobody cannot run" in done.stderr, done.stderr
    assert not (unit_dir / "bendi.service").exists()


def test_existing_data_directory_of_another_owner_is_refused(shared_tmp: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to own a folder as another account")
    home = shared_tmp / "data"
    home.mkdir()
    os.chown(home, pwd.getpwnam("nobody").pw_uid, -1)
    done = _bendi("service", "install", "--user", "root", "--home", str(home),
                  "--unit-dir", str(shared_tmp / "units"), "--no-start")  # fmt: skip
    assert done.returncode == 1 and "belongs to nobody" in done.stderr and "--chown-data" in done.stderr
    assert not (shared_tmp / "units" / "bendi.service").exists()
    # An installer that imported models as root first hands the folder over explicitly.
    (home / "models").mkdir()
    outside = shared_tmp / "not-the-services.txt"
    outside.write_text("someone else's file")
    os.chown(outside, pwd.getpwnam("nobody").pw_uid, -1)
    (home / "models" / "link").symlink_to(outside)
    done = _bendi("service", "install", "--user", "root", "--home", str(home), "--chown-data",
                  "--unit-dir", str(shared_tmp / "units"), "--no-start")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert home.stat().st_uid == 0 and (home / "models").stat().st_uid == 0
    assert outside.stat().st_uid == pwd.getpwnam("nobody").pw_uid  # the link was changed, not its target
