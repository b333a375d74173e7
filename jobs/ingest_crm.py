"""spark-submit entry point: ``spark-submit jobs/ingest_crm.py --env E --run-date D``."""

import sys

from decisionlake.jobs.ingest_crm import main

if __name__ == "__main__":
    sys.exit(main())
