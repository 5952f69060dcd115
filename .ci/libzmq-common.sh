# Shared by the .ci/env-*.sh scripts (sourced, not run): a fresh virtualenv with txzmq2's
# test extras, and Debian packages installed only when missing.

# apt_install PACKAGE...: install what is not installed yet (needs root).
apt_install() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
            missing+=("$package")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "missing Debian packages (install them as root): ${missing[*]}" >&2
            return 1
        fi
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
}

# fresh_venv DIR: a new virtualenv at DIR, activated, with an up-to-date pip.
fresh_venv() {
    rm -rf "$1"
    "${PYTHON:-python3}" -m venv "$1"
    # shellcheck disable=SC1091
    source "$1/bin/activate"
    python -m pip install --quiet --upgrade pip
}

# step LOG COMMAND...: run a noisy build step with its output in LOG; when it fails, say which
# step and show the end of LOG (so a CI failure is never silent).
step() {
    local log="$1"
    shift
    "$@" >>"$log" 2>&1 || {
        local status=$?
        echo "FAILED (status $status): $*" >&2
        tail -n 60 "$log" >&2
        return "$status"
    }
}
