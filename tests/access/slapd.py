"""A real OpenLDAP server (Debian's `slapd`) on a free loopback port, with its own config in a temp dir.

Nothing of the system's slapd is used or touched (no /etc/ldap/slapd.d, no ldapi socket, no service):
the server reads a generated slapd.conf (schemas core, cosine, inetorgperson, nis from
/etc/ldap/schema; one mdb database) and listens only on ldap://127.0.0.1:<port>/.

    from access.slapd import start_slapd, slapd_binary   # tests/ is on sys.path under pytest
    server = start_slapd(tmp_path)                       # populated with the directory below
    try:
        ...  # server.url, server.base_dn, server.admin_dn, server.admin_password, server.user("zhangwei")
    finally:
        server.stop()

The directory (`populate=True`, the default), base dc=bendi,dc=test:

    cn=admin,dc=bendi,dc=test                   rootdn, password ADMIN_PASSWORD (not an entry)
    ou=services  cn=bendi-service               service account for search-then-bind, SERVICE_PASSWORD
    ou=people    (inetOrgPerson + posixAccount, passwords stored as {SSHA})
      uid=zhangwei  cn 张伟, displayName 张伟, mail zhangwei@bendi.test, password "Zhang-密码-2024"
      uid=lina      cn 李娜, mail lina@bendi.test, password "lina-pass-5678"
      uid=wangfang  cn 王芳, no mail, password "wangfang-pass-9"
      uid=bob       cn Bob Smith, displayName "Bob Smith", password "bob-pass-1234" (in no group)
    ou=groups
      cn=tongfeng      groupOfNames        member zhangwei, wangfang        (map to 通风科)
      cn=jidian        groupOfUniqueNames  uniqueMember lina, wangfang      (map to 机电科)
      cn=bendi-admins  groupOfNames        member zhangwei                  (admin role)
      cn=kb-editors    posixGroup          memberUid lina                   (kb-editor role)

Anonymous clients may only bind; any bound user or the service account may read everything but
passwords. `server.add_user(...)` and `server.add_group(...)` add more entries as the admin.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

BASE_DN = "dc=bendi,dc=test"
ADMIN_PASSWORD = "admin-secret-管理员"
SERVICE_PASSWORD = "service-secret-42"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIRS = (Path("/usr/lib/ldap"), Path("/usr/lib64/openldap"), Path("/usr/lib/openldap"))
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


@dataclass(frozen=True)
class FixtureUser:
    uid: str
    password: str
    cn: str
    display_name: str | None
    mail: str | None
    groups: tuple[str, ...]  # cn of the groups they are in


USERS = (
    FixtureUser(
        "zhangwei", "Zhang-密码-2024", "张伟", "张伟", "zhangwei@bendi.test", ("tongfeng", "bendi-admins")
    ),
    FixtureUser("lina", "lina-pass-5678", "李娜", None, "lina@bendi.test", ("jidian", "kb-editors")),
    FixtureUser("wangfang", "wangfang-pass-9", "王芳", None, None, ("tongfeng", "jidian")),
    FixtureUser("bob", "bob-pass-1234", "Bob Smith", "Bob Smith", None, ()),
)
GroupKind = Literal["groupOfNames", "groupOfUniqueNames", "posixGroup"]
GROUPS: tuple[tuple[str, GroupKind], ...] = (
    ("tongfeng", "groupOfNames"),
    ("jidian", "groupOfUniqueNames"),
    ("bendi-admins", "groupOfNames"),
    ("kb-editors", "posixGroup"),
)


def slapd_binary() -> str | None:
    """Path of slapd, or None when the Debian package `slapd` is not installed (it lives in sbin)."""
    found = shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin:/usr/local/sbin:/sbin")
    return found


def ssha(password: str) -> str:
    """An {SSHA} userPassword value, as slappasswd makes it."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SlapdServer:
    """One running slapd process; stop() ends it (safe to call twice)."""

    def __init__(self, directory: Path, port: int, process: subprocess.Popen[bytes], base_dn: str) -> None:
        self.directory = directory
        self.port = port
        self.url = f"ldap://127.0.0.1:{port}"
        self.base_dn = base_dn
        self.admin_dn = f"cn=admin,{base_dn}"
        self.admin_password = ADMIN_PASSWORD
        self.people_dn = f"ou=people,{base_dn}"
        self.groups_dn = f"ou=groups,{base_dn}"
        self.service_dn = f"cn=bendi-service,ou=services,{base_dn}"
        self.service_password = SERVICE_PASSWORD
        self.process = process
        self.log_path = directory / "slapd.log"

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},{self.people_dn}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},{self.groups_dn}"

    def user(self, uid: str) -> FixtureUser:
        """One of the populated USERS by uid."""
        return next(u for u in USERS if u.uid == uid)

    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def admin_connection(self) -> Any:
        """An ldap3 connection bound as the rootdn (the caller unbinds it)."""
        import ldap3

        server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=5)
        return ldap3.Connection(
            server,
            self.admin_dn,
            self.admin_password,
            auto_bind=True,
            receive_timeout=10,
            raise_exceptions=True,
        )

    def add_entries(self, entries: Sequence[tuple[str, Sequence[str], dict[str, Any]]]) -> None:
        """Add (dn, objectClasses, attributes) entries as the admin, in order."""
        conn = self.admin_connection()
        try:
            for dn, classes, attributes in entries:
                conn.add(dn, list(classes), attributes)
        finally:
            conn.unbind()

    def add_user(
        self,
        uid: str,
        password: str,
        *,
        cn: str,
        display_name: str | None = None,
        mail: str | None = None,
        uid_number: int | None = None,
    ) -> str:
        """An inetOrgPerson + posixAccount under ou=people; returns its DN."""
        dn = self.user_dn(uid)
        number = uid_number if uid_number is not None else 10000 + secrets.randbelow(50000)
        attributes: dict[str, Any] = {
            "uid": uid,
            "cn": cn,
            "sn": cn.split()[-1] if " " in cn else cn[:1],
            "userPassword": ssha(password),
            "uidNumber": number,
            "gidNumber": number,
            "homeDirectory": f"/home/{uid}" if uid.isascii() else f"/home/user{number}",  # IA5String
        }
        if display_name:
            attributes["displayName"] = display_name
        if mail:
            attributes["mail"] = mail
        self.add_entries([(dn, ("inetOrgPerson", "posixAccount"), attributes)])
        return dn

    def add_group(self, cn: str, members: Sequence[str], kind: GroupKind = "groupOfNames") -> str:
        """A group under ou=groups with these members (uids; stored as DNs unless posixGroup); its DN."""
        dn = self.group_dn(cn)
        attributes: dict[str, Any]
        if kind == "posixGroup":
            attributes = {"cn": cn, "gidNumber": 5000 + secrets.randbelow(5000)}
            if members:
                attributes["memberUid"] = list(members)
        else:
            # groupOfNames needs at least one member; an empty group points at the admin, as usual.
            dns = [self.user_dn(uid) for uid in members] or [self.admin_dn]
            attributes = {"cn": cn, "member" if kind == "groupOfNames" else "uniqueMember": dns}
        self.add_entries([(dn, (kind,), attributes)])
        return dn


def _config(directory: Path, base_dn: str, module_dir: Path | None) -> str:
    lines = [f"include {SCHEMA_DIR / name}.schema" for name in SCHEMAS]
    lines += [f"pidfile {directory / 'slapd.pid'}", f"argsfile {directory / 'slapd.args'}"]
    if module_dir is not None:  # Debian builds the backends as modules; other builds link them in
        lines += [f"modulepath {module_dir}", "moduleload back_mdb"]
    lines += [
        "database mdb",
        "maxsize 33554432",
        f'suffix "{base_dn}"',
        f'rootdn "cn=admin,{base_dn}"',
        f"rootpw {ssha(ADMIN_PASSWORD)}",
        f"directory {directory / 'data'}",
        "index objectClass eq",
        "access to attrs=userPassword by self write by anonymous auth by * none",
        "access to * by users read by anonymous auth",
    ]
    return "\n".join(lines) + "\n"


def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_slapd(
    tmp_dir: Path, *, base_dn: str = BASE_DN, populate: bool = True, timeout_s: float = 20.0
) -> SlapdServer:
    """Start slapd under tmp_dir (config, data, log) on a free loopback port, populated unless told not.

    Raises RuntimeError (with slapd's log) when it will not start; callers skip only when
    slapd_binary() is None."""
    binary = slapd_binary()
    if binary is None:
        raise RuntimeError("slapd is not installed (Debian: apt-get install slapd ldap-utils)")
    directory = Path(tmp_dir)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    module_dir = next((d for d in MODULE_DIRS if (d / "back_mdb.so").exists()), None)
    conf = directory / "slapd.conf"
    conf.write_text(_config(directory, base_dn, module_dir))
    log_path = directory / "slapd.log"
    for _attempt in range(5):  # another process may take the free port before slapd binds it
        port = free_port()
        with open(log_path, "ab") as log:
            # -d 0 keeps slapd in the foreground (our child, so stop() can end it) and logs errors only.
            process = subprocess.Popen(
                [binary, "-d", "0", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, LANG="C.UTF-8"),
            )
        if _wait_ready(process, port, timeout_s):
            server = SlapdServer(directory, port, process, base_dn)
            if populate:
                try:
                    _populate(server)
                except Exception:
                    server.stop()
                    raise
            return server
        if process.poll() is None:
            process.kill()
        process.wait()
    raise RuntimeError(f"slapd did not start; its log:\n{log_path.read_text(errors='replace')[-5000:]}")


def _populate(server: SlapdServer) -> None:
    base = server.base_dn
    top = base.split(",")[0].split("=", 1)[1]
    server.add_entries(
        [
            (base, ("dcObject", "organization"), {"dc": top, "o": "bendi test"}),
            (server.people_dn, ("organizationalUnit",), {"ou": "people"}),
            (server.groups_dn, ("organizationalUnit",), {"ou": "groups"}),
            (f"ou=services,{base}", ("organizationalUnit",), {"ou": "services"}),
            (
                server.service_dn,
                ("organizationalRole", "simpleSecurityObject"),
                {"cn": "bendi-service", "userPassword": ssha(SERVICE_PASSWORD)},
            ),
        ]
    )
    for number, user in enumerate(USERS):
        server.add_user(
            user.uid,
            user.password,
            cn=user.cn,
            display_name=user.display_name,
            mail=user.mail,
            uid_number=2000 + number,
        )
    for cn, kind in GROUPS:
        members = [u.uid for u in USERS if cn in u.groups]
        server.add_group(cn, members, kind)
