"""Packaging and deployment: versioned artefacts a Step Functions run can be traced to.

``package`` builds into ``dist/<release>/``: the project wheel, ``jobs.zip`` (the spark-submit
entry points, also uploaded loose), a relocatable Python environment for ``spark.archives``
(``venv-pack``; EMR provides Spark and Delta, so they are left out), the rendered state
machines and CloudFormation template, and ``release.json`` (version, git SHA, checksums).
``deploy`` uploads a release to ``s3://<artifacts>/releases/<release>/`` and
``releases/current/`` and prints the spark-submit and EMR step arguments to use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
PROVIDED_BY_EMR = ("pyspark", "delta-spark")


def git_sha(repo: Path = REPO) -> str:
    """The commit, with ``-dirty`` when the tree has uncommitted changes."""
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                         text=True, check=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.strip()  # fmt: skip
    return sha + ("-dirty" if dirty else "")


def project_version(repo: Path = REPO) -> str:
    return tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"]


def release_id(repo: Path = REPO) -> str:
    sha = git_sha(repo)
    return f"{project_version(repo)}-{sha[:12]}{'-dirty' if sha.endswith('-dirty') else ''}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


RELEASE_EXTRAS = ("warehouse",)  # optional dependencies every release ships


def _dependencies(repo: Path = REPO) -> list[str]:
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(d for name in RELEASE_EXTRAS for d in extras[name])]


def runtime_requirements(repo: Path = REPO) -> list[str]:
    """The wheel's dependencies and the release extras, minus what the EMR release provides."""
    return [d for d in _dependencies(repo) if not d.replace("_", "-").startswith(PROVIDED_BY_EMR)]


def package(out: Path, *, with_env: bool = True, repo: Path = REPO) -> dict[str, Any]:
    """Build a release folder; returns its ``release.json`` content."""
    release = release_id(repo)
    target = out / release
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(target), str(repo)],
        check=True,
    )
    with zipfile.ZipFile(target / "jobs.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        for script in sorted((repo / "jobs").glob("*.py")):
            bundle.write(script, f"jobs/{script.name}")
    # The configuration travels as an archive: spark-submit unpacks it next to the driver.
    with zipfile.ZipFile(target / "conf.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted((repo / "conf").rglob("*.yaml")):
            bundle.write(path, str(path.relative_to(repo / "conf")))
    jobs_dir = target / "jobs"
    jobs_dir.mkdir()
    for script in sorted((repo / "jobs").glob("*.py")):
        shutil.copy2(script, jobs_dir / script.name)
    # The project's own JVM code (the multi-writer Delta log store), built by `make jars`.
    from decisionlake.core.jars import jar_dir

    store = jar_dir() / "decisionlake-delta-logstore.jar"
    if not store.is_file():
        raise FileNotFoundError(f"{store} not found: run `make jars` to build it")
    (target / "jars").mkdir()
    shutil.copy2(store, target / "jars" / store.name)
    for name in ("state_machine.emr.json", "state_machine.emr_serverless.json",
                 "cloudformation.json", "cluster-configurations.json"):  # fmt: skip
        shutil.copy2(repo / "emr" / name, target / name)
    if with_env:
        _python_env(target, next(target.glob("decisionlake-*.whl")))
    files = {
        str(p.relative_to(target)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(target.rglob("*"))
        if p.is_file()
    }
    manifest = {
        "release": release,
        "version": project_version(repo),
        "git_sha": git_sha(repo),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python_env": "pyenv.tar.gz" if with_env else None,
        "files": files,
    }
    (target / "release.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _python_env(target: Path, wheel: Path, repo: Path = REPO) -> None:
    """A fresh venv with the wheel and its runtime dependencies, packed by venv-pack."""
    work = target.parent / ".pyenv-build"
    shutil.rmtree(work, ignore_errors=True)
    # No pip inside: the environment only runs jobs. This process's pip installs into it.
    subprocess.run([sys.executable, "-m", "venv", "--copies", "--without-pip", str(work)],
                   check=True)  # fmt: skip
    pip = [sys.executable, "-m", "pip", "--python", str(work / "bin" / "python"), "install",
           "-q"]  # fmt: skip
    subprocess.run([*pip, *runtime_requirements(repo)], check=True)
    # Delta's Python API is pure Python; without its pyspark pin, the cluster's Spark is used.
    delta = next(d for d in _dependencies(repo) if d.startswith("delta-spark"))
    subprocess.run([*pip, "--no-deps", delta, str(wheel)], check=True)
    venv_pack = shutil.which("venv-pack", path=str(Path(sys.executable).parent)) or "venv-pack"
    subprocess.run([venv_pack, "-p", str(work), "-o", str(target / "pyenv.tar.gz"), "-q"],
                   check=True)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


def deploy(
    release_dir: Path, *, bucket: str, prefix: str = "releases", endpoint: str | None = None
) -> dict[str, Any]:
    """Upload a packaged release (and make it ``current``); returns where it went."""
    import boto3

    manifest = json.loads((release_dir / "release.json").read_text())
    kwargs: dict[str, Any] = {}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    s3 = boto3.client("s3", **kwargs)
    uploaded = []
    for base in (f"{prefix}/{manifest['release']}", f"{prefix}/current"):
        for path in sorted(p for p in release_dir.rglob("*") if p.is_file()):
            key = f"{base}/{path.relative_to(release_dir)}"
            s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {
                "release": manifest["release"], "git-sha": manifest["git_sha"]}})  # fmt: skip
            uploaded.append(key)
    root = f"s3://{bucket}/{prefix}/{manifest['release']}"
    archives = f"{root}/conf.zip#decisionlake-conf"
    python = ""
    if manifest.get("python_env"):
        archives = f"{root}/pyenv.tar.gz#environment,{archives}"
        python = "--conf spark.pyspark.python=./environment/bin/python "
    archive = (
        f"--jars {root}/jars/decisionlake-delta-logstore.jar "
        f"--conf spark.archives={archives} {python}"
        "--conf spark.yarn.appMasterEnv.DECISIONLAKE_CONF=./decisionlake-conf "
    )
    return {
        "release": manifest["release"],
        "uri": root,
        "objects": len(uploaded),
        "spark_submit": (
            f"spark-submit --deploy-mode cluster {archive}"
            f"{root}/jobs/<job>.py --env prod --run-date YYYY-MM-DD"
        ),
        "emr_step": {
            "Name": "<job> YYYY-MM-DD",
            "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {
                "Jar": "command-runner.jar",
                "Args": [
                    "spark-submit",
                    "--deploy-mode",
                    "cluster",
                    *archive.split(),
                    f"{root}/jobs/<job>.py",
                    "--env",
                    "prod",
                    "--run-date",
                    "YYYY-MM-DD",
                ],
            },
        },
    }


def main_package(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="decisionlake package", description=__doc__)
    parser.add_argument("--out", default=str(REPO / "dist"))
    parser.add_argument("--no-env", action="store_true", help="skip the Python env archive")
    args = parser.parse_args(argv)
    manifest = package(Path(args.out), with_env=not args.no_env)
    print(f"release {manifest['release']} in {Path(args.out) / manifest['release']}")
    for name, info in manifest["files"].items():
        if "/" not in name:
            print(f"  {name:<40} {info['bytes']:>12,} bytes")
    return 0


def main_deploy(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="decisionlake deploy")
    parser.add_argument("release_dir", help="a folder written by `decisionlake package`")
    parser.add_argument("--bucket", required=True, help="the artifacts bucket")
    parser.add_argument("--prefix", default="releases")
    parser.add_argument("--endpoint", default=os.environ.get("DL_S3_ENDPOINT"),
                        help="S3 endpoint (the local moto server); default: AWS")  # fmt: skip
    args = parser.parse_args(argv)
    out = deploy(Path(args.release_dir), bucket=args.bucket, prefix=args.prefix,
                 endpoint=args.endpoint)  # fmt: skip
    print(f"deployed {out['release']} to {out['uri']} ({out['objects']} objects, also current)")
    print(f"spark-submit:\n  {out['spark_submit']}")
    print(f"EMR step:\n  {json.dumps(out['emr_step'])}")
    return 0
