#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# The main job, end to end: install what is needed, build, make a sample
# image, mount it with cgloopfs, do I/O to it from two cgroups and show how
# each was served. The mount stays up; the last line says how to stop it.
# Run as root from a clone: ./scripts/demo.sh
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

./scripts/install-deps.sh
[ -f build-demo/build.ninja ] || meson setup build-demo --wrap-mode=nofallback -Dtests=false >/dev/null
ninja -C build-demo >/dev/null
bin="$top/build-demo/src"

demo=/var/tmp/cgloopfs-demo
mnt="$demo/mnt"
mkdir -p "$mnt"
if grep -q " $mnt fuse.cgloopfs " /proc/self/mountinfo; then
    echo "== an earlier demo mount is still up; unmounting it"
    umount "$mnt"
    sleep 1
fi
rm -f "$demo/sample.img"
truncate -s 256M "$demo/sample.img"
cat >"$demo/images.toml" <<TOML
# Two windows of one backing file, as losetup --offset/--sizelimit would make.
[[image]]
name = "system.img"
path = "$demo/sample.img"
size_limit = "128MiB"

[[image]]
name = "data.img"
path = "$demo/sample.img"
offset = "128MiB"
TOML

echo "== mounting $demo/images.toml on $mnt"
"$bin/cgloopfs" -o idle_timeout=30 "$demo/images.toml" "$mnt"
ls -l "$mnt"

# Two cgroups doing I/O at once: each is served by its own worker.
cg=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo)
mkdir -p "$cg/cgloopfs-demo-a" "$cg/cgloopfs-demo-b"
echo "== cgroup /cgloopfs-demo-a writes 64 MiB to system.img; /cgloopfs-demo-b reads data.img"
sh -c "echo \$\$ > $cg/cgloopfs-demo-a/cgroup.procs && exec dd if=/dev/urandom of=$mnt/system.img bs=1M count=64 oflag=direct conv=notrunc,fsync status=none" &
a=$!
sh -c "echo \$\$ > $cg/cgloopfs-demo-b/cgroup.procs && exec dd if=$mnt/data.img of=/dev/null bs=1M count=128 iflag=direct status=none" &
b=$!
wait $a $b
cmp -n $((64 << 20)) "$mnt/system.img" "$demo/sample.img" && echo "== system.img and the backing file agree"
rmdir "$cg/cgloopfs-demo-a" "$cg/cgloopfs-demo-b"

echo "== cgloopctl list (as losetup --list)"
"$bin/cgloopctl" list "$mnt"
echo "== cgloopctl workers"
"$bin/cgloopctl" workers "$mnt"
echo "== cgloopctl stats"
"$bin/cgloopctl" stats "$mnt"
echo
echo "cgloopfs is serving $mnt (workers idle for 30 s are reaped)."
echo "Stop it with:  umount $mnt"
