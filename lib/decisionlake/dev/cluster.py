"""A local Spark standalone cluster, and pipeline steps submitted to it as EMR submits them.

The cluster is the pyspark package's own master and worker classes (``bin/spark-class
org.apache.spark.deploy.master.Master`` / ``...worker.Worker``) on 127.0.0.1, each worker with
its own work directory, so executors are other JVMs with their own disk. It is laid out like an
EMR node: a ``SPARK_HOME`` whose ``jars/`` hold Spark plus the cached Delta/S3A jars and whose
``conf/spark-defaults.conf`` carries what EMR's cluster configuration carries (Delta's
extension and catalog, the S3 endpoint). Everything of the job itself comes from the release
in S3, exactly as the rendered state machine's EMR step names it
(:func:`decisionlake.ops.orchestration.asl.step_submit_args`): the job file, ``conf.zip``, the
venv-pack environment and the log-store jar.

A step's driver runs in a fresh "container" directory (like YARN's application master): the
environment and conf archives from S3 are unpacked there, once per release and archive version
(YARN's localisation cache does the same), and nothing else is written. Standalone mode runs
Python drivers in client mode only; that and the master URL are the differences from EMR.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from decisionlake.core.spark import DELTA_CATALOG, DELTA_EXTENSION, s3_stand_in_conf
from decisionlake.dev.services import _http_ok, _terminate, _wait_for, free_port
from decisionlake.ops.orchestration.asl import DeploySettings, step_submit_args
from decisionlake.ops.pipeline import Executor, Step, driver_outcome

# The log store ships with the release (--jars), as on EMR: the cluster does not carry it.
_RELEASE_JARS = ("decisionlake-delta-logstore",)


class ClusterError(RuntimeError):
    """The local cluster cannot start or a submission cannot be prepared."""


def pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ClusterError(
            "the local Spark cluster needs Java 17: install a JDK (apt-get install "
            "openjdk-17-jdk-headless) or set JAVA_HOME"
        )
    return java


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def build_spark_home(home: Path, *, jars: Sequence[Path], defaults: Mapping[str, str]) -> Path:
    """An EMR-like Spark installation: pyspark's bin/python, its jars plus ``jars``, defaults."""
    source = pyspark_home()
    if home.exists():
        shutil.rmtree(home)
    (home / "jars").mkdir(parents=True)
    (home / "conf").mkdir()
    for name in ("bin", "sbin", "python"):
        (home / name).symlink_to(source / name)
    for jar in [*sorted((source / "jars").glob("*.jar")), *jars]:
        link = home / "jars" / jar.name
        if not link.exists():
            link.symlink_to(jar.resolve())
    lines = [f"{key} {value}" for key, value in sorted(defaults.items())]
    (home / "conf" / "spark-defaults.conf").write_text("\n".join(lines) + "\n")
    return home


@dataclass
class SparkCluster:
    """One master and ``workers`` workers on 127.0.0.1 (every path outside the checkout)."""

    root: Path
    s3_endpoint: str | None = None
    workers: int = 2
    # Virtual cores: two drivers side by side (the pipeline's parallel steps) each get one
    # executor on every worker; the machine's two real cores are shared, as on a busy node.
    worker_cores: int = 2
    worker_memory: str = "4g"
    executor_memory: str = "1536m"
    # One executor JVM per application: on two real cores a second one per step costs its
    # start-up and archive unpacking and gives no parallelism back (measured: 69 -> 56 s for
    # one small ingest). Parallel steps still land on different workers.
    executors_per_app: int = 1
    master_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def spark_home(self) -> Path:
        return self.root / "spark-home"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def defaults(self) -> dict[str, str]:
        """spark-defaults.conf of the cluster: what EMR's cluster configuration provides."""
        conf = {
            "spark.master": self.master_url,
            "spark.sql.extensions": DELTA_EXTENSION,
            "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.memory": "2g",
            "spark.executor.memory": self.executor_memory,
            "spark.executor.cores": "1",
            "spark.cores.max": str(self.executors_per_app),
            # Every step is a fresh, short-lived JVM: C2 compilation costs more CPU than it
            # returns in a minute's run (measured: 106 -> 69 s for one small ingest).
            "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
            "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1",
            "spark.ui.showConsoleProgress": "false",
            # A lost executor's tasks are retried elsewhere; a step survives one lost JVM.
            "spark.task.maxFailures": "4",
        }
        if self.s3_endpoint:  # the cluster-wide S3 client settings (EMRFS's on EMR)
            conf.update(s3_stand_in_conf(self.s3_endpoint, "us-east-1"))
        return conf

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SPARK_HOME": str(self.spark_home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.log_dir),
            "SPARK_NO_DAEMONIZE": "1",
        }

    def start(self) -> SparkCluster:
        from decisionlake.core.jars import local_jars

        java = _java()
        for port in (self.master_port, self.web_port):
            if not _port_free(port):
                raise ClusterError(
                    f"port {port} on 127.0.0.1 is in use: stop what listens there "
                    "(`decisionlake services stop`) or choose other ports"
                )
        jars = [j for j in local_jars() if not j.name.startswith(_RELEASE_JARS)]
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        build_spark_home(self.spark_home, jars=jars, defaults=self.defaults())
        env = {**self._env(), "JAVA_HOME": str(Path(java).resolve().parents[1])}
        spark_class = str(self.spark_home / "bin" / "spark-class")
        self._launch(
            "master",
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(self.master_port), "--webui-port", str(self.web_port)],
            env,
        )  # fmt: skip
        _wait_for(lambda: _http_ok(self.status_url), "spark master", 60, self.procs[0])
        for n in range(1, self.workers + 1):
            work = self.root / f"worker-{n}"
            work.mkdir(exist_ok=True)
            self._launch(
                f"worker-{n}",
                [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                 "--cores", str(self.worker_cores), "--memory", self.worker_memory,
                 "--work-dir", str(work), "--webui-port", str(free_port()), self.master_url],
                env,
            )  # fmt: skip
        _wait_for(lambda: len(self.alive_workers()) == self.workers, "spark workers", 90)
        return self

    def _launch(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self.procs.append(
                subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/json/"

    def status(self) -> dict[str, Any]:
        import urllib.request

        with urllib.request.urlopen(self.status_url, timeout=5) as response:
            return json.loads(response.read())

    def alive_workers(self) -> list[dict[str, Any]]:
        return [w for w in self.status().get("workers", []) if w.get("state") == "ALIVE"]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _terminate(proc)
        self.procs.clear()

    def as_state(self) -> dict[str, Any]:
        return {"master_url": self.master_url, "web_port": self.web_port,
                "spark_home": str(self.spark_home), "root": str(self.root),
                "pids": [p.pid for p in self.procs]}  # fmt: skip


def executor_pids(app_id: str | None = None) -> list[int]:
    """PIDs of executor JVMs (of one application when ``app_id`` is given)."""
    pattern = "CoarseGrainedExecutorBackend" + (f".*--app-id {re.escape(app_id)}" if app_id else "")
    done = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def kill_executor(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


# --- submission ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """A deployed release: ``s3://<bucket>/<prefix>`` holding what ``scripts/package`` built."""

    bucket: str
    prefix: str
    env: str = "local-cluster"

    def settings(self, scheme: str = "s3a") -> DeploySettings:
        return DeploySettings(env=self.env, artifacts_uri=f"{scheme}://{self.bucket}/{self.prefix}")


def submit_command(
    cluster_master: str, spark_home: Path, step: Step, release: Release, run_date: date,
    settings: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    """The spark-submit of one step: the EMR step's arguments, for this master."""
    args = step_submit_args(step, release.settings("s3a"))
    extra = [part for value in settings for part in ("--set", value)]
    return [str(spark_home / "bin" / "spark-submit"), "--master", cluster_master,
            "--deploy-mode", "client", *args, *extra,
            "--run-date", run_date.isoformat()]  # fmt: skip


def _s3_client(endpoint: str | None):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=endpoint) if endpoint else boto3.client("s3")


# The release's archives and the folder each is unpacked to (spark.archives' "#link"), for a
# driver and for every executor: the Python environment is ~600 MB unpacked.
RELEASE_ARCHIVES = (("pyenv.tar.gz", "environment"), ("conf.zip", "decisionlake-conf"))


def localise(release: Release, cache: Path, endpoint: str | None) -> dict[str, Path]:
    """Download and unpack the release's archives for a driver, once per object version."""
    s3 = _s3_client(endpoint)
    unpacked: dict[str, Path] = {}
    for name, link in RELEASE_ARCHIVES:
        key = f"{release.prefix}/{name}"
        try:
            etag = s3.head_object(Bucket=release.bucket, Key=key)["ETag"].strip('"')
        except Exception as exc:
            raise ClusterError(
                f"s3://{release.bucket}/{key} not found: package and deploy the release first "
                f"(`scripts/package` then `scripts/deploy dist/<release> --bucket "
                f"{release.bucket}`)"
            ) from exc
        folder = cache / f"{link}-{etag}"
        if not folder.exists():
            partial = cache / f".{link}-{uuid.uuid4().hex}"
            partial.mkdir(parents=True)
            archive = partial / name
            s3.download_file(release.bucket, key, str(archive))
            if name.endswith(".zip"):
                with zipfile.ZipFile(archive) as bundle:
                    bundle.extractall(partial / "content")
            else:
                with tarfile.open(archive) as bundle:
                    bundle.extractall(partial / "content", filter="fully_trusted")
            archive.unlink()
            with contextlib.suppress(OSError):  # another driver unpacked this version first
                (partial / "content").rename(folder)
            shutil.rmtree(partial, ignore_errors=True)
        unpacked[link] = folder
    return unpacked


def cluster_executor(
    *, master_url: str, spark_home: Path, release: Release, work_root: Path,
    s3_endpoint: str | None, env: Mapping[str, str] | None = None,
) -> Executor:  # fmt: skip
    """Run each step as its own spark-submit of the release onto the cluster (addStep.sync)."""

    def execute(
        step: Step, run_date: date, settings: Sequence[str]
    ) -> tuple[int, str, dict[str, Any]]:
        archives = localise(release, work_root / "localised", s3_endpoint)
        container = work_root / "drivers" / f"{step.name}-{run_date}-{uuid.uuid4().hex[:8]}"
        container.mkdir(parents=True)
        for link, folder in archives.items():
            (container / link).symlink_to(folder)
        command = submit_command(master_url, spark_home, step, release, run_date, settings)
        process_env = {
            **os.environ, **(env or {}),
            "SPARK_HOME": str(spark_home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            # What spark.yarn.appMasterEnv gives the driver on EMR.
            "DECISIONLAKE_CONF": "./decisionlake-conf",
        }  # fmt: skip
        for name in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV", "PYTHONPATH"):
            process_env.pop(name, None)
        log_path = container / "driver.log"
        try:
            # The driver's output goes straight to its log, so a step that hangs or is killed
            # leaves what it did behind (spark-submit merges the Python stderr into stdout).
            with log_path.open("w") as log:
                process = subprocess.Popen(
                    command, cwd=container, env=process_env, stdout=log,
                    stderr=subprocess.STDOUT, text=True, start_new_session=True,
                )  # fmt: skip
                try:
                    code = process.wait(timeout=step.timeout_minutes * 60)
                except subprocess.TimeoutExpired:
                    _terminate(process)  # the driver's whole process group
                    return (
                        124,
                        (
                            f"timed out after {step.timeout_minutes} min; the driver's log is "
                            f"{log_path}; last line: {_last_line(log_path)}"
                        ),
                        {},
                    )
        finally:
            for _, link in RELEASE_ARCHIVES:
                (container / link).unlink(missing_ok=True)
            # The cluster's root holds spark-home and the workers' folders (SparkCluster).
            release_executor_files(spark_home.parent, applications_of(log_path))
        reason, summary = driver_outcome(log_path.read_text(errors="replace"), step.job)
        return code, reason if code else "", summary

    return execute


_APP_ID = re.compile(r"Connected to Spark cluster with app ID (app-[0-9]+-[0-9]+)")


def applications_of(driver_log: Path) -> list[str]:
    """The standalone application IDs a driver's log names (one per SparkContext it started)."""
    if not driver_log.is_file():
        return []
    return sorted(set(_APP_ID.findall(driver_log.read_text(errors="replace"))))


def release_executor_files(cluster_root: Path, app_ids: Sequence[str]) -> int:
    """Delete the archives the finished applications' executors unpacked; keep their logs.

    YARN's NodeManager deletes a finished container's localised files and keeps its logs; a
    standalone worker keeps an application's folder whole (its own cleanup, when enabled,
    deletes the logs with it). Left in place, each step's executors would keep a copy of the
    release's environment (~600 MB) on the worker's disk: a day of steps fills a small disk.
    Returns the number of folders deleted.
    """
    deleted = 0
    for app_id in app_ids:
        for executor_dir in cluster_root.glob(f"worker-*/{app_id}/*"):
            for _, link in RELEASE_ARCHIVES:
                unpacked = executor_dir / link
                if unpacked.is_dir() and not unpacked.is_symlink():
                    shutil.rmtree(unpacked, ignore_errors=True)
                    deleted += 1
    return deleted


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(empty)"


def stack_executor(env: str, *, release_prefix: str = "releases/current") -> Executor:
    """The cluster executor for the running local stack (`decisionlake services start
    --cluster`) and the release deployed under ``release_prefix`` in its artifacts bucket."""
    from decisionlake.dev import services

    state = services.read_state()
    if "cluster" not in state:
        raise ClusterError(
            "no local cluster is running: start it with `decisionlake services start "
            "--cluster`, then `scripts/package` and `scripts/deploy dist/<release> --bucket "
            f"{services.BUCKETS[2]}`"
        )
    services.apply_env(state)
    cluster = state["cluster"]
    return cluster_executor(
        master_url=cluster["master_url"],
        spark_home=Path(cluster["spark_home"]),
        release=Release(services.BUCKETS[2], release_prefix, env=env),
        work_root=Path(cluster["root"]) / "submissions",
        s3_endpoint=state["env"]["DL_S3_ENDPOINT"],
    )
