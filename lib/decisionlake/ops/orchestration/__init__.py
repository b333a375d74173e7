"""Rendering the pipeline definition for AWS: Step Functions state machines for EMR."""
