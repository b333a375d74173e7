"""The AWS infrastructure as one CloudFormation template, rendered from the project's config.

Buckets (landing, lake, artifacts, staging, curated) with encryption, public access blocked
and lifecycle rules; the DynamoDB table Delta's S3DynamoDBLogStore needs for multi-cluster
commits; the SNS alert topic; least-privilege IAM roles (the pipeline's EMR role, Step
Functions, the scheduler, and one role per access-policy role in ``conf/base/access.yaml``);
the daily state machine (rendered from ``conf/pipeline.yaml``) and its EventBridge schedule.
"""

from __future__ import annotations

import json
from typing import Any

from decisionlake.config import AppConfig
from decisionlake.ops.orchestration.asl import DeploySettings, render_state_machine
from decisionlake.ops.pipeline import PipelineDef

BUCKETS = ("landing", "lake", "artifacts", "staging", "curated")


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _bucket_name(kind: str) -> dict[str, str]:
    return _sub(f"decisionlake-${{Env}}-{kind}-${{AWS::AccountId}}")


def _bucket_arn(kind: str, suffix: str = "") -> dict[str, str]:
    return _sub(f"arn:${{AWS::Partition}}:s3:::${{{kind.capitalize()}Bucket}}{suffix}")


def _bucket(kind: str) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {
            "Id": "abort-incomplete-uploads",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
    ]
    if kind == "landing":
        rules.append(
            {
                "Id": "raw-to-infrequent-access",
                "Status": "Enabled",
                "Transitions": [
                    {"StorageClass": "STANDARD_IA", "TransitionInDays": 30},
                    {"StorageClass": "GLACIER_IR", "TransitionInDays": 90},
                ],
                "ExpirationInDays": 730,
            }
        )
    if kind == "staging":
        # Failed exports keep their staged files for inspection; a week is enough.
        rules.append({"Id": "expire-staged-exports", "Status": "Enabled", "ExpirationInDays": 7})
    if kind in ("lake", "artifacts", "curated"):
        rules.append(
            {
                "Id": "expire-old-versions",
                "Status": "Enabled",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
            }
        )
    props: dict[str, Any] = {
        "BucketName": _bucket_name(kind),
        "BucketEncryption": {
            "ServerSideEncryptionConfiguration": [
                {
                    "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        },
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        "LifecycleConfiguration": {"Rules": rules},
    }
    if kind in ("lake", "artifacts", "curated"):
        props["VersioningConfiguration"] = {"Status": "Enabled"}
    return {
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": props,
    }


def _s3_statements(
    sid: str, kind: str, *, read: bool, write: bool, prefix: str = ""
) -> list[dict[str, Any]]:
    """Object and list permissions on one bucket (optionally one prefix), never ``s3:*``."""
    objects = _bucket_arn(kind, f"/{prefix}/*" if prefix else "/*")
    actions = []
    if read:
        actions += ["s3:GetObject", "s3:GetObjectVersion"]
    if write:
        actions += ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    listing: dict[str, Any] = {
        "Sid": f"{sid}List",
        "Effect": "Allow",
        "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
        "Resource": _bucket_arn(kind),
    }
    if prefix:
        listing["Condition"] = {"StringLike": {"s3:prefix": [f"{prefix}/*", prefix]}}
    return [
        {"Sid": f"{sid}Objects", "Effect": "Allow", "Action": actions, "Resource": objects},
        listing,
    ]


def _role(service: str, statements: list[dict[str, Any]], managed: list[str] = ()) -> dict:
    props: dict[str, Any] = {
        "AssumeRolePolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
            ],
        },
        "Policies": [
            {
                "PolicyName": "least-privilege",
                "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
            }
        ],
    }
    if managed:
        props["ManagedPolicyArns"] = [
            _sub(f"arn:${{AWS::Partition}}:iam::aws:policy/{m}") for m in managed
        ]
    return {"Type": "AWS::IAM::Role", "Properties": props}


def _pipeline_statements(cfg: AppConfig) -> list[dict[str, Any]]:
    s = []
    s += _s3_statements("Landing", "landing", read=True, write=False)
    s += _s3_statements("Lake", "lake", read=True, write=True)
    s += _s3_statements("Artifacts", "artifacts", read=True, write=True)
    s += _s3_statements("Staging", "staging", read=True, write=True)
    s += _s3_statements("Curated", "curated", read=True, write=True)
    s += [
        {
            "Sid": "DeltaLogStore",
            "Effect": "Allow",
            "Action": [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:Query",
                "dynamodb:DescribeTable",
            ],
            "Resource": {"Fn::GetAtt": ["DeltaLogTable", "Arn"]},
        },
        {
            "Sid": "WarehouseSecret",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": _sub(
                "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}"
                f":secret:{cfg.services.warehouse_secret_id}-*"
            ),
        },
        {
            "Sid": "Alerts",
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Resource": {"Ref": "AlertsTopic"},
        },
        {
            "Sid": "CuratedCatalog",
            "Effect": "Allow",
            "Action": [
                "glue:GetDatabase",
                "glue:CreateDatabase",
                "glue:GetTable",
                "glue:CreateTable",
                "glue:UpdateTable",
            ],
            "Resource": [
                _sub("arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog"),
                _sub(
                    "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/"
                    f"{cfg.publish.glue_database}"
                ),
                _sub(
                    "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/"
                    f"{cfg.publish.glue_database}/*"
                ),
            ],
        },
        {
            "Sid": "WarehouseLoad",
            "Effect": "Allow",
            "Action": ["redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"],
            "Resource": _sub(
                "arn:${AWS::Partition}:redshift-serverless:${AWS::Region}:"
                "${AWS::AccountId}:workgroup/*"
            ),
        },
        {
            "Sid": "WarehouseStatementStatus",
            "Effect": "Allow",
            "Action": ["redshift-data:DescribeStatement", "redshift-data:GetStatementResult"],
            "Resource": "*",  # these two actions take no resource ARN
            "Condition": {
                "StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}
            },
        },
    ]
    return s


def render_template(
    cfg: AppConfig, pipeline: PipelineDef, *, schedule: str = "cron(0 6 * * ? *)"
) -> dict[str, Any]:
    """The CloudFormation template (a dict ready for ``json.dumps``)."""
    settings = DeploySettings(
        env=cfg.env,
        artifacts_uri="s3://${ArtifactsBucketName}/releases/current",
        alert_topic_arn="${AlertsTopicArn}",
    )
    machine = render_state_machine(pipeline, target="emr", transient=True, settings=settings)
    resources: dict[str, Any] = {f"{kind.capitalize()}Bucket": _bucket(kind) for kind in BUCKETS}
    resources["DeltaLogTable"] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "TableName": _sub("decisionlake-${Env}-delta-log"),
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "tablePath", "AttributeType": "S"},
                {"AttributeName": "fileName", "AttributeType": "S"},
            ],
            "KeySchema": [
                {"AttributeName": "tablePath", "KeyType": "HASH"},
                {"AttributeName": "fileName", "KeyType": "RANGE"},
            ],
            "TimeToLiveSpecification": {"AttributeName": "expireTime", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    }
    resources["AlertsTopic"] = {
        "Type": "AWS::SNS::Topic",
        "Properties": {
            "TopicName": _sub("decisionlake-${Env}-alerts"),
            "KmsMasterKeyId": "alias/aws/sns",
        },
    }
    resources["PipelineRole"] = _role("ec2.amazonaws.com", _pipeline_statements(cfg))
    resources["PipelineInstanceProfile"] = {
        "Type": "AWS::IAM::InstanceProfile",
        "Properties": {"Roles": [{"Ref": "PipelineRole"}]},
    }
    resources["EmrServiceRole"] = _role(
        "elasticmapreduce.amazonaws.com", [], managed=["service-role/AmazonEMRServicePolicy_v2"]
    )
    del resources["EmrServiceRole"]["Properties"]["Policies"]
    cluster_arn = _sub(
        "arn:${AWS::Partition}:elasticmapreduce:${AWS::Region}:${AWS::AccountId}:cluster/*"
    )
    resources["StateMachineRole"] = _role(
        "states.amazonaws.com",
        [
            {
                "Sid": "RunClusterSteps",
                "Effect": "Allow",
                "Action": [
                    "elasticmapreduce:RunJobFlow",
                    "elasticmapreduce:DescribeCluster",
                    "elasticmapreduce:TerminateJobFlows",
                    "elasticmapreduce:AddJobFlowSteps",
                    "elasticmapreduce:DescribeStep",
                    "elasticmapreduce:CancelSteps",
                    "elasticmapreduce:AddTags",
                ],
                "Resource": cluster_arn,
            },
            {
                "Sid": "SyncIntegrationRules",
                "Effect": "Allow",
                "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                "Resource": _sub(
                    "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}"
                    ":rule/StepFunctionsGetEventForEMR*"
                ),
            },
            {
                "Sid": "PassClusterRoles",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": [
                    {"Fn::GetAtt": ["PipelineRole", "Arn"]},
                    {"Fn::GetAtt": ["EmrServiceRole", "Arn"]},
                ],
            },
            {
                "Sid": "Alerts",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": {"Ref": "AlertsTopic"},
            },
        ],
    )
    resources["DailyStateMachine"] = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": _sub("decisionlake-${Env}-daily"),
            "RoleArn": {"Fn::GetAtt": ["StateMachineRole", "Arn"]},
            "DefinitionString": json.dumps(machine, sort_keys=True),
            "DefinitionSubstitutions": {
                "ArtifactsBucketName": {"Ref": "ArtifactsBucket"},
                "AlertsTopicArn": {"Ref": "AlertsTopic"},
            },
        },
    }
    resources["SchedulerRole"] = _role(
        "scheduler.amazonaws.com",
        [
            {
                "Sid": "StartDailyRun",
                "Effect": "Allow",
                "Action": "states:StartExecution",
                "Resource": {"Ref": "DailyStateMachine"},
            }
        ],
    )
    resources["DailySchedule"] = {
        "Type": "AWS::Scheduler::Schedule",
        "Properties": {
            "Name": _sub("decisionlake-${Env}-daily"),
            "ScheduleExpression": schedule,
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": {"Ref": "DailyStateMachine"},
                "RoleArn": {"Fn::GetAtt": ["SchedulerRole", "Arn"]},
                # The state machine turns the firing time into the previous day's run date.
                "Input": json.dumps({"scheduled_time": "<aws.scheduler.scheduled-time>"}),
                "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            },
        },
    }
    for role, grants in sorted(cfg.access.roles.items()):
        if role == "pipeline":
            continue  # the PipelineRole above
        statements = []
        for tier in grants.read:
            statements += _s3_statements(
                f"Read{tier.capitalize()}",
                "lake",
                read=True,
                write=tier in grants.write,
                prefix=cfg.access.tiers[tier],
            )
        name = "".join(part.capitalize() for part in role.split("_")) + "AccessRole"
        resources[name] = _role("ec2.amazonaws.com", statements)
        resources[name]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] = {
            "AWS": _sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")
        }
        resources[name]["Properties"]["Tags"] = [{"Key": "decisionlake:access-role", "Value": role}]
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "decisionlake: lake buckets, Delta log table, alerts, IAM, daily pipeline",
        "Parameters": {
            "Env": {
                "Type": "String",
                "AllowedValues": ["dev", "prod"],
                "Default": cfg.env if cfg.env in ("dev", "prod") else "dev",
            },
        },
        "Resources": resources,
        "Outputs": {
            "StateMachineArn": {"Value": {"Ref": "DailyStateMachine"}},
            "AlertsTopicArn": {"Value": {"Ref": "AlertsTopic"}},
            "DeltaLogTableName": {"Value": {"Ref": "DeltaLogTable"}},
            **{
                f"{k.capitalize()}BucketName": {"Value": {"Ref": f"{k.capitalize()}Bucket"}}
                for k in BUCKETS
            },
        },
    }
