#!/usr/bin/env bash
# Create the project virtualenv in .venv and install rtrl_ref with the given extras.
#   bash scripts/setup.sh            -> core + training extras
#   bash scripts/setup.sh dev        -> everything that runs on a CPU machine (tests, envs, notebooks)
# Python: 3.13 where present (ProcGen wheels exist only for 3.13), else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-train,gym,atari,popgym,procgen}"

pick_python() {
    if [ -n "${RTRL_PYTHON:-}" ]; then echo "$RTRL_PYTHON"; return; fi
    if python3.13 -c 'pass' 2>/dev/null; then command -v python3.13; return; fi
    if command -v pyenv >/dev/null 2>&1; then
        for p in "$(pyenv root)"/versions/3.13*/bin/python3.13; do
            if [ -x "$p" ] && "$p" -c 'pass' 2>/dev/null; then echo "$p"; return; fi
        done
    fi
    command -v python3
}

if [ ! -x .venv/bin/python ]; then
    PY="$(pick_python)"
    echo "setup: creating .venv with $PY ($("$PY" --version 2>&1))"
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
echo "setup: installed rtrl_ref[${EXTRAS}] into .venv ($(.venv/bin/python --version))"
