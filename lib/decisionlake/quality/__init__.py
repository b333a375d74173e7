"""Data quality: expectations on tables and drift between samples."""
