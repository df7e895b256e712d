#!/usr/bin/env bash
# Set up the project on a fresh machine: a virtual environment in .venv with the package and
# its test tools, Graphviz's `dot` (for diagrams) and Chromium with its driver (for the browser
# tests of `engine view`) through the system package manager.
# Idempotent and quick when nothing changed. PYTHON=python3.11 picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version 2>&1)"
  "$python" -m venv .venv
fi

stamp=.venv/.engine-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the package and its dependencies into .venv (torch takes a minute)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi

if ! command -v dot >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Graphviz (dot) with apt-get"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz) >/dev/null \
      || echo "setup: could not install Graphviz; diagrams need 'dot' (apt-get install graphviz)"
  else
    echo "setup: Graphviz's 'dot' is missing; diagrams need it:" \
         "apt-get install graphviz, brew install graphviz, or conda install graphviz"
  fi
fi

# `engine view`'s browser tests drive Chromium through chromedriver; without them they skip
if ! { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
       || command -v google-chrome >/dev/null 2>&1; } || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Chromium and chromedriver with apt-get (for the viewer's browser tests)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) \
      >/dev/null || echo "setup: could not install Chromium; the viewer's browser tests will skip"
  else
    echo "setup: Chromium or chromedriver is missing; the viewer's browser tests will skip:" \
         "apt-get install chromium chromium-driver"
  fi
fi
