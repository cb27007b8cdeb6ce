/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The OPEN reply built by hand: libfuse 3.14's fuse_file_info cannot ask for
 * FOPEN_PARALLEL_DIRECT_WRITES, without which the kernel serializes direct
 * writes to one file behind its inode lock (one stalled cgroup would block
 * every other cgroup's writes to that image).
 */
#pragma once

#ifndef CGLOOPFS_LAYER_FUSE
#error "fuse/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>

#include <fuse_lowlevel.h>

namespace cgloopfs::fuse {

/*
 * Reply to OPEN with handle `fh`; returns fuse_reply_iov's result (-ENOENT:
 * interrupted). `flush`: the kernel sends FLUSH on each close.
 */
int reply_open(fuse_req_t req, uint64_t fh, bool direct_io, bool keep_cache, bool flush);

} /* namespace cgloopfs::fuse */
