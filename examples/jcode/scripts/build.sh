#!/usr/bin/env bash
# BEFORE: an excerpt of the kind of wrapper this example replaces (the real one
# was ~1,100 lines). Kept for comparison only; nothing runs it.
set -euo pipefail

PROFILE="${JCODE_PROFILE:-selfdev}"
FEATURES="${JCODE_FEATURES:-}"

mem_avail_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
mem_total_kib=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
swap_kib=$(awk '/SwapTotal/ {print $2}' /proc/meminfo)
jobs=$(( mem_avail_kib / (1792 * 1024) ))
(( jobs < 1 )) && jobs=1
(( jobs > $(nproc) )) && jobs=$(nproc)
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-$jobs}"

# Small laptop, no swap, earlyoom watching: keep incremental and split codegen.
if [[ "${JCODE_SELFDEV_LOW_MEMORY:-auto}" == 1 ]] || {
     [[ "${JCODE_SELFDEV_LOW_MEMORY:-auto}" == auto ]] && (( swap_kib == 0 )) &&
     (( mem_total_kib < 24 * 1024 * 1024 )) && (( mem_avail_kib < 8 * 1024 * 1024 )) && pgrep -x earlyoom >/dev/null; }; then
    export CARGO_INCREMENTAL=1
    export CARGO_PROFILE_SELFDEV_INCREMENTAL=true
    export CARGO_PROFILE_SELFDEV_CODEGEN_UNITS=256
    NO_SCCACHE=1
fi

if [[ "${JCODE_FAST_LINKER:-1}" == 1 ]]; then
    if command -v mold >/dev/null && command -v clang >/dev/null; then
        export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=clang
        export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-fuse-ld=mold"   # shadows .cargo/config rustflags!
    elif command -v ld.lld >/dev/null && command -v clang >/dev/null; then
        export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=clang
        export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-fuse-ld=lld"
    fi
fi

if [[ -z "${NO_SCCACHE:-}" && "$PROFILE" != selfdev ]] && command -v sccache >/dev/null; then
    export RUSTC_WRAPPER=sccache
fi

case "$FEATURES" in
    minimal)    feature_args=(--no-default-features) ;;
    pdf)        feature_args=(--no-default-features --features pdf) ;;
    embeddings) feature_args=(--no-default-features --features embeddings) ;;
    full)       feature_args=(--all-features) ;;
    "")         feature_args=() ;;
    *)          echo "unknown JCODE_FEATURES=$FEATURES" >&2; exit 2 ;;
esac

[[ -n "${CI:-}" ]] && export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"

exec cargo build --profile "$PROFILE" "${feature_args[@]}" "$@"
