/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "payload_pool.hpp"

#include <algorithm>

#include <linux/fuse.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cgloopfs::fuse {

namespace {

constexpr size_t page = 4096;
/* What precedes a WRITE's payload in the message. */
constexpr size_t write_header = sizeof(fuse_in_header) + sizeof(fuse_write_in);
static_assert(write_header < page);
/*
 * The read area starts `page - write_header` bytes into the buffer, so a
 * payload lands at `page`; after it there must be room for the largest
 * message the kernel sends (a WRITE of max_payload bytes).
 */
constexpr size_t read_offset = page - write_header;
constexpr size_t buffer_size = page + PayloadPool::max_payload + page;
static_assert(buffer_size - read_offset >= write_header + PayloadPool::max_payload);

/*
 * The arena's room: the parked budget, the spares and the session threads'
 * buffers (some to spare), at most 1024 buffers (a GiB of address space,
 * taken up only as it is used).
 */
constexpr size_t session_buffers = 64;
constexpr size_t max_arena_buffers = 1024;

} /* namespace */

PayloadPool::PayloadPool(size_t max_parked, size_t max_spare)
	: max_parked_(max_parked), max_spare_(max_spare)
{
	spare_.reserve(max_spare);
	size_t n = std::min(max_parked + max_spare + session_buffers, max_arena_buffers);
	int fd = static_cast<int>(syscall(SYS_memfd_create, "cgloopfs-payloads", MFD_CLOEXEC));
	if (fd < 0)
		return; /* private buffers only */
	size_t size = n * buffer_size;
	void *p = ftruncate(fd, static_cast<off_t>(size)) == 0
			  ? mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
				 fd, 0)
			  : MAP_FAILED;
	if (p == MAP_FAILED) {
		close(fd);
		return;
	}
	arena_fd_ = fd;
	arena_ = static_cast<char *>(p);
	arena_size_ = size;
	MutexLocker l(mutex_);
	arena_free_.reserve(n);
	for (size_t i = n; i-- > 0;)
		arena_free_.push_back(static_cast<uint32_t>(i));
}

PayloadPool::~PayloadPool()
{
	std::vector<char *> spare;
	{
		MutexLocker l(mutex_);
		spare.swap(spare_);
	}
	for (char *b : spare)
		release_memory(b);
	if (arena_) {
		munmap(arena_, arena_size_);
		close(arena_fd_);
	}
}

bool PayloadPool::arena_offset(const char *p, size_t len, uint64_t &offset) const noexcept
{
	if (!arena_ || p < arena_ || len > arena_size_ ||
	    static_cast<size_t>(p - arena_) > arena_size_ - len)
		return false;
	offset = static_cast<uint64_t>(p - arena_);
	return true;
}

void PayloadPool::release_memory(char *base) noexcept
{
	uint64_t off;
	if (!arena_offset(base, buffer_size, off)) {
		munmap(base, buffer_size);
		return;
	}
	/* Its memory goes back to the system; its place in the arena is free again. */
	(void)madvise(base, buffer_size, MADV_REMOVE);
	MutexLocker l(mutex_);
	arena_free_.push_back(static_cast<uint32_t>(off / buffer_size)); /* capacity reserved */
}

char *PayloadPool::read_area(char *base)
{
	return base + read_offset;
}

const char *PayloadPool::write_payload(char *base)
{
	return base + page;
}

char *PayloadPool::allocate() noexcept
{
	{
		MutexLocker l(mutex_);
		if (!arena_free_.empty()) {
			size_t i = arena_free_.back();
			arena_free_.pop_back();
			return arena_ + i * buffer_size;
		}
	}
	/* Mapped, not malloc'ed: what a flood took goes back to the system after it. */
	void *p = mmap(nullptr, buffer_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	return p == MAP_FAILED ? nullptr : static_cast<char *>(p);
}

char *PayloadPool::get_for_reading() noexcept
{
	{
		MutexLocker l(mutex_);
		if (!spare_.empty()) {
			char *b = spare_.back();
			spare_.pop_back();
			return b;
		}
	}
	return allocate();
}

thread_local char *current_read_buffer = nullptr;

bool PayloadPool::reserve_parked(const std::atomic<bool> &ending)
{
	return reserve_parked_until([&ending] { return ending.load(std::memory_order_relaxed); });
}

bool PayloadPool::keep_locked(char *base)
{
	if (spare_.size() >= max_spare_)
		return false;
	spare_.push_back(base); /* capacity reserved: never throws */
	return true;
}

void PayloadPool::put(char *base) noexcept
{
	if (!base)
		return;
	{
		MutexLocker l(mutex_);
		if (keep_locked(base))
			return;
	}
	release_memory(base);
}

void PayloadPool::put_parked(char *base) noexcept
{
	bool kept;
	{
		MutexLocker l(mutex_);
		parked_--;
		kept = !base || keep_locked(base);
	}
	room_.notify_one();
	if (!kept)
		release_memory(base);
}

void PayloadPool::put_parked_lost(char *base) noexcept
{
	uint64_t off;
	if (!base || !arena_offset(base, buffer_size, off)) {
		put_parked(base); /* a copy was what the worker process read */
		return;
	}
	{
		MutexLocker l(mutex_);
		parked_--;
	}
	room_.notify_one();
}

size_t PayloadPool::parked() const
{
	MutexLocker l(mutex_);
	return parked_;
}

size_t PayloadPool::spare() const
{
	MutexLocker l(mutex_);
	return spare_.size();
}

} /* namespace cgloopfs::fuse */
