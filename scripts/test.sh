#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
# Tests that need a dataset read $ENGINE_DATA, else ../shared/data beside the checkout. Without it
# they run on tiny stand-ins (tests/tiny_data.py) or skip; just above pytest's closing line, the
# summary then says how many skipped, e.g. "12 tests skipped: no data folder (set ENGINE_DATA or
# clone with ../shared beside)" (tests/conftest.py, pytest_terminal_summary). The browser tests of
# `engine view` need Chromium and chromedriver, which setup.sh installs with apt-get when run as root;
# without them they skip with one reason ("no headless browser: ...").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One worker per core (TEST_WORKERS=N to choose; 0 runs in this process), each taking whole test
# files, so a module's fixtures are built once; the workers share one judge cache (conftest.py).
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-logical}" --dist loadfile "$@"
