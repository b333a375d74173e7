"""Runtime: the Spark session, jars, structured logs, the job runner, secrets."""
