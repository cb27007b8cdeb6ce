/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * image/window: window_size (loop's get_size), clamp_to_window,
 * inside_window, align_down, align_up; near UINT64_MAX too.
 */
#include <cstdint>
#include <initializer_list>

#include <doctest/doctest.h>

#include "image/window.hpp"

using namespace cgloopfs::image;

namespace {

constexpr uint64_t max = UINT64_MAX;

/* They are constexpr: usable at compile time. */
static_assert(window_size(4096, 0, 0) == 4096);
static_assert(clamp_to_window(100, 90, 20) == 10);
static_assert(inside_window(100, 0, 100));
static_assert(align_up(1, 512) == 512);

} /* namespace */

TEST_CASE("window_size: offset at or past the end gives 0")
{
	CHECK(window_size(0, 0, 0) == 0);
	CHECK(window_size(4096, 4096, 0) == 0);
	CHECK(window_size(4096, 4097, 0) == 0);
	CHECK(window_size(4096, max, 0) == 0);
	CHECK(window_size(4096, max, 512) == 0);
	CHECK(window_size(max, max, 0) == 0);
}

TEST_CASE("window_size: the whole file, rounded down to 512")
{
	CHECK(window_size(4096, 0, 0) == 4096);
	CHECK(window_size(4097, 0, 0) == 4096);
	CHECK(window_size(511, 0, 0) == 0);
	CHECK(window_size(512, 0, 0) == 512);
	CHECK(window_size(1023, 0, 0) == 512);
	CHECK(window_size(10000, 1000, 0) == 8704); /* 9000 down to 512s */
	CHECK(window_size(4096, 3585, 0) == 0);	    /* 511 bytes left */
	CHECK(window_size(4096, 3584, 0) == 512);
	CHECK(window_size(max, 0, 0) == max - 511);
	CHECK(window_size(max, 1, 0) == max - 1 - 510);
}

TEST_CASE("window_size: size_limit smaller, larger, equal, 0")
{
	CHECK(window_size(1 << 20, 0, 4096) == 4096);
	CHECK(window_size(1 << 20, 4096, 4096) == 4096);
	CHECK(window_size(1 << 20, 0, 5000) == 4608); /* the limit is rounded down too */
	CHECK(window_size(1 << 20, 0, 511) == 0);
	CHECK(window_size(1 << 20, 0, 1) == 0);
	CHECK(window_size(8192, 4096, 1 << 20) == 4096); /* larger: the file's end */
	CHECK(window_size(8192, 4096, 4096) == 4096);	 /* equal */
	CHECK(window_size(8192, 4096, 0) == 4096);	 /* 0: no limit */
	CHECK(window_size(8192, 100, max) == 7680);
	CHECK(window_size(max, max - 1024, max) == 1024);
	CHECK(window_size(max, 0, max) == max - 511);
}

TEST_CASE("clamp_to_window")
{
	CHECK(clamp_to_window(4096, 0, 100) == 100);
	CHECK(clamp_to_window(4096, 0, 4096) == 4096);
	CHECK(clamp_to_window(4096, 0, 5000) == 4096);
	CHECK(clamp_to_window(4096, 4000, 200) == 96);
	CHECK(clamp_to_window(4096, 4095, 1) == 1);
	CHECK(clamp_to_window(4096, 4096, 1) == 0);
	CHECK(clamp_to_window(4096, 5000, 1) == 0);
	CHECK(clamp_to_window(4096, 0, 0) == 0);
	CHECK(clamp_to_window(0, 0, 10) == 0);
}

TEST_CASE("clamp_to_window: no overflow near UINT64_MAX")
{
	CHECK(clamp_to_window(4096, max, max) == 0);
	CHECK(clamp_to_window(4096, 4000, max) == 96);
	CHECK(clamp_to_window(4096, max - 10, 20) == 0);
	CHECK(clamp_to_window(max, max - 10, 20) == 10);
	CHECK(clamp_to_window(max, 0, max) == max);
	CHECK(clamp_to_window(max, 1, max) == max - 1);
	CHECK(clamp_to_window(max, max, 1) == 0);
	CHECK(clamp_to_window(max - 1, max - 2, max) == 1);
}

TEST_CASE("inside_window")
{
	CHECK(inside_window(4096, 0, 4096));
	CHECK(inside_window(4096, 0, 0));
	CHECK(inside_window(4096, 4096, 0));
	CHECK(inside_window(4096, 4095, 1));
	CHECK_FALSE(inside_window(4096, 4095, 2));
	CHECK_FALSE(inside_window(4096, 4097, 0));
	CHECK_FALSE(inside_window(4096, 0, 4097));
	CHECK_FALSE(inside_window(0, 0, 1));
	CHECK(inside_window(0, 0, 0));
}

TEST_CASE("inside_window: no overflow near UINT64_MAX")
{
	/* pos + len would wrap to a small number: must still be outside. */
	CHECK_FALSE(inside_window(4096, 1, max));
	CHECK_FALSE(inside_window(4096, max, 2));
	CHECK_FALSE(inside_window(4096, max - 1, 4));
	CHECK_FALSE(inside_window(4096, 2048, max - 1000));
	CHECK(inside_window(max, 0, max));
	CHECK(inside_window(max, max, 0));
	CHECK(inside_window(max, 1, max - 1));
	CHECK_FALSE(inside_window(max, 1, max));
	CHECK_FALSE(inside_window(max, max, 1));
	CHECK_FALSE(inside_window(max - 1, max, 0));
}

TEST_CASE("align_down and align_up")
{
	CHECK(align_down(0, 512) == 0);
	CHECK(align_down(1, 512) == 0);
	CHECK(align_down(511, 512) == 0);
	CHECK(align_down(512, 512) == 512);
	CHECK(align_down(513, 512) == 512);
	CHECK(align_down(8191, 4096) == 4096);
	CHECK(align_down(max, 512) == max - 511);
	CHECK(align_down(max, 4096) == max - 4095);
	CHECK(align_down(12345, 1) == 12345);

	CHECK(align_up(0, 512) == 0);
	CHECK(align_up(1, 512) == 512);
	CHECK(align_up(511, 512) == 512);
	CHECK(align_up(512, 512) == 512);
	CHECK(align_up(513, 512) == 1024);
	CHECK(align_up(4097, 4096) == 8192);
	CHECK(align_up(12345, 1) == 12345);
	/* The largest value that can be rounded up without wrapping. */
	CHECK(align_up(max - 4095, 4096) == max - 4095);
	CHECK(align_up(max - 8191 + 1, 4096) == max - 4095);

	/* Non-power-of-two alignments work too (the arithmetic is modular). */
	CHECK(align_down(1000, 300) == 900);
	CHECK(align_up(1000, 300) == 1200);

	/* The nearest multiples below and above, for every value in a few blocks. */
	for (uint64_t a : {uint64_t{512}, uint64_t{4096}, uint64_t{3}}) {
		uint64_t first_bad = max;
		for (uint64_t v = 0; v < 3 * a && first_bad == max; v++) {
			uint64_t d = align_down(v, a), u = align_up(v, a);
			if (d % a || u % a || d > v || v > u || v - d >= a || u - v >= a)
				first_bad = v;
		}
		CAPTURE(a);
		CHECK(first_bad == max);
	}
}
