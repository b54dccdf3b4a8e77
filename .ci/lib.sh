# shellcheck shell=bash
# Helpers shared by the CI scripts that build wheels and run the suite on
# other Pythons (.ci/wheels, .ci/pythons, .ci/freethreaded,
# .ci/check-build-identifiers): the cache directory, timed steps, tool
# virtual environments, and cached Debian chroots.  Sourced, not run.
#
# Everything slow (chroots, tool venvs, the zig cache, a CPython build) is
# kept under $SMARTBUS_CACHE (default ~/.cache/smartbus-ci), each entry with
# a stamp written last, so an interrupted run is redone and a finished one
# is reused.  Delete the directory to start cold.

# a failure inside $(...) fails the assignment, as everywhere else
shopt -s inherit_errexit

CI_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$CI_DIR")"
CACHE="${SMARTBUS_CACHE:-$HOME/.cache/smartbus-ci}"
DEBIAN_MIRROR="${SMARTBUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$CACHE"
SCRIPT_START=$SECONDS

# step TITLE CMD...: runs CMD and prints how long it took (on failure too,
# from the EXIT trap below).
step() {
    STEP_TITLE="$1"
    STEP_START=$SECONDS
    shift
    echo "== $STEP_TITLE"
    "$@"
    echo "   ($STEP_TITLE: $((SECONDS - STEP_START)) s)"
    STEP_TITLE=""
}

# finish: the closing line of a script, with its total time.
finish() {
    echo "== $(basename "$0"): done in $((SECONDS - SCRIPT_START)) s"
}

# at_exit CMD: CMD (a string) runs when the script exits, however it exits.
CLEANUPS=()
at_exit() {
    CLEANUPS+=("$1")
}
on_exit() {
    local rc=$? cleanup
    if [ -n "${STEP_TITLE:-}" ]; then
        echo "   ($STEP_TITLE: FAILED after $((SECONDS - STEP_START)) s)" >&2
        echo "== $(basename "$0"): FAILED after $((SECONDS - SCRIPT_START)) s" >&2
    fi
    for cleanup in "${CLEANUPS[@]}"; do eval "$cleanup" || true; done
    return "$rc"
}
trap on_exit EXIT

# apt_install PKG...: installs the Debian packages that are not installed.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "   apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# tool_venv NAME REQUIREMENTS_FILE: prints the path of a cached venv (made
# with the host's python3) holding exactly these pinned requirements.
tool_venv() {
    local venv="$CACHE/venv-$1" reqs="$2"
    if ! cmp -s "$reqs" "$venv/.smartbus-ready" 2>/dev/null; then
        rm -rf "$venv"
        { python3 -m venv "$venv" &&
          "$venv/bin/python" -m pip install -q --upgrade pip &&
          "$venv/bin/python" -m pip install -q -r "$reqs"; } >&2 || return 1
        cp "$reqs" "$venv/.smartbus-ready"
    fi
    echo "$venv"
}

# copy_tree DEST: the tracked files of this checkout (as they are in the
# work tree) copied to DEST, so builds never write into the checkout.
copy_tree() {
    mkdir -p "$1"
    (cd "$ROOT" && git ls-files -z | xargs -0 cp --parents -t "$1")
}

# enable_qemu_aarch64: lets this x86-64 host run arm64 binaries (binfmt_misc
# with qemu-user-static's "fix binary" flag, so they run inside chroots).
enable_qemu_aarch64() {
    apt_install qemu-user-static binfmt-support
    [ -e /proc/sys/fs/binfmt_misc/register ] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
    grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64
}

# unmount_below DIR: unmounts whatever a killed run left mounted under DIR,
# so that removing DIR can never reach the host's /dev, /proc or /sys.
unmount_below() {
    local mnt
    awk -v d="$1/" 'index($2 "/", d) == 1 { print $2 }' /proc/self/mounts | sort -r \
        | while read -r mnt; do umount -l "$mnt"; done
}

# debian_chroot NAME SUITE ARCH PACKAGES: makes (once) a minimal Debian
# chroot $CACHE/chroots/NAME with the comma-separated PACKAGES, and prints
# its path.  The host's CA bundle and resolver are copied in each time:
# pip inside needs them (the host's bundle may hold a proxy's CA).
debian_chroot() {
    local name="$1" suite="$2" arch="$3" packages="$4"
    local dir="$CACHE/chroots/$name" wanted="$2 $3 $4"
    [ "$arch" = amd64 ] || enable_qemu_aarch64 >&2
    if [ "$(cat "$dir/.smartbus-ready" 2>/dev/null)" != "$wanted" ]; then
        apt_install debootstrap >&2
        mkdir -p "$CACHE/chroots"
        unmount_below "$dir.partial"; rm -rf --one-file-system "$dir.partial"
        echo "   debootstrap $suite/$arch (log: $dir.log)" >&2
        # its own mount namespace: mounts debootstrap makes vanish with it
        if ! unshare --mount --propagation private -- debootstrap --variant=minbase \
                --arch="$arch" --include="$packages" "$suite" "$dir.partial" \
                "$DEBIAN_MIRROR" >"$dir.log" 2>&1; then
            tail -20 "$dir.log" >&2
            return 1
        fi
        unmount_below "$dir"; rm -rf --one-file-system "$dir"
        echo "$wanted" >"$dir.partial/.smartbus-ready"
        mv "$dir.partial" "$dir"
    fi
    cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
    cp -L /etc/resolv.conf "$dir/etc/resolv.conf"
    echo "$dir"
}

# in_chroot DIR CMD...: runs CMD in the chroot DIR with /proc, /dev and /sys
# mounted in a private mount namespace (they vanish when CMD ends, however
# it ends) and a clean environment: the host's pip settings and
# SMARTBUS_* paths mean nothing inside.  pip is pointed at the chroot's CA
# bundle (the host's copy): without truststore (Python < 3.10) a pip from
# PyPI would use its own certifi bundle instead.  CMD may start with
# NAME=VALUE words (env(1) syntax) to set variables.
in_chroot() {
    unshare --mount --propagation private -- /bin/sh -c '
        dir="$1"; shift
        mount -t proc proc "$dir/proc" && mount --rbind /dev "$dir/dev" &&
        mount --rbind /sys "$dir/sys" &&
        exec chroot "$dir" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
            PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$@"' \
        in_chroot "$@"
}

# The chroots the scripts share (one package list each, so that no script
# rebuilds another's chroot):
#  bullseye: CPython 3.9;  trixie: CPython 3.13 (3.14 and 3.13t sources are
#  added to it by .ci/pythons and .ci/freethreaded);  bookworm arm64:
#  CPython 3.11 under qemu, for the aarch64 wheel.  (python3-distutils is
#  named because debootstrap does not resolve python3.X-venv's dependency
#  on the virtual package python3.X-distutils by itself.)
chroot_bullseye() {
    debian_chroot bullseye-amd64 bullseye amd64 \
        python3.9,python3.9-dev,python3.9-venv,python3-distutils,gcc,libc6-dev,ca-certificates
}
chroot_trixie() {
    debian_chroot trixie-amd64 trixie amd64 \
        python3.13,python3.13-dev,python3.13-venv,gcc,libc6-dev,ca-certificates
}
chroot_bookworm_arm64() {
    debian_chroot bookworm-arm64 bookworm arm64 \
        python3.11,python3.11-venv,python3-distutils,libpython3.11-dev,ca-certificates
}
