/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * PayloadPool: the buffers session threads read /dev/fuse into, and the
 * budget of write payloads parked in the dispatcher's queues.
 *
 * A large write is not copied out of the buffer it arrived in: the IoRequest
 * keeps that buffer (its payload stays where the kernel put it) and the
 * session thread takes a fresh one from this pool for its next read. Every
 * buffer is laid out so a write's payload starts on a page boundary, which
 * O_DIRECT backing files need.
 *
 * The buffers are carved out of one shared memory file (the arena) as long
 * as it has room, so that a charge=cgroup worker process, which maps the
 * arena read-only (fuse/charge.hpp), writes a payload from where the kernel
 * put it instead of from a copy. Beyond the arena's room they are private
 * memory, and are copied.
 *
 * The buffers held by requests are bounded by `max_parked`: when that many
 * are parked, a session thread waits for one to come back before it parks
 * another (the kernel then holds further requests, of every cgroup, in its
 * queue; nothing is dropped). At most `max_spare` returned buffers are kept
 * for reuse; the others go back to the system. Thread-safe.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_FUSE
#error "fuse/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <fuse_lowlevel.h>

#include "common/mutex.hpp"

namespace cgloopfs::fuse {

class PayloadPool
{
public:
	/* The largest write the daemon negotiates (FUSE max_write). */
	static constexpr size_t max_payload = 1024 * 1024;

	PayloadPool(size_t max_parked, size_t max_spare);
	~PayloadPool();
	PayloadPool(const PayloadPool &) = delete;
	PayloadPool &operator=(const PayloadPool &) = delete;

	/* Where a session thread reads a request into, inside buffer `base`. */
	static char *read_area(char *base);
	/* The payload of a WRITE read into buffer `base`. */
	static const char *write_payload(char *base);

	/* A buffer for a session thread; nullptr on ENOMEM. */
	char *get_for_reading() noexcept CGL_EXCLUDES(mutex_);
	/*
	 * The session thread is about to park its buffer with a request: wait
	 * until the parked budget has room, then count it. False when the
	 * session threads are told to stop (`ending`) while waiting (checked
	 * every 100 ms).
	 */
	bool reserve_parked(const std::atomic<bool> &ending) CGL_EXCLUDES(mutex_);
	/* As reserve_parked(), giving up when `ended()` returns true. */
	template <typename Ended> bool reserve_parked_until(Ended ended) CGL_EXCLUDES(mutex_);
	/* A parked buffer comes back (its request ended). */
	void put_parked(char *base) noexcept CGL_EXCLUDES(mutex_);
	/* A session thread's buffer comes back (the thread ends). */
	void put(char *base) noexcept CGL_EXCLUDES(mutex_);

	/*
	 * A parked buffer a worker process may still be reading (it died
	 * under a write, perhaps stuck in the kernel): counted back, never
	 * reused nor freed.
	 */
	void put_parked_lost(char *base) noexcept CGL_EXCLUDES(mutex_);

	/* The arena: its file (-1: none), its size, and where `p` (`len` bytes) is in it. */
	int arena_fd() const { return arena_fd_; }
	size_t arena_size() const { return arena_size_; }
	bool arena_offset(const char *p, size_t len, uint64_t &offset) const noexcept;

	size_t parked() const CGL_EXCLUDES(mutex_);
	size_t spare() const CGL_EXCLUDES(mutex_);
	size_t max_parked() const { return max_parked_; }

private:
	char *allocate() noexcept CGL_EXCLUDES(mutex_);
	void release_memory(char *base) noexcept CGL_EXCLUDES(mutex_);
	/* Keep `base` for reuse if there is room; false: the caller unmaps it. */
	bool keep_locked(char *base) CGL_REQUIRES(mutex_);

	const size_t max_parked_;
	const size_t max_spare_;
	/* A leaf (see the lock order in dispatch/dispatcher.hpp): nothing is taken under it. */
	mutable Mutex mutex_;
	ConditionVariable room_;			   /* a parked buffer came back */
	std::vector<char *> spare_ CGL_GUARDED_BY(mutex_); /* capacity max_spare_ */
	size_t parked_ CGL_GUARDED_BY(mutex_) = 0;
	int arena_fd_ = -1;
	char *arena_ = nullptr;
	size_t arena_size_ = 0;
	std::vector<uint32_t> arena_free_ CGL_GUARDED_BY(mutex_); /* buffers not in use */
};

template <typename Ended> bool PayloadPool::reserve_parked_until(Ended ended)
{
	MutexLocker l(mutex_);
	while (parked_ >= max_parked_) {
		if (ended())
			return false;
		room_.wait_for(l, std::chrono::milliseconds(100));
	}
	parked_++;
	return true;
}

/*
 * The buffer the calling session thread has read its current request into
 * (nullptr on other threads). A callback that parks it sets it to the
 * replacement; the session thread reads its next request there.
 */
extern thread_local char *current_read_buffer;

} /* namespace cgloopfs::fuse */
