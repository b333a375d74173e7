"""spark-submit entry point: ``spark-submit jobs/build_advisor_360.py --env E --run-date D``."""

import sys

from decisionlake.jobs.build_advisor_360 import main

if __name__ == "__main__":
    sys.exit(main())
