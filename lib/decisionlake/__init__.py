"""decisionlake: PySpark jobs from web clickstream and CRM text to models and the warehouse."""

__version__ = "0.1.0"
