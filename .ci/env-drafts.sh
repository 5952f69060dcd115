#!/usr/bin/env bash
# A virtualenv whose pyzmq has ZeroMQ's draft API: libzmq 4.3.4 built from Debian's source
# package with ENABLE_DRAFTS=ON, pyzmq built against it with ZMQ_DRAFT_API=1, txzmq2 and its
# test extras. Needs root for apt (or the packages below already installed).
#
#   bash .ci/env-drafts.sh [DIR]      # default DIR: .ci/.envs/drafts
#   DIR/venv/bin/python -m pytest tests/draft tests/core
#
# About 4 minutes on 2 cores. Nothing is cached: DIR is rebuilt from scratch each time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/libzmq-common.sh
source .ci/libzmq-common.sh

DIR="$(realpath -m "${1:-.ci/.envs/drafts}")"
rm -rf "$DIR"
mkdir -p "$DIR/src" "$DIR/apt/lists/partial"
apt_install build-essential cmake pkg-config libsodium-dev

# Debian's source package, through apt with a private configuration: the machine's own
# package sources as deb-src entries (it usually has none), its lists kept in DIR.
mkdir -p "$DIR/apt/sources.list.d"
for sources in /etc/apt/sources.list.d/*.sources; do
    if [ -e "$sources" ]; then
        sed 's/^Types: deb$/Types: deb-src/' "$sources" >"$DIR/apt/sources.list.d/${sources##*/}"
    fi
done
sed -n 's/^deb /deb-src /p' /etc/apt/sources.list 2>/dev/null >"$DIR/apt/sources.list" || true
APT=(-o "Dir::Etc::SourceList=$DIR/apt/sources.list"
    -o "Dir::Etc::SourceParts=$DIR/apt/sources.list.d" -o "Dir::State::Lists=$DIR/apt/lists")
apt-get "${APT[@]}" update -q
(cd "$DIR/src" && apt-get "${APT[@]}" source --download-only zeromq3 2>&1 | sed '/unsandboxed/d')
tar -xzf "$DIR"/src/zeromq3_*.orig.tar.gz -C "$DIR/src"

# The compiler's warnings about libzmq's own code go to a log, shown only if a step fails.
LOG="$DIR/build.log"
step "$LOG" cmake -S "$DIR"/src/libzmq-* -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$DIR/libzmq" -DENABLE_DRAFTS=ON -DWITH_LIBSODIUM=ON \
    -DBUILD_TESTS=OFF -DBUILD_STATIC=OFF -DWITH_DOCS=OFF -DWITH_PERF_TOOL=OFF
step "$LOG" cmake --build "$DIR/build" --parallel "$(nproc)"
step "$LOG" cmake --install "$DIR/build"

fresh_venv "$DIR/venv"
# pyzmq finds this libzmq through ZMQ_PREFIX and links it with an rpath, so the venv works
# without LD_LIBRARY_PATH.
ZMQ_PREFIX="$DIR/libzmq" ZMQ_DRAFT_API=1 \
    step "$LOG" python -m pip install --no-binary pyzmq --no-cache-dir pyzmq
step "$LOG" python -m pip install -e ".[test]"
python -c "import zmq; assert zmq.DRAFT_API, 'pyzmq built without the draft API';
print('pyzmq', zmq.__version__, 'libzmq', zmq.zmq_version(), 'draft API', zmq.DRAFT_API)"
