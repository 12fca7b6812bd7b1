"""Install, inspect and remove the bendi system service: the account, the data directory, systemctl."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from bendi.core.errors import NotFoundError, UserInputError
from bendi.ops.service import ServiceSpec, command_line, parse_unit, render_unit

NOLOGIN_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
HEALTH_TIMEOUT_S = 3.0


def systemd_running() -> bool:
    """True when this machine was booted with systemd (sd_booted's test); containers often are not."""
    return Path("/run/systemd/system").is_dir()


@dataclass(frozen=True)
class InstallReport:
    unit_path: Path
    created_user: bool
    created_home: bool
    started: bool  # enabled and started through systemctl
    instructions: str  # what to do next, in words and commands


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as exc:
        raise UserInputError(f"Cannot {what}: the command {argv[0]} is not installed.") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-500:]
        raise UserInputError(f"Cannot {what}: `{' '.join(argv)}` failed ({detail or done.returncode}).")
    return done


def _is_root() -> bool:
    return os.geteuid() == 0


def ensure_user(user: str, home: Path) -> bool:
    """The service's own system account (no login shell, no password); True when it was created."""
    try:
        pwd.getpwnam(user)
        return False
    except KeyError:
        pass
    if not _is_root():
        raise UserInputError(
            f"The account {user} does not exist and only root can create it. Run `sudo bendi service "
            f"install`, or create it yourself (useradd --system --user-group {user})."
        )
    shell = next((s for s in NOLOGIN_SHELLS if Path(s).exists()), "/bin/false")
    _run(["useradd", "--system", "--user-group", "--home-dir", str(home), "--no-create-home",
          "--shell", shell, "--comment", "bendi service", user], f"create the account {user}")  # fmt: skip
    return True


def ensure_home(user: str, home: Path, *, adopt: bool = False) -> bool:
    """The data directory, owned by the service user and closed to others; True when it was created.
    `adopt`: an existing one (models imported as root before the service existed) is given to the user."""
    account = pwd.getpwnam(user)
    if home.exists():
        owner = home.stat().st_uid
        if owner != account.pw_uid and adopt:
            _chown_tree(home, account.pw_uid, account.pw_gid)
        elif owner != account.pw_uid:
            owner_name = _user_name(owner)
            raise UserInputError(
                f"The data directory {home} belongs to {owner_name}, but the service runs as {user}, which "
                f"could not write there. Give it to the service (rerun with --chown-data, or chown -R {user}: "
                f"{home}) or choose another folder with --home."
            )
        return False
    home.mkdir(parents=True, mode=0o750)
    os.chown(home, account.pw_uid, account.pw_gid)
    return True


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """chown -R without following links (a link inside must not hand a file elsewhere to the service)."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def check_user_can_run(spec: ServiceSpec) -> None:
    """Run `bendi --version` as the service user: a venv under a private home (/root is 0700) would
    make every start fail, which is better said now than found in the journal."""
    if pwd.getpwnam(spec.user).pw_uid == os.geteuid():
        return
    if not _is_root() or shutil.which("runuser") is None:
        return  # only root can switch users; systemd itself will tell at start
    argv = ["runuser", "-u", spec.user, "--", *spec.exec_start, "--version"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise UserInputError(
            f"The account {spec.user} cannot run {spec.exec_start[0]} ({detail[-1] if detail else 'no output'}). "
            "Install bendi where every account may read it (e.g. the bundle's install.sh puts it in "
            "/opt/bendi), or give --user an account that can."
        )


def install(
    spec: ServiceSpec, unit_dir: Path, *, start: bool = True, adopt_home: bool = False
) -> InstallReport:
    """Account, data directory, unit file; then enable and start it where systemd runs."""
    text = render_unit(spec)  # validates before anything changes
    unit_path = unit_dir / spec.unit_file_name
    existing = next(p for p in (unit_dir, *unit_dir.parents) if p.exists())
    if not os.access(existing, os.W_OK):
        raise UserInputError(
            f"Cannot write the unit to {unit_dir}: installing a system service needs root. Run "
            "`sudo bendi service install ...` (or see the unit first with --print)."
        )
    created_user = ensure_user(spec.user, spec.home)
    check_user_can_run(spec)  # before the data directory exists: a refusal leaves nothing behind
    created_home = ensure_home(spec.user, spec.home, adopt=adopt_home)
    unit_dir.mkdir(parents=True, exist_ok=True)
    temporary = unit_path.with_name(unit_path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(0o644)
    temporary.replace(unit_path)  # a half-written unit is never seen by systemd
    url = f"http://{'127.0.0.1' if spec.host in ('0.0.0.0', '::') else spec.host}:{spec.port}"
    started = False
    if systemd_running() and start:
        _run(["systemctl", "daemon-reload"], "reload systemd")
        _run(["systemctl", "enable", "--now", spec.unit_file_name], f"enable and start {spec.unit_file_name}")
        started = True
        instructions = (
            f"bendi runs as the service {spec.name} (user {spec.user}, data in {spec.home}) at {url}, and "
            f"starts at boot.\n  bendi service status | bendi service logs -f | sudo systemctl restart {spec.name}"
        )
    elif systemd_running():
        instructions = (
            f"Start it with: sudo systemctl daemon-reload && sudo systemctl enable --now {spec.name}"
        )
    else:
        environment = " ".join(f"{k}={v}" for k, v in spec.environment().items())
        instructions = (
            f"systemd is not running on this machine (a container?), so the service was not started. The unit "
            f"is in place for a machine that boots with systemd: there run `systemctl daemon-reload && "
            f"systemctl enable --now {spec.name}`. To run bendi here, start it under a supervisor of your "
            f"choice as {spec.user}:\n  {environment} {' '.join(spec.command())}"
        )
    return InstallReport(unit_path, created_user, created_home, started, instructions)


def read_unit(name: str, unit_dir: Path) -> tuple[Path, str]:
    path = unit_dir / f"{name}.service"
    try:
        return path, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(
            f"No bendi service is installed ({path} does not exist). Install it with `sudo bendi service install`."
        ) from None


@dataclass(frozen=True)
class ServiceState:
    unit_path: Path
    user: str
    home: str
    url: str
    command: list[str]
    healthy: bool
    health_detail: str  # the version that answered, or why nothing did
    systemctl_status: str | None  # `systemctl status` text where systemd runs


def probe_health(url: str) -> tuple[bool, str]:
    """GET /health on the service's address (plain HTTP first, then HTTPS with bendi's own certificate)."""
    last = "no answer"
    # Unverified HTTPS is enough here: the probe sends nothing secret and only reads the status code.
    for scheme_url in (url, url.replace("http://", "https://", 1)):
        try:
            response = httpx.get(scheme_url + "/health", timeout=HEALTH_TIMEOUT_S, verify=False)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code == 200:
            return True, f"answers at {scheme_url}"
        last = f"{scheme_url}/health answered HTTP {response.status_code}"
    return False, last


def service_state(name: str, unit_dir: Path) -> ServiceState:
    path, text = read_unit(name, unit_dir)
    values = parse_unit(text)
    host = values.get("Environment.BENDI_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{f'[{host}]' if ':' in host else host}:{values.get('Environment.BENDI_PORT', '11435')}"
    healthy, detail = probe_health(url)
    status = None
    if systemd_running() and shutil.which("systemctl"):
        done = subprocess.run(["systemctl", "status", "--no-pager", f"{name}.service"],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        status = (done.stdout or done.stderr).strip()
    return ServiceState(path, values.get("User", "?"), values.get("Environment.BENDI_HOME", "?"), url,
                        command_line(text), healthy, detail, status)  # fmt: skip


def journal_command(name: str, lines: int, follow: bool) -> list[str]:
    """The journalctl call that shows the service's log."""
    if not systemd_running() or shutil.which("journalctl") is None:
        raise UserInputError(
            "systemd is not running on this machine, so the service has no journal here. Without systemd, "
            "bendi logs JSON lines to the standard error of whatever started it."
        )
    return [
        "journalctl",
        "--no-pager",
        "-u",
        f"{name}.service",
        "-n",
        str(lines),
        *(["-f"] if follow else []),
    ]


def uninstall(name: str, unit_dir: Path) -> Path | None:
    """Stop, disable and remove the unit; the data directory and the account stay. None: none installed."""
    path = unit_dir / f"{name}.service"
    if not path.exists():
        return None
    if not os.access(unit_dir, os.W_OK):
        raise UserInputError(f"Cannot remove {path}: that needs root. Run `sudo bendi service uninstall`.")
    if systemd_running():
        _run(["systemctl", "disable", "--now", path.name], f"stop and disable {path.name}")
    path.unlink()
    if systemd_running():
        _run(["systemctl", "daemon-reload"], "reload systemd")
    return path
