/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "open_reply.hpp"

#include <sys/uio.h>

/* Only this file sees the kernel's protocol structures. */
#include <linux/fuse.h>

namespace cgloopfs::fuse {

int reply_open(fuse_req_t req, uint64_t fh, bool direct_io, bool keep_cache, bool flush)
{
	struct fuse_open_out out = {};
	out.fh = fh;
	/*
	 * Writes reach the backing file as they come: FLUSH has no data to
	 * write, and the kernel makes each close wait for the inode's whole
	 * writeback first (pages dirtied through a shared mapping), whoever's
	 * it is. Asked for only where it does something (ops.cpp: op_flush).
	 */
	if (!flush)
		out.open_flags |= FOPEN_NOFLUSH;
	if (direct_io)
		out.open_flags |= FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
	if (keep_cache)
		out.open_flags |= FOPEN_KEEP_CACHE;
	struct iovec iov;
	iov.iov_base = &out;
	iov.iov_len = sizeof(out);
	return fuse_reply_iov(req, &iov, 1);
}

} /* namespace cgloopfs::fuse */
