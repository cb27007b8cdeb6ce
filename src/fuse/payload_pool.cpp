/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "payload_pool.hpp"

#include <linux/fuse.h>
#include <sys/mman.h>

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

} /* namespace */

PayloadPool::PayloadPool(size_t max_parked, size_t max_spare)
	: max_parked_(max_parked), max_spare_(max_spare)
{
	spare_.reserve(max_spare);
}

PayloadPool::~PayloadPool()
{
	for (char *b : spare_)
		release_memory(b);
}

void PayloadPool::release_memory(char *base) noexcept
{
	munmap(base, buffer_size);
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

bool PayloadPool::reserve_parked(fuse_session *se)
{
	return reserve_parked_until([se] { return fuse_session_exited(se) != 0; });
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
