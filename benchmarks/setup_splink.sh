#!/usr/bin/env bash
# Create (or bring up to date) the separate virtualenv of the Splink competitor baseline:
# benchmarks/.venv-splink, from benchmarks/splink_requirements.txt. Idempotent: when the venv
# already holds exactly these requirements it does nothing. Never touches the product's .venv.
#
#   bash benchmarks/setup_splink.sh            # PYTHON=python3.11 by default
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-splink"
req="$here/splink_requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3.11}"

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "benchmarks/.venv-splink is up to date"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
"$venv/bin/python" -c "import splink, duckdb; print('splink', splink.__version__, 'duckdb', duckdb.__version__)"
echo "$want" > "$stamp"
