#!/usr/bin/env bash
# Install the Debian packages buildpolicy's tests use: real shells to `eval`
# the output in, the fast linkers and sccache the decisions pick, an sshd and
# rsync for remote builds on loopback, direnv, and shellcheck for the bench
# scripts, redis-server for the shared-cache end-to-end tests and bubblewrap
# (sccache-dist's build server sandbox). Idempotent and quick when everything is present.
set -euo pipefail

packages=(zsh fish dash mold lld clang sccache openssh-server rsync direnv git shellcheck redis-server bubblewrap)
commands=(zsh fish dash mold ld.lld clang sccache sshd rsync direnv git shellcheck redis-server bwrap)
# The machine image ships rustup's stable and nightly toolchains; where cargo is
# missing altogether, Debian's cargo still lets the end-to-end builds run.
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo" ]; then
    packages+=(cargo rustc)
    commands+=(cargo rustc)
fi

missing=()
for i in "${!commands[@]}"; do
    # sshd lives in /usr/sbin, which a non-login PATH may lack.
    command -v "${commands[$i]}" >/dev/null 2>&1 || [ -x "/usr/sbin/${commands[$i]}" ] || missing+=("${packages[$i]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
