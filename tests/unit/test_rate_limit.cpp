/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/log: RateLimit, on a time the test gives (allow_at): the burst, the
 * fixed windows, the count of suppressed calls, many threads at once. No
 * test sleeps.
 */
#include <atomic>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "common/log.hpp"

using cgloopfs::log::RateLimit;

TEST_CASE("RateLimit: a burst, then nothing until the window ends")
{
	RateLimit r(3, 5);
	const long long t0 = 1000;
	CHECK(r.allow_at(t0));
	CHECK(r.allow_at(t0));
	CHECK(r.allow_at(t0 + 1));
	CHECK_FALSE(r.allow_at(t0 + 1));
	CHECK_FALSE(r.allow_at(t0 + 4));
	CHECK(r.suppressed_since_last() == 2);
	/* Asked once: the count starts again. */
	CHECK(r.suppressed_since_last() == 0);
	/* interval_s after the window started: a new burst. */
	CHECK(r.allow_at(t0 + 5));
	CHECK(r.allow_at(t0 + 5));
	CHECK(r.allow_at(t0 + 9));
	CHECK_FALSE(r.allow_at(t0 + 9));
	CHECK(r.suppressed_since_last() == 1);
}

TEST_CASE("RateLimit: windows are fixed, starting at the first call after the last one")
{
	RateLimit r(1, 10);
	CHECK(r.allow_at(100));
	CHECK_FALSE(r.allow_at(109));
	/* A quiet time longer than the window: the next call opens a window there. */
	CHECK(r.allow_at(250));
	CHECK_FALSE(r.allow_at(259));
	CHECK(r.allow_at(260));
	CHECK(r.suppressed_since_last() == 2);
}

TEST_CASE("RateLimit: the first call is allowed at any time, also right after boot")
{
	RateLimit early(1, 5);
	CHECK(early.allow_at(0));
	CHECK_FALSE(early.allow_at(1));
	RateLimit late(1, 5);
	CHECK(late.allow_at(1LL << 40));
}

TEST_CASE("RateLimit: burst 0 allows nothing and counts everything")
{
	RateLimit r(0, 5);
	for (long long t = 0; t < 20; t++)
		CHECK_FALSE(r.allow_at(t));
	CHECK(r.suppressed_since_last() == 20);
}

TEST_CASE("RateLimit: limiters are independent")
{
	RateLimit a(1, 5), b(1, 5);
	CHECK(a.allow_at(10));
	CHECK(b.allow_at(10));
	CHECK_FALSE(a.allow_at(11));
	CHECK(a.suppressed_since_last() == 1);
	CHECK(b.suppressed_since_last() == 0);
}

TEST_CASE("RateLimit: allow() on the real clock allows the first burst")
{
	/* A window of an hour: the real clock cannot start a new one during the test. */
	RateLimit r(2, 3600);
	CHECK(r.allow());
	CHECK(r.allow());
	CHECK_FALSE(r.allow());
	CHECK(r.suppressed_since_last() == 1);
}

TEST_CASE("RateLimit: many threads at once get exactly the burst")
{
	RateLimit r(10, 5);
	std::atomic<unsigned> allowed{0};
	std::vector<std::thread> threads;
	for (int t = 0; t < 4; t++)
		threads.emplace_back([&] {
			for (int i = 0; i < 1000; i++)
				if (r.allow_at(42))
					allowed++;
		});
	for (auto &t : threads)
		t.join();
	CHECK(allowed == 10);
	CHECK(r.suppressed_since_last() == 4000 - 10);
}
