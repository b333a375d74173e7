"""spark-submit entry point: ``spark-submit jobs/publish.py --env E --run-date D``."""

import sys

from decisionlake.jobs.publish import main

if __name__ == "__main__":
    sys.exit(main())
