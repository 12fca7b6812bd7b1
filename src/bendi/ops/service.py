"""The systemd unit that runs `bendi serve` as a hardened system service: its values and its text."""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bendi.core.errors import UserInputError
from bendi.core.paths import safe_component
from bendi.core.settings import DEFAULT_PORT

DEFAULT_SERVICE_NAME = "bendi"
DEFAULT_SERVICE_USER = "bendi"
DEFAULT_SERVICE_HOME = Path("/var/lib/bendi")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
# Secrets (BENDI_API_KEY, LDAP bind password) go here, root-only, never into the world-readable unit.
DEFAULT_ENV_FILE = Path("/etc/bendi/bendi.env")
LIMIT_NOFILE = 65536  # one socket per client plus the databases; the distribution default of 1024 is low
RESTART_DELAY_S = 5
# Where a user's home lies: the service may read there (a venv under /home) but never write.
_HOME_ROOTS = (Path("/home"), Path("/root"), Path("/run/user"))
# Folders that are never a dedicated data directory (ReadWritePaths= would open them all up).
_SYSTEM_DIRS = frozenset(
    Path(p) for p in ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/opt", "/proc", "/root",
                      "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib", "/var/tmp")
)  # fmt: skip
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PLAIN_ARG = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


@dataclass(frozen=True)
class ServiceSpec:
    """Everything the unit says; `exec_start` is the command line, argv style."""

    name: str = DEFAULT_SERVICE_NAME
    user: str = DEFAULT_SERVICE_USER
    home: Path = DEFAULT_SERVICE_HOME
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    model: str | None = None
    env_file: Path = DEFAULT_ENV_FILE
    shutdown_grace_s: float = 10.0
    exec_start: tuple[str, ...] = field(default_factory=lambda: default_exec_start())

    def command(self) -> tuple[str, ...]:
        """The full command line the unit runs."""
        return (*self.exec_start, "serve", *(("--model", self.model) if self.model else ()))

    def environment(self) -> dict[str, str]:
        """The unit's Environment= lines (the settings bendi reads; secrets stay in env_file)."""
        return {
            "BENDI_HOME": str(self.home),
            "BENDI_HOST": self.host,
            "BENDI_PORT": str(self.port),
            # Python's own caches and anything that writes under $HOME land in the writable data directory.
            "HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",  # log lines reach the journal as they are written
        }

    @property
    def unit_file_name(self) -> str:
        return f"{self.name}.service"


def default_exec_start() -> tuple[str, ...]:
    """The `bendi` of this installation (the venv's console script), or this interpreter with -m."""
    script = Path(sys.executable).parent / "bendi"
    if script.is_file():
        return (str(script),)
    return (sys.executable, "-m", "bendi.cli.main")


def validate(spec: ServiceSpec) -> ServiceSpec:
    """Refuse values that would make a broken or dangerous unit, with what to give instead."""
    safe_component(spec.name, what="service name", max_chars=64)
    if not _USER_NAME.match(spec.user):
        raise UserInputError(
            f"The service user {spec.user!r} is not a valid account name: use lower-case letters, digits, "
            "'_' or '-', starting with a letter or '_', at most 32 characters (e.g. bendi)."
        )
    if not 1 <= spec.port <= 65535:
        raise UserInputError(f"The port {spec.port} is out of range; give a port from 1 to 65535.")
    if not re.fullmatch(r"[A-Za-z0-9.:_\-]+", spec.host):
        raise UserInputError(f"The address {spec.host!r} is not a host name or IP address.")
    home = spec.home
    if not home.is_absolute() or any(c.isspace() or not c.isprintable() for c in str(home)):
        raise UserInputError(
            f"The data directory {home} must be an absolute path without spaces or control characters "
            "(e.g. /var/lib/bendi)."
        )
    if home.resolve() in _SYSTEM_DIRS or home in _SYSTEM_DIRS or ".." in home.parts:
        raise UserInputError(
            f"The data directory {home} is a system folder; the service may write only in its own folder, "
            "so give a dedicated one such as /var/lib/bendi."
        )
    for arg in (*spec.command(), str(spec.env_file)):
        if "\n" in arg or "\x00" in arg:
            raise UserInputError(f"The command-line argument {arg!r} contains a line break or NUL byte.")
    return spec


def _quote(arg: str) -> str:
    """One argument as systemd's command-line syntax reads it ($ and % are its expansion characters)."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if _PLAIN_ARG.match(arg):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _under_a_home(path: Path) -> bool:
    return any(root == path or root in path.parents for root in _HOME_ROOTS)


def _is_loopback_or_any(host: str) -> bool:
    if host in ("localhost", "0.0.0.0", "::"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def render_unit(spec: ServiceSpec) -> str:
    """The unit file text. Hardening: its own unprivileged user, a read-only system except the data
    directory, no privilege gain, private /tmp, no capabilities (but the one to bind a port < 1024)."""
    spec = validate(spec)
    reads_from_a_home = any(
        _under_a_home(Path(p)) for p in (spec.exec_start[0], sys.prefix, sys.base_prefix, Path(sys.executable).resolve())
    )  # fmt: skip
    capabilities = "CAP_NET_BIND_SERVICE" if spec.port < 1024 else ""
    # A specific LAN address can be bound only once the network is configured.
    network = (
        "After=network.target"
        if _is_loopback_or_any(spec.host)
        else "Wants=network-online.target\nAfter=network-online.target"
    )
    environment = "\n".join(f"Environment={_quote(f'{k}={v}')}" for k, v in spec.environment().items())
    lines = f"""\
# Written by `bendi service install` (docs/deploy.md); `bendi service uninstall` removes it. Settings that are secrets
# (BENDI_API_KEY, BENDI_LDAP_BIND_PASSWORD, TLS file paths) belong in {spec.env_file} (chmod 600).
[Unit]
Description=bendi: DeepSeek models served on this machine (OpenAI/Ollama APIs, web UI)
{network}
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=simple
User={spec.user}
{environment}
EnvironmentFile=-{_quote(str(spec.env_file))}
ExecStart={" ".join(_quote(a) for a in spec.command())}
WorkingDirectory={_quote(str(spec.home))}
Restart=on-failure
RestartSec={RESTART_DELAY_S}
# bendi drains requests on SIGTERM and stops the engines it started; whatever is left then is killed.
KillMode=mixed
TimeoutStopSec={int(spec.shutdown_grace_s) + 20}
LimitNOFILE={LIMIT_NOFILE}
UMask=0027
SyslogIdentifier={spec.name}
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={_quote(str(spec.home))}
ProtectHome={"read-only" if reads_from_a_home else "yes"}
PrivateTmp=yes
# Devices stay visible: GPUs are device nodes (/dev/nvidia*, /dev/kfd, /dev/dri).
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet={capabilities}
AmbientCapabilities={capabilities}
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service
# A call outside the filter fails with EPERM rather than killing a server that has models loaded.
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""
    return lines


def parse_unit(text: str) -> dict[str, str]:
    """The unit's settings as one flat dict: `User`, `ExecStart`, ... and `Environment.KEY` per variable."""
    import shlex

    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key == "Environment":
            for item in shlex.split(value):
                name, _, env_value = item.partition("=")
                values[f"Environment.{name}"] = env_value.replace("$$", "$").replace("%%", "%")
        else:
            values[key] = value
    return values


def command_line(text: str) -> list[str]:
    """ExecStart of a unit as an argv list (the inverse of the quoting above)."""
    import shlex

    exec_start = parse_unit(text).get("ExecStart", "")
    return [a.replace("$$", "$").replace("%%", "%") for a in shlex.split(exec_start)]
