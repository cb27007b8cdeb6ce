/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * AlignedBuffer: a growable byte buffer aligned for O_DIRECT (4096). Owned by
 * one thread at a time; move-only. Grows, never shrinks, so a thread that
 * reuses it does not allocate per request.
 */
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace cgloopfs {

class AlignedBuffer
{
public:
	static constexpr size_t alignment = 4096;

	AlignedBuffer() = default;
	~AlignedBuffer() { std::free(data_); }
	AlignedBuffer(AlignedBuffer &&o) noexcept : data_(o.data_), size_(o.size_)
	{
		o.data_ = nullptr;
		o.size_ = 0;
	}
	AlignedBuffer &operator=(AlignedBuffer &&o) noexcept
	{
		if (this != &o) {
			std::free(data_);
			data_ = o.data_;
			size_ = o.size_;
			o.data_ = nullptr;
			o.size_ = 0;
		}
		return *this;
	}
	AlignedBuffer(const AlignedBuffer &) = delete;
	AlignedBuffer &operator=(const AlignedBuffer &) = delete;

	/* Make room for at least `size` bytes; contents are not kept. False on ENOMEM. */
	[[nodiscard]] bool reserve(size_t size)
	{
		if (size <= size_)
			return true;
		size_t rounded = (size + alignment - 1) / alignment * alignment;
		void *p = nullptr;
		if (posix_memalign(&p, alignment, rounded) != 0)
			return false;
		std::free(data_);
		data_ = static_cast<char *>(p);
		size_ = rounded;
		return true;
	}

	char *data() { return data_; }
	const char *data() const { return data_; }
	size_t capacity() const { return size_; }

private:
	char *data_ = nullptr;
	size_t size_ = 0;
};

} /* namespace cgloopfs */
