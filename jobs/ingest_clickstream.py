"""spark-submit entry point: ``spark-submit jobs/ingest_clickstream.py --env E --run-date D``."""

import sys

from decisionlake.jobs.ingest_clickstream import main

if __name__ == "__main__":
    sys.exit(main())
