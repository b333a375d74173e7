"""Local development only (never needed by a production job): services, demo, generator,
benchmarks, the local Spark cluster."""
