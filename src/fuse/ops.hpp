/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FUSE low-level operations of cgloopfs. The callbacks run on libfuse's
 * session threads: they answer metadata requests at once, and for read,
 * write, fsync and fallocate they put what the request needs into an
 * IoRequest and hand it to the dispatcher; they never block on backing I/O
 * (a large write may wait for room under max_queued).
 * Every callback is noexcept.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_FUSE
#error "fuse/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include <fuse_lowlevel.h>

#include "cgroup/resolver.hpp"
#include "common/mutex.hpp"
#include "common/names.hpp"
#include "config/mount_options.hpp"
#include "dispatch/dispatcher.hpp"
#include "image/image_table.hpp"
#include "payload_pool.hpp"
#include "request.hpp"

namespace cgloopfs::fuse {

/* Everything the callbacks need; the userdata of the session. */
struct Filesystem {
	Filesystem(const config::MountOptions &opts, image::ImageTable &images,
		   dispatch::Dispatcher &dispatcher, const cgroup::Resolver &cgroups)
		: options(opts), table(images), dispatch(dispatcher), resolver(cgroups)
	{
	}

	const config::MountOptions &options;
	image::ImageTable &table;
	dispatch::Dispatcher &dispatch;
	const cgroup::Resolver &resolver;
	RequestPool pool{256};
	PayloadPool payloads{static_cast<size_t>(options.max_queued / PayloadPool::max_payload),
			     16};
	/*
	 * lock= of the images attached from now on that do not say: -o lock, then
	 * `cgloopctl set lock=`. Read and written by the control thread only.
	 */
	config::LockMode attach_lock = options.lock;
	/* charge= for workers made from now on: -o charge, then `cgloopctl set charge=`. */
	std::atomic<config::ChargeMode> charge{options.charge};
	std::string control_path;	 /* shown as an xattr of the root directory */
	fuse_session *session = nullptr; /* for invalidations; set once mounted */
	/* The session threads are told to stop reading /dev/fuse (fuse/session.cpp). */
	std::atomic<bool> reading_ends{false};
	dev_t mount_dev = 0; /* st_dev of files in this mount */
	uint32_t root_uid = 0, root_gid = 0;
	struct timespec start_time = {};

	/*
	 * Handles the kernel has not released yet; freed by close_all_files()
	 * when the session ends with files still open (no RELEASE will come).
	 */
	Mutex files_mutex; /* a leaf */
	std::unordered_set<void *> open_files CGL_GUARDED_BY(files_mutex);

	void close_all_files();
	size_t open_handles();

	/* Tell the kernel to forget what it cached of image `name` (inode `ino`). */
	void invalidate(uint64_t ino, const std::string &name);
	/* Tell the kernel an image's size changed. */
	void invalidate_attr(uint64_t ino);
};

/* The operations table, wired to the op_* adapters. */
fuse_lowlevel_ops make_ops();

/* The root's xattr naming the control socket is control_xattr (common/names.hpp). */

} /* namespace cgloopfs::fuse */
