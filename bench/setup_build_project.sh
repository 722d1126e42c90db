#!/usr/bin/env bash
# Set up a real, third-party Rust project that builds offline, for bench/build_speed.py.
#
#   bench/setup_build_project.sh [DIR]
#
# The project is the Debian source package of a Rust program (default `rust-ripgrep`,
# i.e. ripgrep 13, which nobody on this team wrote), built against the crates Debian
# ships as `librust-*-dev` packages under /usr/share/cargo/registry. crates.io is never
# contacted and nothing is vendored into our repository: everything lives under DIR
# (default: $XDG_CACHE_HOME/buildpolicy-bench, i.e. ~/.cache/buildpolicy-bench).
#
# Steps, each skipped when already done (the script is idempotent):
#   1. make sure apt knows deb-src entries for this Debian suite (adds
#      /etc/apt/sources.list.d/buildpolicy-bench-src.sources if none exists), then
#      `apt-get update` at most once per run;
#   2. install dpkg-dev (for `apt-get source`) and the `librust-*-dev` packages named in
#      the source package's Build-Depends — only those: debhelper/dh-cargo would pull in
#      Debian's own rustc/cargo, and we build with rustup's toolchains;
#   3. `apt-get source` the package into DIR/src and link it as DIR/project;
#   4. copy and `[patch]` the few registry crates whose build scripts break on today's
#      nightly (used by the parallel front-end configurations), see below;
#   5. write DIR/project/.cargo/config.toml replacing crates-io with the Debian registry
#      directory, offline, plus those patches;
#   6. generate Cargo.lock once (so every benchmarked configuration builds exactly the same
#      dependency versions) and check that `cargo build --offline` works with rustup's
#      stable toolchain (and nightly, if installed), into DIR/verify-target-<toolchain>.
#
# Environment: BUILDPOLICY_BENCH_SRC_PKG picks another source package (e.g. rust-fd-find,
# rust-hexyl); SKIP_VERIFY_BUILD=1 skips the verification build of step 5.
# Needs root, or sudo, for apt. On success the last line of stdout is the project path.

set -euo pipefail

SRC_PKG=${BUILDPOLICY_BENCH_SRC_PKG:-rust-ripgrep}
DIR=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/buildpolicy-bench}
REGISTRY=/usr/share/cargo/registry
SRC_LIST=/etc/apt/sources.list.d/buildpolicy-bench-src.sources

log() { printf 'setup_build_project: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    die "apt needs root: run as root or install sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# `apt-get update` runs at most once per invocation, and only when something needs it.
UPDATED=0
apt_update() {
    if [ "$UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${SUDO[@]}" apt-get update -qq >&2
        UPDATED=1
    fi
}

has_showsrc() { [ -n "$(apt-cache showsrc "$SRC_PKG" 2>/dev/null)" ]; }

# ---------------------------------------------------------------- 1. deb-src entries
[ -r /etc/os-release ] || die "no /etc/os-release: this script is for Debian"
# shellcheck disable=SC1091
. /etc/os-release
[ "${ID:-}" = debian ] || [[ " ${ID_LIKE:-} " == *" debian "* ]] || die "not a Debian system (ID=${ID:-?})"
SUITE=${VERSION_CODENAME:?cannot tell the Debian suite from /etc/os-release}

if ! has_showsrc; then
    if ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        log "no deb-src entries: adding $SRC_LIST for $SUITE"
        "${SUDO[@]}" tee "$SRC_LIST" >/dev/null <<EOF
# Added by buildpolicy bench/setup_build_project.sh: source packages for the build-speed benchmark.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    apt_update
    has_showsrc || die "apt-cache showsrc $SRC_PKG finds nothing, even with deb-src entries"
fi

# ---------------------------------------------------------------- 2. build dependencies
# The librust-*-dev names of Build-Depends (and -Arch/-Indep) of the newest version,
# without version constraints or arch qualifiers; of alternatives (`a | b`) the first one
# apt can install. Most names are virtual packages (`librust-clap-2+suggestions-dev`,
# provided by `librust-clap-dev`): apt-get resolves those itself.
build_deps() {
    apt-cache showsrc "$SRC_PKG" \
        | awk '/^Package:/ { n++ } n == 1 && /^Build-Depends(-Arch|-Indep)?:/ { sub(/^[^:]*:/, ""); print }' \
        | tr ',' '\n' \
        | while IFS= read -r alternatives; do
            IFS='|' read -ra alts <<<"$alternatives"
            for alt in "${alts[@]}"; do
                name=$(sed -E 's/\(.*\)//; s/\[.*\]//; s/<.*>//; s/:[a-z]+//; s/[[:space:]]//g' <<<"$alt")
                case $name in librust-*) ;; *) continue ;; esac
                if [ "${#alts[@]}" -eq 1 ] || apt-get -s -qq install "$name" >/dev/null 2>&1; then
                    echo "$name"
                    break
                fi
            done
        done | sort -u
}

# True when installing "$@" would change nothing (works for virtual package names too).
all_installed() {
    ! apt-get -s install --no-install-recommends "$@" 2>/dev/null | grep -q '^Inst '
}

mapfile -t DEPS < <(build_deps)
[ "${#DEPS[@]}" -gt 0 ] || die "no librust-*-dev Build-Depends found for $SRC_PKG"
if ! all_installed dpkg-dev "${DEPS[@]}"; then
    log "installing dpkg-dev and ${#DEPS[@]} librust-*-dev packages (with their dependencies)"
    if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends dpkg-dev "${DEPS[@]}" >&2; then
        apt_update   # stale package lists: a 404 from the mirror
        "${SUDO[@]}" apt-get install -y -qq --no-install-recommends dpkg-dev "${DEPS[@]}" >&2
    fi
else
    log "build dependencies already installed (${#DEPS[@]} librust-*-dev packages)"
fi
[ -d "$REGISTRY" ] || die "$REGISTRY missing after installing the librust-*-dev packages"

# ---------------------------------------------------------------- 3. the source package
mkdir -p "$DIR/src"
PROJECT="$DIR/project"
if [ ! -f "$PROJECT/Cargo.toml" ]; then
    log "apt-get source $SRC_PKG into $DIR/src"
    # Unpacked as an unprivileged operation in our own directory; dpkg-source applies
    # Debian's patches (which align dependency versions with the registry).
    (cd "$DIR/src" && apt-get source -qq "$SRC_PKG" >&2)
    unpacked=$(find "$DIR/src" -mindepth 2 -maxdepth 2 -name Cargo.toml -printf '%h\n' | sort | tail -n1)
    [ -n "$unpacked" ] || die "apt-get source $SRC_PKG unpacked no Cargo.toml"
    ln -sfn "$unpacked" "$PROJECT"
fi
PROJECT=$(readlink -f "$PROJECT")

# Debian builds with its own cargo, which tolerates a few things rustup's does not. The
# fix-ups below are the minimum for rustup's stable cargo to resolve the default package;
# none changes what a default build compiles. Another package may need its own.
case $SRC_PKG in
rust-ripgrep)
    # The off-by-default `simd-accel = ["grep/simd-accel"]` names a feature Debian's
    # grep crate removed (with its packed_simd dependency); cargo refuses to resolve it.
    sed -i '/^simd-accel = \["grep\/simd-accel"\]$/d' "$PROJECT/Cargo.toml"
    ;;
esac

# ---------------------------------------------------------------- 4. nightly compatibility
# The parallel front-end builds everything with today's nightly, and two crates of
# Debian bookworm's snapshot detect "nightly" in their build scripts and then enable
# unstable features that nightly has since removed (E0635): ahash 0.7.6 (`stdsimd`;
# upstream dropped the probe in 0.7.7) and proc-macro2 1.0.47 (`proc_macro_span_shrink`;
# upstream probes by compiling since 1.0.60). Cargo `[patch]`es them with copies under
# DIR/patched-crates whose build scripts never take the nightly branch — what their newer
# versions do. Stable builds compile the very same code (the branch is nightly-only).
# Each entry: crate-version, then a (basic regex) sed expression for its build.rs.
NIGHTLY_FIXES=(
    'ahash-0.7.6'        's/if channel\.supports_features() {/if false \&\& channel.supports_features() {/'
    'proc-macro2-1.0.47' 's/let nightly = version\.contains("nightly") || version\.contains("dev");/let nightly = false;/'
)
PATCHES=""
for ((i = 0; i < ${#NIGHTLY_FIXES[@]}; i += 2)); do
    crate=${NIGHTLY_FIXES[i]} expr=${NIGHTLY_FIXES[i + 1]}
    [ -d "$REGISTRY/$crate" ] || continue      # another package's dependency set
    patched="$DIR/patched-crates/$crate"
    if [ ! -f "$patched/.patched-by-buildpolicy-bench" ]; then
        log "patching $crate for nightly (copy in $patched)"
        rm -rf "$patched"
        mkdir -p "$DIR/patched-crates"
        cp -r "$REGISTRY/$crate" "$patched"
        rm -f "$patched/.cargo-checksum.json"   # a path dependency: not checked
        before=$(cat "$patched/build.rs")
        sed -i "$expr" "$patched/build.rs"
        [ "$(cat "$patched/build.rs")" != "$before" ] || die "the nightly fix for $crate no longer matches its build.rs"
        touch "$patched/.patched-by-buildpolicy-bench"
    fi
    PATCHES+="${crate%-*} = { path = \"$patched\" }"$'\n'
done

# ---------------------------------------------------------------- 5. cargo configuration
mkdir -p "$PROJECT/.cargo"
CONFIG="$PROJECT/.cargo/config.toml"
WANT_CONFIG="# Written by buildpolicy bench/setup_build_project.sh: build offline from Debian's crates.
[source.crates-io]
replace-with = \"debian\"

[source.debian]
directory = \"$REGISTRY\"

[net]
offline = true"
if [ -n "$PATCHES" ]; then
    WANT_CONFIG+=$'\n\n'"# Nightly compatibility (see the setup script)."$'\n'"[patch.crates-io]"$'\n'"${PATCHES%$'\n'}"
fi
if [ ! -f "$CONFIG" ] || [ "$(cat "$CONFIG")" != "$WANT_CONFIG" ]; then
    log "writing $CONFIG"
    printf '%s\n' "$WANT_CONFIG" >"$CONFIG"
fi

# ---------------------------------------------------------------- 6. lock and verify
# rustup's cargo, never Debian's (/usr/bin/cargo, if some package pulled it in).
CARGO=${CARGO:-$HOME/.cargo/bin/cargo}
[ -x "$CARGO" ] || CARGO=$(command -v cargo) || die "no cargo found"
# Upstream's own Cargo.lock pins crates.io versions Debian may not have (dh-cargo drops
# it too): set it aside and resolve against the registry. The stamp holds the cargo
# configuration the lock was made with, so a changed configuration makes a new lock.
LOCK_STAMP="$DIR/.cargo-lock-config"
if [ ! -f "$PROJECT/Cargo.lock" ] || [ "$(cat "$LOCK_STAMP" 2>/dev/null)" != "$WANT_CONFIG" ]; then
    if [ -f "$PROJECT/Cargo.lock" ] && [ ! -f "$PROJECT/Cargo.lock.upstream" ]; then
        mv "$PROJECT/Cargo.lock" "$PROJECT/Cargo.lock.upstream"
    fi
    log "generating Cargo.lock from $REGISTRY"
    (cd "$PROJECT" && rm -f Cargo.lock && RUSTUP_TOOLCHAIN=stable "$CARGO" generate-lockfile --offline >&2)
    printf '%s\n' "$WANT_CONFIG" >"$LOCK_STAMP"
fi
if [ "${SKIP_VERIFY_BUILD:-0}" != 1 ]; then
    # No wrapper and no inherited flags: this checks the project, not anybody's setup.
    # Stable always; nightly too when rustup has one (the front-end configurations use it).
    toolchains=(stable)
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then toolchains+=(nightly); fi
    for tc in "${toolchains[@]}"; do
        log "verifying: cargo +$tc build --offline --locked (target dir $DIR/verify-target-$tc)"
        if ! (cd "$PROJECT" && env -u RUSTC_WRAPPER -u CARGO_BUILD_RUSTC_WRAPPER -u RUSTFLAGS \
            -u CARGO_BUILD_RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
            RUSTUP_TOOLCHAIN="$tc" CARGO_TARGET_DIR="$DIR/verify-target-$tc" \
            "$CARGO" build --offline --locked >"$DIR/verify-$tc.log" 2>&1); then
            tail -n 30 "$DIR/verify-$tc.log" >&2
            die "cargo +$tc build failed (full log: $DIR/verify-$tc.log)"
        fi
    done
fi
log "ready: $PROJECT"
echo "$PROJECT"
