#!/usr/bin/env bash
# A virtualenv whose pyzmq uses Debian's libzmq (4.3.4: pgm, epgm, norm, ws, tipc), not the
# wheel's bundled one (which has none of them), with txzmq2 and its test extras. Needs root
# for apt (or libzmq3-dev already installed).
#
#   bash .ci/env-debian-libzmq.sh [DIR]      # default DIR: .ci/.envs/debian-libzmq
#   DIR/venv/bin/python -m pytest tests/transports tests/core
#
# About a minute. Nothing is cached: DIR is rebuilt from scratch each time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/libzmq-common.sh
source .ci/libzmq-common.sh

DIR="$(realpath -m "${1:-.ci/.envs/debian-libzmq}")"
rm -rf "$DIR"
mkdir -p "$DIR"
apt_install build-essential pkg-config libzmq3-dev iproute2

fresh_venv "$DIR/venv"
LOG="$DIR/build.log"
PYZMQ_NO_BUNDLE=1 step "$LOG" python -m pip install --no-binary pyzmq --no-cache-dir pyzmq
step "$LOG" python -m pip install -e ".[test]"
python -c "import zmq; print('pyzmq', zmq.__version__, 'libzmq', zmq.zmq_version(), 'pgm', zmq.has('pgm'))"
