#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Install everything cgloopfs needs to build, test and benchmark, from
# Debian's packages. Run as root on Debian 12. clang with compiler-rt's
# libFuzzer (libclang-rt-14-dev) builds tests/fuzz; llvm brings the
# symbolizer for sanitizer stack traces. dpkg-dev, debhelper, fakeroot and
# lintian build and check the Debian package (scripts/package.sh);
# bash-completion gives the completions their directory (pkg-config) and
# the completion test its helpers; tmux is the real terminal the test of
# cgloopctl top types into and reads. prometheus-cpp-dev (with civetweb) makes
# the metrics= endpoint; prometheus (the server and promtool) is what
# test_metrics scrapes it with. runc, crun and busybox-static run the
# containers of test_containers.
set -eu

packages="
  meson ninja-build pkg-config g++ git
  libfuse3-dev fuse3 libsystemd-dev libfmt-dev doctest-dev
  libtomlplusplus-dev nlohmann-json3-dev libcli11-dev
  prometheus-cpp-dev libcivetweb-dev prometheus
  scdoc groff-base man-db
  python3 util-linux e2fsprogs fio procps kmod
  systemd strace
  nbdkit libnbd-bin
  qemu-utils qemu-system-common
  clang clang-format libclang-rt-14-dev llvm
  runc crun busybox-static tmux
  dpkg-dev debhelper fakeroot lintian bash-completion
"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "cgloopfs: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
# The FUSE kernel module is built in on most kernels; load it where it is not.
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
