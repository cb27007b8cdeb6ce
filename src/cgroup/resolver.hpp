/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Resolver: a caller's thread id (from the FUSE request) to its cgroup v2.
 *
 * The key is the cgroup id (the inode number of the cgroup directory), read
 * through a pidfd of the thread (PIDFD_THREAD + PIDFD_GET_INFO, kernel
 * 6.13+), else from /proc/TID/cgroup and the cgroup directory's inode. The
 * caller is blocked in its request while we resolve, so its tid cannot be
 * reused under us.
 *
 * Opening and closing a pidfd costs far more than asking it (5 us against
 * 0.8 us here), so each thread keeps a small cache of pidfds by tid. It
 * caches the thread, never its cgroup: the cgroup is asked anew on every
 * request (a thread may move), and a pidfd whose thread has gone answers
 * ESRCH even when its tid was reused, so a stale entry is reopened, never
 * trusted. The cache keeps only live threads: a pidfd that answers ESRCH is
 * closed, and each miss first closes every cached pidfd whose thread has
 * exited (one poll(2)), so short-lived callers leave no pidfds behind.
 * Thread-safe (the cache is per thread); no logging above debug.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CGROUP
#error "cgroup/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include <sys/types.h>

#include "common/unique_fd.hpp"

namespace cgloopfs::cgroup {

enum class Method { pidfd_info, proc_file, none };

class Resolver
{
public:
	/* Finds the cgroup2 mount in /proc/self/mountinfo and probes PIDFD_GET_INFO. */
	Resolver();

	/*
	 * The cgroup id of thread `tid`; 0 when it cannot be known (tid 0, gone,
	 * no v2) or is the root cgroup: both are served by the root queue.
	 */
	uint64_t cgroup_id(pid_t tid) const noexcept;

	/* The cgroup path of `tid` for display ("/a/b"); "" when unknown. */
	std::string path(pid_t tid) const;

	Method method() const { return method_; }
	const std::string &mount_point() const { return mount_; }

	/* Each way on its own, for tests and the resolution benchmark. */
	uint64_t id_by_cached_pidfd(pid_t tid) const noexcept;
	uint64_t id_by_pidfd(pid_t tid) const noexcept;
	uint64_t id_by_proc(pid_t tid) const noexcept;
	/* How many pidfds the calling thread's cache holds open, for tests. */
	static size_t cached_pidfds() noexcept;

private:
	std::string mount_;
	UniqueFd root_fd_;     /* the cgroup2 mount, O_PATH */
	uint64_t root_id_ = 0; /* the id of the root cgroup (of our namespace) */
	Method method_ = Method::none;
};

} /* namespace cgloopfs::cgroup */
