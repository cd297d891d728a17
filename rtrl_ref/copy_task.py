"""`python -m rtrl_ref.copy_task`: the copy task, trained fully online with RTRL.

The command lives in `rtrl_ref.r2ac.copy_online`.
"""

import sys

from rtrl_ref.r2ac.copy_online import main

if __name__ == "__main__":
    sys.exit(main())
