"""spark-submit entry point: ``spark-submit jobs/build_sessions.py --env E --run-date D``."""

import sys

from decisionlake.jobs.build_sessions import main

if __name__ == "__main__":
    sys.exit(main())
