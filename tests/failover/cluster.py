"""A PostgreSQL primary and a synchronous hot standby of their own, for the
failover tests: started from this machine's PostgreSQL binaries in a
temporary folder, on free loopback ports, and removed afterwards.

As a module (the drill, drill.py):

    with Pair.start(workdir) as pair:
        url = pair.url("ingest_drill")   # postgres://...:P1,...:P2/postgres?target_session_attrs=read-write&schema=...
        pair.fail_over()                 # SIGKILL the primary, promote the standby
        pair.rejoin()                    # the old primary back as the new standby

As a command, for tests in other languages (core/tests/integration/failover.rs),
each printing one line of JSON:

    python3 tests/failover/cluster.py start DIR     {"url": ..., "ports": [P1, P2], "primary": P1}
    python3 tests/failover/cluster.py fail-over DIR {"primary": P2, ...}
    python3 tests/failover/cluster.py rejoin DIR    {"standby": P1, "how": "pg_rewind", ...}
    python3 tests/failover/cluster.py stop DIR      (kills both servers, removes DIR)

Only the standard library: the Rust tests run it with the system's python3.

Where the binaries come from: $PG_BINDIR, else the newest
/usr/lib/postgresql/*/bin. When they are missing and this runs as root
with apt-get, Debian's `postgresql` package is installed. Otherwise the
pair cannot start: `Missing` is raised (exit code 3 from the command), a
failure under CI=true and a skip, said aloud, elsewhere.

PostgreSQL refuses to run as root: as root, every server command runs as
the `postgres` user (runuser), and the folder is handed to it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

# How long a server has to start, stop or be promoted; generous, as the
# machines that run the tests may be busy with builds.
SERVER_SECONDS = 120
# How long a standby has to catch up and become synchronous.
SYNC_SECONDS = 60

# Settings of both servers (each node's port and socket folder are given on
# its command line instead, as pg_rewind and pg_basebackup copy the config
# files from one node to the other).
CONF = """
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
# pg_rewind needs hint bits in the WAL to find what the old primary wrote
# after the standby took over.
wal_log_hints = on
# Enough WAL kept for the old primary to rejoin after a few minutes of load.
wal_keep_size = '512MB'
# A commit is acknowledged only once the standby has flushed it too: an
# event acknowledged at durability full survives the loss of the primary.
synchronous_standby_names = '*'
max_connections = 200
shared_buffers = '64MB'
# Segments for parallel queries as files in the node's folder, removed
# with it even after a SIGKILL (POSIX ones would stay in /dev/shm).
dynamic_shared_memory_type = mmap
"""


class Missing(Exception):
    """PostgreSQL's server binaries are not here and cannot be installed."""


def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _newest_bindir() -> Path | None:
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    return Path(found[-1]) if found else None


NEEDED = ("initdb", "pg_ctl", "pg_basebackup", "pg_rewind", "postgres", "psql")


def bindir() -> Path:
    """The folder of initdb, pg_ctl, pg_basebackup and pg_rewind,
    installing Debian's package when they are missing and we can."""

    def complete(d: Path | None) -> bool:
        return d is not None and all((d / b).exists() for b in NEEDED)

    d = _newest_bindir()
    if complete(d):
        assert d is not None
        return d
    if apt_install("postgresql", "PostgreSQL's server binaries are missing"):
        d = _newest_bindir()
        if complete(d):
            assert d is not None
            return d
    raise Missing(
        "the failover tests need PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup, "
        "pg_rewind) under /usr/lib/postgresql/*/bin or $PG_BINDIR; as root: "
        "apt-get install -y postgresql"
    )


def apt_install(package: str, why: str) -> bool:
    """Install Debian's `package` when we can (root, with apt-get), saying
    `why` first; whether it was tried. Whether it worked is for the caller
    to find: its failure is the same as the package missing."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    print(f"{why}: installing Debian's {package}", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", package],
        env=env,
        check=False,
    )
    return True


def _as_server_user() -> list[str]:
    # initdb and postgres refuse root; the files must be the server user's.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Node:
    name: str
    port: int
    datadir: str
    role: str  # "primary", "standby" or "down"


@dataclass
class Pair:
    """Two nodes; `nodes[0]` is the first primary."""

    workdir: str
    bindir: str
    nodes: list[Node]
    failovers: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    # --- life cycle ---------------------------------------------------------

    @classmethod
    def start(cls, workdir: str | os.PathLike[str]) -> Pair:
        """initdb a primary, pg_basebackup a standby from it, start both and
        wait until the standby is synchronous."""
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2)
        pair = cls(
            str(work.resolve()),
            str(bindir()),
            [
                Node("node1", ports[0], str(work.resolve() / "node1"), "down"),
                Node("node2", ports[1], str(work.resolve() / "node2"), "down"),
            ],
        )
        if os.geteuid() == 0:
            shutil.chown(work, "postgres", "postgres")
            # The server user must reach the folder through its parents.
            for parent in work.resolve().parents:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)
        try:
            first, second = pair.nodes
            pair._run(
                "initdb",
                "-D",
                first.datadir,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            )
            with open(Path(first.datadir) / "postgresql.conf", "a") as f:
                f.write(CONF)
            pair._start(first)
            first.role = "primary"
            pair._base_backup(second, first)
            pair._start(second)
            second.role = "standby"
            pair._async_once_promoted(second)
            pair.wait_synchronous()
            pair._save()
        except BaseException:
            pair.stop()
            raise
        return pair

    @classmethod
    def load(cls, workdir: str | os.PathLike[str]) -> Pair:
        data = json.loads((Path(workdir) / "pair.json").read_text())
        nodes = [Node(**n) for n in data.pop("nodes")]
        return cls(nodes=nodes, **data)

    def _save(self) -> None:
        (Path(self.workdir) / "pair.json").write_text(json.dumps(asdict(self)))

    def stop(self) -> None:
        """Stop both servers at once (nothing of them is kept) and remove the folder."""
        for node in self.nodes:
            if (Path(node.datadir) / "postmaster.pid").exists():
                try:
                    self._run(
                        "pg_ctl",
                        "-D",
                        node.datadir,
                        "stop",
                        "-m",
                        "immediate",
                        "-w",
                        "-t",
                        "30",
                    )
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                    pass
            self._kill(node)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the tests read ------------------------------------------------

    @property
    def primary(self) -> Node:
        return next(n for n in self.nodes if n.role == "primary")

    @property
    def standby(self) -> Node | None:
        return next((n for n in self.nodes if n.role == "standby"), None)

    def url(self, schema: str | None = None) -> str:
        """The libpq multi-host URL an application is given: both nodes,
        and only a read-write session will do."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        url = f"postgres://postgres@{hosts}/postgres?target_session_attrs=read-write"
        return f"{url}&schema={schema}" if schema else url

    def node_url(self, node: Node) -> str:
        return f"postgres://postgres@127.0.0.1:{node.port}/postgres"

    def sql(self, node: Node, query: str) -> str:
        out = self._run(
            "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
            "-h", "127.0.0.1", "-p", str(node.port), "-U", "postgres", "-d", "postgres",
            "-c", query,
            capture=True,
        )  # fmt: skip
        return out.strip()

    def describe(self) -> dict[str, Any]:
        standby = self.standby
        primary = next((n for n in self.nodes if n.role == "primary"), None)
        return {
            "url": self.url(),
            "ports": [n.port for n in self.nodes],
            "primary": primary.port if primary else None,
            "standby": standby.port if standby else None,
            "failovers": self.failovers,
            "workdir": self.workdir,
        }

    # --- the failover -------------------------------------------------------

    def kill_primary(self) -> Node:
        """SIGKILL the primary and every process of it at one instant, as a
        crash of its machine would stop them."""
        old = self.primary
        self._kill(old)
        old.role = "down"
        self._save()
        return old

    def promote(self) -> Node:
        """Promote the standby. Alone, it cannot wait for a synchronous
        standby, or every commit would wait until one came back: it runs
        asynchronous until `rejoin` gives it one (what an operator, or a
        failover manager in its non-strict synchronous mode, does)."""
        new = self.standby
        if new is None:
            raise RuntimeError("no standby to promote")
        # Its own synchronous_standby_names is already empty
        # (_async_once_promoted): its first commit waits for no one.
        self._run(
            "pg_ctl", "-D", new.datadir, "promote", "-w", "-t", str(SERVER_SECONDS)
        )
        new.role = "primary"
        self.failovers += 1
        self._save()
        return new

    def fail_over(self) -> tuple[float, float]:
        """Kill the primary and promote the standby: (seconds the kill took,
        seconds the promote took)."""
        t0 = time.monotonic()
        self.kill_primary()
        t1 = time.monotonic()
        self.promote()
        return t1 - t0, time.monotonic() - t1

    def rejoin(self) -> str:
        """The node that is down comes back as the standby of the new
        primary: by pg_rewind (which replays the old primary's crash first),
        else by a fresh base backup. Then the primary is synchronous again.
        Returns how."""
        old = next(n for n in self.nodes if n.role == "down")
        primary = self.primary
        # A promoted server writes its new timeline into its control file at
        # its first checkpoint, which promotion does not wait for; pg_rewind
        # reads the timeline there, and before that checkpoint it finds both
        # nodes on the same one and rewinds nothing.
        self.sql(primary, "CHECKPOINT")
        for how in ("pg_rewind", "pg_basebackup"):
            try:
                if how == "pg_rewind":
                    self._run(
                        "pg_rewind", "-D", old.datadir,
                        f"--source-server=host=127.0.0.1 port={primary.port} user=postgres dbname=postgres",
                        "--write-recovery-conf",
                        capture=True,
                    )  # fmt: skip
                    self._set_application_name(old)
                else:
                    self._kill(old)
                    self._base_backup(old, primary)
                self._start(old)
                old.role = "standby"
                self._async_once_promoted(old)
                self._save()
                self.sql(primary, "ALTER SYSTEM SET synchronous_standby_names = '*'")
                self.sql(primary, "SELECT pg_reload_conf()")
                self.wait_synchronous()
                break
            except (subprocess.CalledProcessError, RuntimeError) as e:
                if how == "pg_basebackup":
                    raise
                why = (
                    e.stderr if isinstance(e, subprocess.CalledProcessError) else str(e)
                )
                print(f"{old.name}: pg_rewind did not bring it back ({(why or '').strip()[-400:]}); "
                      "taking a fresh base backup", file=sys.stderr)  # fmt: skip
                old.role = "down"
                self.sql(primary, "ALTER SYSTEM SET synchronous_standby_names = ''")
                self.sql(primary, "SELECT pg_reload_conf()")
        self.history.append({"rejoined": old.name, "how": how})
        self._save()
        return how

    def _async_once_promoted(self, standby: Node) -> None:
        """Empty the standby's own synchronous_standby_names (a standby
        ignores it; the base backup or rewind copied the primary's). Set
        after promotion instead, the new primary's first commits would wait
        for a synchronous standby that is gone until the reload, seconds of
        downtime that are the drill's, not the library's."""
        self.sql(standby, "ALTER SYSTEM SET synchronous_standby_names = ''")
        self.sql(standby, "SELECT pg_reload_conf()")

    def wait_synchronous(self) -> None:
        deadline = time.monotonic() + SYNC_SECONDS
        while True:
            state = self.sql(
                self.primary,
                "SELECT string_agg(sync_state, ',') FROM pg_stat_replication",
            )
            if "sync" in state.split(","):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the standby did not become synchronous in {SYNC_SECONDS} s ({state!r})"
                )
            time.sleep(0.1)

    # --- the servers --------------------------------------------------------

    def _run(self, tool: str, *args: str, capture: bool = False) -> str:
        command = [*_as_server_user(), str(Path(self.bindir) / tool), *args]
        out = subprocess.run(
            command,
            check=True,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=capture,
            stdout=None if capture else subprocess.DEVNULL,
            text=True,
            timeout=SERVER_SECONDS * 2,
        )
        return out.stdout or ""

    def _start(self, node: Node) -> None:
        options = f"-p {node.port} -c unix_socket_directories='{self.workdir}' -c cluster_name={node.name}"
        log = str(Path(self.workdir) / f"{node.name}.log")
        try:
            self._run(
                "pg_ctl",
                "-D",
                node.datadir,
                "-l",
                log,
                "-o",
                options,
                "-w",
                "-t",
                str(SERVER_SECONDS),
                "start",
            )
        except subprocess.CalledProcessError:
            tail = (
                Path(log).read_text(errors="replace")[-2000:]
                if Path(log).exists()
                else ""
            )
            raise RuntimeError(f"{node.name} did not start:\n{tail}") from None

    def _set_application_name(self, node: Node) -> None:
        # The standby's name as the primary lists it; '*' accepts any, but
        # the name says which node it is in pg_stat_replication.
        with open(Path(node.datadir) / "postgresql.auto.conf", "a") as f:
            primary = self.primary
            f.write(
                f"primary_conninfo = 'host=127.0.0.1 port={primary.port} user=postgres "
                f"application_name={node.name}'\n"
            )

    def _base_backup(self, node: Node, source: Node) -> None:
        shutil.rmtree(node.datadir, ignore_errors=True)
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(source.port), "-U", "postgres",
            "-D", node.datadir, "-X", "stream", "-c", "fast", "-R",
        )  # fmt: skip
        self._set_application_name(node)

    def _kill(self, node: Node) -> None:
        pid_file = Path(node.datadir) / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return
        if not _alive(pid):
            return
        pids = [pid, *_children(pid)]
        # Frozen first, then killed: no backend commits after its postmaster died.
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for p in pids:
                try:
                    os.kill(p, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        # What the postmaster removes when it stops, not when it is killed:
        # its System V segment (line 7 of its pid file names it), and its
        # lock files. A killed postmaster may linger as a zombie until its
        # adoptive parent reaps it, and PostgreSQL takes a zombie's pid in a
        # lock file for a live server, refusing to start (or pg_rewind) there.
        try:
            shmid = lines[6].split()[1]
            subprocess.run(["ipcrm", "-m", shmid], capture_output=True, check=False)
        except IndexError:
            pass
        pid_file.unlink(missing_ok=True)
        (Path(self.workdir) / f".s.PGSQL.{node.port}.lock").unlink(missing_ok=True)
        (Path(self.workdir) / f".s.PGSQL.{node.port}").unlink(missing_ok=True)


def _children(pid: int) -> list[int]:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(Path(stat).parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in (
        "start",
        "fail-over",
        "kill-primary",
        "promote",
        "rejoin",
        "stop",
    ):
        print(__doc__, file=sys.stderr)
        return 2
    command, workdir = argv[1], argv[2]
    try:
        if command == "start":
            pair = Pair.start(workdir)
            print(json.dumps(pair.describe()))
            return 0
        pair = Pair.load(workdir)
        if command == "stop":
            pair.stop()
            print(json.dumps({"stopped": workdir}))
            return 0
        if command == "kill-primary":
            pair.kill_primary()
        elif command == "promote":
            pair.promote()
        elif command == "fail-over":
            pair.fail_over()
        else:
            pair.rejoin()
        print(json.dumps(pair.describe()))
        return 0
    except Missing as e:
        print(f"{'error' if under_ci() else 'skipped'}: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv))
