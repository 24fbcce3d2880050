"""A one-node SLURM cluster with accounting, on loopback, for tests that need the real scheduler.

Debian's packages (slurm-wlm, slurmdbd, munge, MariaDB) run as root under one temporary folder.
Every daemon runs in the foreground as a child of the test, so it is stopped by its own pid, and
its output goes to a log that is printed when something fails. The node advertises the CPUs and
memory the SLURM profile asks for (`SlurmdParameters=config_overrides`), so the profile's job sizes
are scheduled unchanged on a small machine.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.workflow import debian

# slurm-wlm brings slurmctld, slurmd and the client commands; slurmdbd and MariaDB store the
# accounting that `sacct` reads.
APT_PACKAGES = ("slurm-wlm", "slurmdbd", "munge", "mariadb-server")
BINARIES = ("munged", "mungekey", "mariadbd", "mariadb-install-db", "mariadb", "mariadb-admin",
            "slurmdbd", "slurmctld", "slurmd", "sbatch", "srun", "sacct", "sacctmgr", "sinfo",
            "squeue", "scontrol", "scancel")
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


class ClusterError(RuntimeError):
    """A daemon did not start or a SLURM command failed; the message carries the daemon logs."""


def missing_binaries() -> list[str]:
    return debian.missing(BINARIES)


def unavailable_reason() -> str | None:
    """Why no cluster can be started here (no root, or packages missing and no apt-get), or None."""
    if os.geteuid() != 0:
        return "no root: the SLURM cluster test runs slurmd, slurmdbd, munged and MariaDB as root"
    if missing_binaries() and shutil.which("apt-get") is None:
        return (f"no apt-get to install Debian's {', '.join(APT_PACKAGES)} "
                f"(missing: {', '.join(missing_binaries())})")
    return None


def install(timeout_s: int = 900) -> None:
    try:
        debian.apt_install(APT_PACKAGES, BINARIES, timeout_s)
    except RuntimeError as e:
        raise ClusterError(str(e)) from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL after STOP_TIMEOUT_S."""
        if not self.alive():
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)


@dataclass
class SlurmCluster:
    """munged, mariadbd, slurmdbd, slurmctld and slurmd for one node `node` in partition `partition`,
    with `account` registered for the current user; `start()` / `stop()` or a `with` block."""

    cpus: int
    memory_mb: int
    partition: str = "cpu"
    account: str = "asym-test"
    name: str = "asymtest"
    node: str = "asymnode"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="asym-slurm-")))
    daemons: list[Daemon] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self) -> dict[str, str]:
        """The environment for SLURM client commands (and Snakemake) that talk to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- starting ---------------------------------------------------------------------------

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("state", "spool", "logs"):
            (self.root / sub).mkdir(exist_ok=True)
        db_port, dbd_port, ctld_port, slurmd_port = (free_port() for _ in range(4))
        self._start_munge()
        self._start_mariadb(db_port)
        self._write_configs(db_port, dbd_port, ctld_port, slurmd_port)
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        self._wait("slurmdbd", lambda: self.run(["sacctmgr", "-n", "list", "cluster"], check=False).returncode == 0)
        self.run(["sacctmgr", "-i", "add", "cluster", self.name])
        self.run(["sacctmgr", "-i", "add", "account", self.account, f"Cluster={self.name}",
                  "Description=tests", "Organization=tests"])
        self.run(["sacctmgr", "-i", "add", "user", getpass.getuser(), f"Account={self.account}",
                  f"Cluster={self.name}"])
        self._spawn("slurmctld", ["slurmctld", "-D", "-i"])
        self._wait("slurmctld", lambda: "is UP" in self.run(["scontrol", "ping"], check=False).stdout)
        self._spawn("slurmd", ["slurmd", "-D", "-N", self.node])
        self._wait("slurmd", lambda: self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False).stdout.strip() == "idle")

    def _start_munge(self) -> None:
        key = self.root / "munge.key"
        subprocess.run(["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True, timeout=30)
        # --force: pytest's and mkdtemp's folders are not world-executable, which munged
        # otherwise refuses for its socket (every client here is root).
        self._spawn("munged", ["munged", "--foreground", "--force", f"--key-file={key}",
                               f"--socket={self.munge_socket}", f"--pid-file={self.root / 'munged.pid'}",
                               f"--seed-file={self.root / 'munged.seed'}"])
        self._wait("munged", lambda: self.munge_socket.exists())

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge.sock"

    def _start_mariadb(self, port: int) -> None:
        datadir, sock = self.root / "db", self.root / "mysql.sock"
        small = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"]
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db", *small],
                       check=True, capture_output=True, timeout=120)
        self._spawn("mariadb", ["mariadbd", "--no-defaults", f"--datadir={datadir}", f"--socket={sock}",
                                f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                                "--user=root", f"--pid-file={self.root / 'mariadb.pid'}", *small])
        client = ["--no-defaults", f"--socket={sock}", "--user=root"]
        self._wait("mariadb", lambda: subprocess.run(["mariadb-admin", *client, "ping"], capture_output=True,
                                                     timeout=10).returncode == 0)
        sql = ("CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';"
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")
        subprocess.run(["mariadb", *client, "-e", sql], check=True, capture_output=True, timeout=30)

    def _write_configs(self, db_port: int, dbd_port: int, ctld_port: int, slurmd_port: int) -> None:
        r, user = self.root, getpass.getuser()
        dbd = self.root / "slurmdbd.conf"   # read from the folder of SLURM_CONF
        dbd.write_text(f"""\
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={dbd_port}
SlurmUser={user}
PidFile={r}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)   # slurmdbd refuses a readable password file
        # AccountingStoragePass names the munge socket for the connections to slurmdbd.
        self.conf.write_text(f"""\
ClusterName={self.name}
SlurmctldHost=localhost(127.0.0.1)
SlurmUser={user}
SlurmdUser={user}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={dbd_port}
AccountingStoragePass={self.munge_socket}
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN
PartitionName={self.partition} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = self.root / "logs" / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, cwd=self.root, env=self.env(), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.daemons.append(Daemon(name, proc, log))

    def _wait(self, name: str, ready: Callable[[], bool], timeout_s: float = START_TIMEOUT_S) -> None:
        daemon = next(d for d in self.daemons if d.name == name)
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not daemon.alive():
                raise ClusterError(f"{name} exited with {daemon.proc.returncode}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} not ready after {timeout_s} s\n{self.logs()}")
            time.sleep(0.25)

    # --- using ------------------------------------------------------------------------------

    def run(self, cmd: list[str], check: bool = True, timeout_s: float = 60) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=timeout_s)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}\n{self.logs()}")
        return proc

    def jobs(self) -> list[dict[str, str]]:
        """Every job (allocation) the accounting database holds: one dict per `sacct -X` row."""
        fields = ["JobID", "JobName", "Account", "Partition", "State", "ExitCode", "WorkDir", "Timelimit",
                  "ReqTRES", "Comment"]
        out = self.run(["sacct", "-X", "-a", "-n", "-P", "--starttime=2000-01-01",
                        f"--format={','.join(fields)}"]).stdout
        return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]

    def logs(self, lines: int = 40) -> str:
        parts = []
        for log in sorted((self.root / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    # --- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel what still runs, stop the daemons in reverse order by pid, remove the folder."""
        try:
            if any(d.name == "slurmctld" and d.alive() for d in self.daemons):
                self.run(["scancel", "--full", f"--user={getpass.getuser()}"], check=False)
                deadline = time.monotonic() + STOP_TIMEOUT_S
                while (self.run(["squeue", "-h"], check=False).stdout.strip()
                       and time.monotonic() < deadline):
                    time.sleep(0.5)
        finally:
            for daemon in reversed(self.daemons):
                daemon.stop()
            shutil.rmtree(self.root, ignore_errors=True)
