"""Scores to the warehouse: S3-staged Parquet, staging table, one-transaction upsert, verify."""
