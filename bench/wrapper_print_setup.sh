#!/usr/bin/env bash
# The baseline `buildpolicy env` must beat at a prompt (DESIGN §10): the `--print-setup`
# of a bash build wrapper (examples/jcode/scripts/build.sh is an excerpt of one), making
# the same probes a replayed `env` of the shipped policies re-checks, and printing the
# same kind of exports. Written as a careful wrapper author would: one awk for
# /proc/meminfo, bash builtins wherever they do.
set -euo pipefail

read -r mem_total_kib mem_avail_kib swap_kib < <(awk '
    /^MemTotal:/ {t = $2} /^MemAvailable:/ {a = $2} /^SwapTotal:/ {s = $2}
    END {print t, a, s}' /proc/meminfo)
cpus=$(nproc)

# cgroup v2 memory limit and usage of this process's cgroup (a container's limit binds).
limit=max
if IFS=: read -r _ _ cgroup_path < /proc/self/cgroup && [[ -r /sys/fs/cgroup${cgroup_path}/memory.max ]]; then
    read -r limit < "/sys/fs/cgroup${cgroup_path}/memory.max"
fi
if [[ "$limit" != max ]]; then
    (( mem_total_kib = limit / 1024 < mem_total_kib ? limit / 1024 : mem_total_kib ))
    (( mem_avail_kib = mem_avail_kib < mem_total_kib ? mem_avail_kib : mem_total_kib ))
fi

# Is /tmp in memory? (the tmpdir decision)
tmp_fs=$(stat -f -c %T /tmp)

# The cargo profile's incremental setting and rustflags in cargo config, walking up.
config_rustflags=""
dir=$PWD
while :; do
    for name in config.toml config; do
        if [[ -f "$dir/.cargo/$name" ]] && grep -q rustflags "$dir/.cargo/$name"; then config_rustflags=1; fi
    done
    [[ "$dir" == / ]] && break
    dir=$(dirname "$dir")
done
[[ -f "${CARGO_HOME:-$HOME/.cargo}/config.toml" ]] && grep -q rustflags "${CARGO_HOME:-$HOME/.cargo}/config.toml" && config_rustflags=1

jobs=$(( mem_avail_kib / (1792 * 1024) ))
(( jobs < 1 )) && jobs=1
(( jobs > cpus )) && jobs=$cpus
echo "export CARGO_BUILD_JOBS='${CARGO_BUILD_JOBS:-$jobs}'"

if (( swap_kib == 0 && mem_total_kib < 24 * 1024 * 1024 && mem_avail_kib < 8 * 1024 * 1024 )); then
    echo "export CARGO_INCREMENTAL='1'"
fi

if command -v mold >/dev/null && command -v clang >/dev/null && [[ -z "$config_rustflags" ]]; then
    echo "export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER='$(command -v clang)'"
    echo "export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C link-arg=-fuse-ld=mold'"
fi
if [[ "$tmp_fs" == tmpfs || "$tmp_fs" == ramfs ]]; then  # keep big temporary files out of memory
    echo "export TMPDIR='${XDG_CACHE_HOME:-$HOME/.cache}/wrapper/tmp'"
fi
