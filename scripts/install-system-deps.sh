#!/usr/bin/env bash
# Install the Debian packages buildpolicy's tests use: real shells to `eval`
# the output in, the fast linkers and sccache the decisions pick, an sshd and
# rsync for remote builds on loopback, direnv, and shellcheck for the bench
# scripts, redis-server for the shared-cache end-to-end tests and bubblewrap
# (sccache-dist's build server sandbox), and a cross toolchain for aarch64 (the
# linker's per-target decision builds a real foreign binary): the cross gcc and its
# libc, qemu-user to run the result, and Debian's own rustc and cargo with the arm64
# Rust standard library (rustup cannot download targets without network; Debian ships
# them as a multiarch package, so arm64 is added as a foreign architecture).
# Idempotent and quick when everything is present.
set -euo pipefail

packages=(zsh fish dash mold lld clang sccache openssh-server rsync direnv git shellcheck redis-server bubblewrap
          gcc-aarch64-linux-gnu qemu-user)
commands=(zsh fish dash mold ld.lld clang sccache sshd rsync direnv git shellcheck redis-server bwrap
          aarch64-linux-gnu-gcc qemu-aarch64)

missing=()
for i in "${!commands[@]}"; do
    # sshd lives in /usr/sbin, which a non-login PATH may lack.
    command -v "${commands[$i]}" >/dev/null 2>&1 || [ -x "/usr/sbin/${commands[$i]}" ] || missing+=("${packages[$i]}")
done
# Debian's rustc and cargo with the aarch64 standard library (they also stand in for
# rustup's cargo where there is none): bookworm's current Rust is rustc-web (1.85+),
# later releases call it rustc.
cross_std=0
if [ ! -d /usr/lib/rustlib/aarch64-unknown-linux-gnu/lib ] || [ ! -x /usr/bin/cargo ]; then
    cross_std=1
fi

[ "${#missing[@]}" -eq 0 ] && [ "$cross_std" -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ "$cross_std" -eq 1 ]; then
    dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64
fi
$SUDO apt-get update -qq
if [ "$cross_std" -eq 1 ]; then
    if apt-cache show rustc-web >/dev/null 2>&1; then
        missing+=(rustc-web cargo-web libstd-rust-web-dev:arm64)
    else
        missing+=(rustc cargo libstd-rust-dev:arm64)
    fi
fi
echo "installing Debian packages: ${missing[*]}" >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
