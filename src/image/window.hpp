/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Window arithmetic of a loop image, as the loop driver's get_size(): pure,
 * overflow-safe, constexpr.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_IMAGE
#error "image/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>

namespace cgloopfs::image {

constexpr uint64_t sector_size = 512;

/*
 * The exported size: min(backing_size - offset, size_limit), rounded down to
 * 512 bytes; 0 when offset is at or beyond the end ("weird but possible").
 */
constexpr uint64_t window_size(uint64_t backing_size, uint64_t offset, uint64_t size_limit)
{
	if (offset >= backing_size)
		return 0;
	uint64_t size = backing_size - offset;
	if (size_limit != 0 && size_limit < size)
		size = size_limit;
	return size & ~(sector_size - 1);
}

/* How many of `len` bytes at `pos` lie inside a window of `size` bytes. */
constexpr uint64_t clamp_to_window(uint64_t size, uint64_t pos, uint64_t len)
{
	if (pos >= size)
		return 0;
	uint64_t room = size - pos;
	return len < room ? len : room;
}

/* Does [pos, pos + len) lie wholly inside the window (no overflow)? */
constexpr bool inside_window(uint64_t size, uint64_t pos, uint64_t len)
{
	return pos <= size && len <= size - pos;
}

constexpr uint64_t align_down(uint64_t v, uint64_t a)
{
	return v - v % a;
}

constexpr uint64_t align_up(uint64_t v, uint64_t a)
{
	return align_down(v + a - 1, a);
}

} /* namespace cgloopfs::image */
