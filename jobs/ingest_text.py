"""spark-submit entry point: ``spark-submit jobs/ingest_text.py --env E --run-date D``."""

import sys

from decisionlake.jobs.ingest_text import main

if __name__ == "__main__":
    sys.exit(main())
