"""spark-submit entry point: ``spark-submit jobs/ingest_outcomes.py --env E --run-date D``."""

import sys

from decisionlake.jobs.ingest_outcomes import main

if __name__ == "__main__":
    sys.exit(main())
