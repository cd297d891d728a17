"""`python -m rtrl_ref.plot`: learning curves of run folders.

The command lives in `rtrl_ref.r2ac.plot`.
"""

import sys

from rtrl_ref.r2ac.plot import main

if __name__ == "__main__":
    sys.exit(main())
