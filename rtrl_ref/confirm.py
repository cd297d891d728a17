"""`python -m rtrl_ref.confirm`: rerun an end-to-end comparison (every learner and seed).

The command lives in `rtrl_ref.r2ac.confirm`.
"""

import sys

from rtrl_ref.r2ac.confirm import main

if __name__ == "__main__":
    sys.exit(main())
