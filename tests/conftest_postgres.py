"""A throwaway PostgreSQL server for tests/test_postgres.py (imported by it; not a pytest conftest).

`start_server()` runs `initdb` and `pg_ctl` in a new folder of /tmp, on a free port of 127.0.0.1, then makes the
role and the database with the commands of docs/search.md ("A shared database: PostgreSQL"), as the database
machine's administrator does; `Server.stop()` stops it and removes the folder. Nothing global: no service, no
system cluster, no port 5432. The superuser `postgres` connects over the server's own Unix socket without a
password (Debian's peer authentication, in the recipe); the study's role over TCP with a password, read from a
password file (~/.pgpass in the recipe).

initdb refuses to run as root. As root (CI and the development machines are) the server's programs run as the
`postgres` user that Debian's `postgresql` package creates (`runuser -u postgres`, the recipe's
`sudo -u postgres`). The binaries: `pg_config --bindir`, else /usr/lib/postgresql/<newest>/bin (Debian keeps
initdb and pg_ctl off PATH), else PATH.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REQUIRE = "PETL_REQUIRE_POSTGRES"  # "1": a server that cannot be started fails the tests instead of skipping them
ROLE, DATABASE, PASSWORD = "petl", "petl", "petl-test-password"
TOOLS = ("initdb", "pg_ctl", "createuser", "createdb", "psql")
SERVER_USER = "postgres"  # who runs the server when this process is root


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def find_bindir() -> Path | None:
    """The folder holding initdb, pg_ctl, createuser, createdb and psql, or None."""
    candidates = []
    if shutil.which("pg_config"):
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(done.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).resolve().parent))
    return next((Path(c) for c in candidates if c and all((Path(c) / t).exists() for t in TOOLS)), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    bindir: Path
    folder: Path  # the data folder's parent; also the Unix socket's folder and the log's
    os_user: str | None  # who runs the server's programs; None: this process's user
    port: int = 0

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        """The study's storage URL, without its password (libpq reads it from the password file)."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / tool), *args]
        if self.os_user:
            command = ["runuser", "-u", self.os_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd="/")
        if done.returncode != 0:
            log = self.folder / "log"
            tail = log.read_text()[-1500:] if log.exists() else ""
            raise Unavailable(f"`{' '.join(command)}` exited {done.returncode}: {done.stderr.strip()[-1500:]} {tail}")
        return done

    def admin(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        """The recipe's `sudo -u postgres TOOL ARGS`: the superuser, over the server's own socket."""
        return self.run(tool, "-h", str(self.folder), "-p", str(self.port), "-U", "postgres", *args)

    def write_pgpass(self, path: Path) -> Path:
        """A password file for the study's role (libpq's format, as ~/.pgpass), readable by its owner only."""
        path.write_text(f"127.0.0.1:{self.port}:{DATABASE}:{ROLE}:{PASSWORD}\n")
        path.chmod(0o600)
        return path

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except Unavailable:
                pass  # already stopped; the folder goes anyway
        shutil.rmtree(self.folder, ignore_errors=True)


def start_server() -> Server:
    """Start a server, make the study's role and database (the recipe's commands), and return it."""
    bindir = find_bindir()
    if bindir is None:
        raise Unavailable(f"no PostgreSQL binaries ({', '.join(TOOLS)}) through pg_config, /usr/lib/postgresql/*/bin "
                          f"or PATH: apt-get install postgresql")
    try:
        import psycopg  # noqa: F401  (the driver SQLAlchemy 2.1 reads postgresql:// with)
    except ImportError:
        raise Unavailable('the PostgreSQL driver is not installed: pip install -e ".[postgres]"') from None
    os_user = None
    if os.geteuid() == 0:  # initdb refuses root
        if shutil.which("runuser") is None:
            raise Unavailable("running as root without `runuser` to run the server as another user")
        try:
            account = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise Unavailable(f"running as root, and there is no {SERVER_USER!r} user to run the server as "
                              f"(initdb refuses root; Debian's postgresql package creates it)") from None
        os_user = SERVER_USER
    folder = Path(tempfile.mkdtemp(prefix="petl-pg-", dir="/tmp"))  # /tmp: reachable by the server's user
    if os_user:
        os.chown(folder, account.pw_uid, account.pw_gid)
    server = Server(bindir, folder, os_user)
    try:
        server.run("initdb", "-D", str(server.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                   "--auth-local=trust", "--auth-host=scram-sha-256")
        for attempt in range(3):  # the free port may be taken between free_port() and the start
            server.port = free_port()
            try:
                server.run("pg_ctl", "-D", str(server.data), "-l", str(folder / "log"), "-w", "-t", "60", "-o",
                           f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
                break
            except Unavailable:
                if attempt == 2:
                    raise
        # the recipe's database commands, line for line (docs/search.md), against this server
        server.admin("createuser", ROLE)
        server.admin("psql", "-c", f"ALTER ROLE {ROLE} PASSWORD '{PASSWORD}'")
        server.admin("createdb", "--owner", ROLE, DATABASE)
    except BaseException:
        server.stop()
        raise
    return server
