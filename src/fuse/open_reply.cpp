/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "open_reply.hpp"

#include <sys/uio.h>

/* Only this file sees the kernel's protocol structures. */
#include <linux/fuse.h>

namespace cgloopfs::fuse {

int reply_open(fuse_req_t req, uint64_t fh, bool direct_io, bool keep_cache)
{
	struct fuse_open_out out = {};
	out.fh = fh;
	/*
	 * No flush on close: writes reach the backing file as they come (our
	 * FLUSH has nothing to do), and the kernel would otherwise make every
	 * close wait for the inode's whole writeback, whoever's it is.
	 */
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
