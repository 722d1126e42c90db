#!/usr/bin/env bash
# The baseline `buildpolicy env` must beat at a prompt (DESIGN §10): the `--print-setup` of
# a bash build wrapper, making the probes a replayed `env` of the shipped policies makes
# again and printing the same exports. Its lines are those of the wrapper the examples
# replace (examples/jcode/scripts/build.sh: one awk per /proc/meminfo field, nproc in the
# arithmetic), plus the probes that excerpt leaves out, written in the same style.
set -euo pipefail

mem_avail_kib=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
mem_total_kib=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
swap_kib=$(awk '/SwapTotal/ {print $2}' /proc/meminfo)

# A container's memory limit binds (cgroup v2).
cgroup_path=$(cut -d: -f3 /proc/self/cgroup | head -n1)
limit=$(cat "/sys/fs/cgroup${cgroup_path}/memory.max" 2>/dev/null || echo max)
if [[ "$limit" != max ]] && (( limit / 1024 < mem_total_kib )); then
    mem_total_kib=$(( limit / 1024 ))
    (( mem_avail_kib > mem_total_kib )) && mem_avail_kib=$mem_total_kib
fi

arch=$(uname -m)
case "$(uname -s)" in
    Linux) triple="$arch-unknown-linux-gnu" ;;
    Darwin) triple="$arch-apple-darwin" ;;
    *) triple="" ;;
esac

# The profile's incremental setting, and rustflags in cargo config (which an exported
# RUSTFLAGS would shadow), from the directory up.
incremental=$(grep -A5 '^\[profile\.dev\]' Cargo.toml 2>/dev/null | grep -m1 '^incremental' | awk '{print $3}' || true)
config_rustflags=""
dir=$PWD
while :; do
    if [[ -f "$dir/.cargo/config.toml" ]] && grep -q rustflags "$dir/.cargo/config.toml"; then config_rustflags=1; fi
    [[ "$dir" == / ]] && break
    dir=$(dirname "$dir")
done

jobs=$(( mem_avail_kib / (1792 * 1024) ))
(( jobs < 1 )) && jobs=1
(( jobs > $(nproc) )) && jobs=$(nproc)
echo "export CARGO_BUILD_JOBS='${CARGO_BUILD_JOBS:-$jobs}'"

if (( swap_kib == 0 )) && (( mem_total_kib < 24 * 1024 * 1024 )) && (( mem_avail_kib < 8 * 1024 * 1024 )) \
        && [[ "${incremental:-true}" != false ]]; then
    echo "export CARGO_INCREMENTAL='1'"
fi

if command -v mold >/dev/null && command -v clang >/dev/null && [[ -z "$config_rustflags" ]]; then
    target=$(echo "$triple" | tr 'a-z-' 'A-Z_')
    echo "export CARGO_TARGET_${target}_LINKER='$(command -v clang)'"
    echo "export CARGO_TARGET_${target}_RUSTFLAGS='-C link-arg=-fuse-ld=mold'"
elif command -v ld.mold >/dev/null; then
    echo "export RUSTFLAGS='-C link-arg=-fuse-ld=mold'"
fi

# /tmp in memory: keep the build's big temporary files out of it.
if [[ "$(stat -f -c %T /tmp)" == tmpfs ]]; then
    echo "export TMPDIR='${XDG_CACHE_HOME:-$HOME/.cache}/wrapper/tmp'"
fi
