"""spark-submit entry point: ``spark-submit jobs/ingest.py --source S --env E --run-date D``."""

import sys

from decisionlake.jobs.ingest import main

if __name__ == "__main__":
    sys.exit(main())
