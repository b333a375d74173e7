"""conf/pipeline.yaml -> an Amazon States Language state machine that runs each step on EMR.

Two targets share one layout (waves of steps; a wave with several steps is a Parallel state):
- ``emr``: ``elasticmapreduce:addStep.sync`` on a cluster; with ``transient=True`` the machine
  creates the cluster first and terminates it at the end and on failure;
- ``emr-serverless``: ``emr-serverless:startJobRun.sync`` on an application, with a client
  token per execution and step, so a retried state never starts a second job run.

Every task has Retry (the step's retries, exponential backoff), a timeout and a Catch that
leads to the failure branch: an SNS notification, cluster termination when transient, and a
Fail state. The run date comes from the execution input (``$.run_date``), or, for scheduled
executions, from the schedule's time (``$.scheduled_time``: the day before it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal

from decisionlake.ops.pipeline import PipelineDef, Step

Target = Literal["emr", "emr-serverless"]


@dataclass(frozen=True)
class DeploySettings:
    """Where the packaged code lives and how jobs are launched."""

    env: str = "prod"
    artifacts_uri: str = "s3://decisionlake-prod-artifacts/releases/current"
    python_env_archive: str = "pyenv.tar.gz"
    alert_topic_arn: str = "arn:aws:sns:us-east-1:000000000000:decisionlake-alerts"
    release_label: str = "emr-spark-8.1.0"
    execution_role_arn: str = "arn:aws:iam::000000000000:role/decisionlake-emr-serverless-job"


_DRIVER_ENV = "spark.emr-serverless.driverEnv"
_PYTHON = "./environment/bin/python"
_CATCH_ALL = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify failure"}]


def _worst_case_seconds(step: Step) -> int:
    backoff = sum(step.backoff_seconds * 2**n for n in range(step.retries))
    return step.timeout_minutes * 60 * (step.retries + 1) + backoff


def _state_name(step: Step) -> str:
    return f"Run {step.name}"


LOG_STORE_JAR = "jars/decisionlake-delta-logstore.jar"


def _spark_conf(s: DeploySettings) -> list[str]:
    archives = (
        f"{s.artifacts_uri}/{s.python_env_archive}#environment,"
        f"{s.artifacts_uri}/conf.zip#decisionlake-conf"
    )
    return [
        # The project's multi-writer Delta log store travels with the release.
        "--jars", f"{s.artifacts_uri}/{LOG_STORE_JAR}",
        "--conf", f"spark.archives={archives}",
        "--conf", f"spark.pyspark.python={_PYTHON}",
        # The driver finds conf/ in the unpacked archive (cluster mode: the YARN AM).
        "--conf", "spark.yarn.appMasterEnv.DECISIONLAKE_CONF=./decisionlake-conf",
    ]  # fmt: skip


def _job_args(step: Step, s: DeploySettings) -> tuple[str, list[str]]:
    """The entry point and its arguments (the run date is appended from the input)."""
    settings = [part for value in step.settings for part in ("--set", value)]
    return f"{s.artifacts_uri}/jobs/{step.job}.py", [*step.args, "--env", s.env, *settings]


def step_submit_args(step: Step, s: DeploySettings) -> list[str]:
    """A step's spark-submit options, entry point and job arguments, less the run date.

    The one source of an EMR step's arguments and of the local cluster's submission
    (``decisionlake.dev.cluster``), so what is tested locally is what EMR runs.
    """
    entry, job_args = _job_args(step, s)
    return [*_spark_conf(s), entry, *job_args]


def _quoted(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "\\'") + "'" for v in values)


def _task(step: Step, target: Target, s: DeploySettings) -> dict[str, Any]:
    entry, job_args = _job_args(step, s)
    if target == "emr":
        args = ["spark-submit", "--deploy-mode", "cluster", *step_submit_args(step, s)]
        task: dict[str, Any] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::elasticmapreduce:addStep.sync",
            "Parameters": {
                "ClusterId.$": "$.cluster_id",
                "Step": {
                    "Name.$": f"States.Format('{step.name} {{}}', $.run_date)",
                    "ActionOnFailure": "CONTINUE",
                    "HadoopJarStep": {
                        "Jar": "command-runner.jar",
                        "Args.$": f"States.Array({_quoted(args)}, '--run-date', $.run_date)",
                    },
                },
            },
        }
    else:
        arguments = f"States.Array({_quoted(job_args)}, '--run-date', $.run_date)"
        submit = [*_spark_conf(s), "--conf", f"{_DRIVER_ENV}.PYSPARK_PYTHON={_PYTHON}",
                  "--conf", f"{_DRIVER_ENV}.DECISIONLAKE_CONF=./decisionlake-conf"]  # fmt: skip
        task = {
            "Type": "Task",
            "Resource": "arn:aws:states:::emr-serverless:startJobRun.sync",
            "Parameters": {
                "ApplicationId.$": "$.application_id",
                "ExecutionRoleArn": s.execution_role_arn,
                "Name.$": f"States.Format('{step.name} {{}}', $.run_date)",
                # Unique per execution, step and attempt: a retry starts a new job run.
                "ClientToken.$": "States.Format('{}-"
                + step.name
                + "-{}', $$.Execution.Name, $$.State.RetryCount)",
                "JobDriver": {
                    "SparkSubmit": {
                        "EntryPoint": entry,
                        "EntryPointArguments.$": arguments,
                        "SparkSubmitParameters": " ".join(submit),
                    }
                },
            },
        }
    task.update(
        {
            "TimeoutSeconds": step.timeout_minutes * 60,
            "ResultPath": None,
            "Retry": [
                {
                    "ErrorEquals": ["States.TaskFailed", "States.Timeout"],
                    "IntervalSeconds": step.backoff_seconds,
                    "MaxAttempts": step.retries,
                    "BackoffRate": 2.0,
                }
            ]
            if step.retries
            else [],
            "Catch": [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify failure"}
            ],
        }
    )
    if not task["Retry"]:
        del task["Retry"]
    return task


def render_state_machine(
    pipeline: PipelineDef,
    *,
    target: Target = "emr",
    settings: DeploySettings | None = None,
    transient: bool = False,
) -> dict[str, Any]:
    """The state machine definition (a dict ready for ``json.dumps``)."""
    s = settings or DeploySettings()
    states: dict[str, Any] = {}
    order: list[str] = []
    if transient and target == "emr":
        states["Create cluster"] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::elasticmapreduce:createCluster.sync",
            "Parameters": {
                "Name.$": "States.Format('decisionlake {}', $.run_date)",
                "ReleaseLabel": s.release_label,
                "Applications": [{"Name": "Spark"}],
                "ServiceRole": "EMR_DefaultRole",
                "JobFlowRole": "EMR_EC2_DefaultRole",
                "Instances": {
                    "KeepJobFlowAliveWhenNoSteps": True,
                    "InstanceFleets": [
                        {
                            "InstanceFleetType": "MASTER",
                            "TargetOnDemandCapacity": 1,
                            "InstanceTypeConfigs": [{"InstanceType": "m7g.xlarge"}],
                        },
                        {
                            "InstanceFleetType": "CORE",
                            "TargetSpotCapacity": 4,
                            "InstanceTypeConfigs": [
                                {"InstanceType": "r7g.2xlarge"},
                                {"InstanceType": "r6g.2xlarge"},
                            ],
                        },
                    ],
                },
            },
            "ResultSelector": {"cluster_id.$": "$.ClusterId"},
            "ResultPath": "$.cluster",
            "Retry": [
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 60,
                    "MaxAttempts": 2,
                    "BackoffRate": 2.0,
                }
            ],
            "Catch": _CATCH_ALL,
        }
        states["Use cluster"] = {
            "Type": "Pass",
            "Parameters": {"run_date.$": "$.run_date", "cluster_id.$": "$.cluster.cluster_id"},
        }
        order += ["Create cluster", "Use cluster"]
    for n, wave in enumerate(pipeline.levels(), start=1):
        if len(wave) == 1:
            name = _state_name(wave[0])
            states[name] = _task(wave[0], target, s)
        else:
            name = f"Wave {n}: " + ", ".join(step.name for step in wave)
            branches = []
            for step in wave:
                task = _task(step, target, s)
                task.pop("Catch")  # the Parallel state catches for its branches
                branches.append(
                    {
                        "StartAt": _state_name(step),
                        "States": {_state_name(step): {**task, "End": True}},
                    }
                )
            states[name] = {
                "Type": "Parallel",
                "Branches": branches,
                "ResultPath": None,
                "Catch": _CATCH_ALL,
            }
        order.append(name)
    if transient and target == "emr":
        states["Terminate cluster"] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::elasticmapreduce:terminateCluster.sync",
            "Parameters": {"ClusterId.$": "$.cluster_id"},
            "ResultPath": None,
        }
        order.append("Terminate cluster")
    for current, following in itertools.pairwise(order):
        states[current]["Next"] = following
    states[order[-1]]["End"] = True
    # A manual or backfill execution passes run_date; the schedule passes its scheduled time,
    # which the jobs turn into the day before it (`--run-date scheduled:<time>`).
    states["Resolve run date"] = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.run_date", "IsPresent": True, "Next": order[0]}],
        "Default": "Derive run date",
    }
    states["Derive run date"] = {
        "Type": "Pass",
        "Parameters": {"run_date.$": "States.Format('scheduled:{}', $.scheduled_time)"},
        "Next": order[0],
    }
    order.insert(0, "Resolve run date")
    failure_next = "Terminate cluster after failure" if transient and target == "emr" else "Failed"
    states["Notify failure"] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {
            "TopicArn": s.alert_topic_arn,
            "Subject": f"{pipeline.name} failed",
            "Message.$": (
                "States.Format('run {} failed: {}', $.run_date, States.JsonToString($.error))"
            ),
        },
        "ResultPath": None,
        "Next": failure_next,
    }
    if transient and target == "emr":
        states["Terminate cluster after failure"] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::elasticmapreduce:terminateCluster.sync",
            "Parameters": {"ClusterId.$": "$.cluster_id"},
            "ResultPath": None,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "Failed"}],
            "Next": "Failed",
        }
    states["Failed"] = {
        "Type": "Fail",
        "Error": "PipelineFailed",
        "Cause": "a step failed; see the SNS alert",
    }
    return {
        "Comment": f"{pipeline.name}: rendered from conf/pipeline.yaml ({target})",
        "StartAt": order[0],
        # Worst case of every wave with all its retries and backoffs, plus an hour of slack.
        "TimeoutSeconds": sum(max(_worst_case_seconds(st) for st in w) for w in pipeline.levels())
        + 3600,
        "States": states,
    }
