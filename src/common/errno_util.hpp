/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Named classes of errno values, in the manner of systemd's ERRNO_IS_*():
 * what an I/O error means is written here once, not at each call site.
 * Each predicate takes an errno either way round (EIO or -EIO). Reentrant.
 */
#pragma once

#include <cerrno>

namespace cgloopfs {

namespace errno_detail {
constexpr int positive(int err)
{
	return err < 0 ? -err : err;
}
} /* namespace errno_detail */

/*
 * The caller's own error: the request itself is refused (a write at or past
 * the end of the window, to a read-only image), not the backing store
 * failing. The caller hears of it; it is not worth a log line.
 */
constexpr bool errno_is_callers(int err)
{
	err = errno_detail::positive(err);
	return err == ENOSPC || err == EROFS;
}

/*
 * The operation or its arguments are not supported: a discard mode the
 * image (or its backing file) does not do, or a range it refuses. For a
 * discard, which the caller chose, this is the caller's error too.
 */
constexpr bool errno_is_unsupported(int err)
{
	err = errno_detail::positive(err);
	return err == EOPNOTSUPP || err == EINVAL;
}

/*
 * An error a FUSE caller may see as it is; every other backing-store
 * failure is reported as EIO, as loop.c does (it passes only EOPNOTSUPP).
 */
constexpr bool errno_passes_through(int err)
{
	switch (errno_detail::positive(err)) {
	case EOPNOTSUPP:
	case ENOSPC:
	case EDQUOT:
	case EROFS:
	case EFBIG:
	case EINVAL:
	case ENOMEM:
	case EINTR:
	case EPERM:
		return true;
	default:
		return false;
	}
}

/* The errno a caller sees for a backing-store error `err` (positive). */
constexpr int errno_for_caller(int err)
{
	return errno_passes_through(err) ? errno_detail::positive(err) : EIO;
}

} /* namespace cgloopfs */
