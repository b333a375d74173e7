"""spark-submit entry point: ``spark-submit jobs/ingest_ga4.py --env E --run-date D``."""

import sys

from decisionlake.jobs.ingest_ga4 import main

if __name__ == "__main__":
    sys.exit(main())
