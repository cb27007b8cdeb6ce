/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuse/payload_pool: the buffers session threads read requests into, and
 * the budget of write payloads parked in the dispatcher's queues. The
 * layout (a payload on a page boundary), reuse of returned buffers up to
 * max_spare, the parked budget (max_queued / 1 MiB): a session thread waits
 * while it is spent, goes on when a parked buffer comes back, and gives up
 * when the session ends. Waits are bounded. The buffers come out of a
 * shared arena (which worker processes map) while it has room; one a dead
 * worker process may still read is never handed out again.
 */
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include <linux/fuse.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "fuse/payload_pool.hpp"

using cgloopfs::fuse::PayloadPool;
using namespace std::chrono_literals;

namespace {

/* Wait (bounded) until pred() holds. */
template <typename Pred> bool eventually(Pred pred)
{
	for (int i = 0; i < 500; i++) {
		if (pred())
			return true;
		std::this_thread::sleep_for(10ms);
	}
	return pred();
}

} /* namespace */

TEST_CASE("a WRITE read into a buffer has its payload on a page boundary, with room for 1 MiB")
{
	PayloadPool pool(2, 2);
	char *b = pool.get_for_reading();
	REQUIRE(b);
	char *area = PayloadPool::read_area(b);
	const char *payload = PayloadPool::write_payload(b);
	CHECK(reinterpret_cast<uintptr_t>(payload) % 4096 == 0);
	CHECK(payload - area ==
	      static_cast<ptrdiff_t>(sizeof(fuse_in_header) + sizeof(fuse_write_in)));
	/* The whole largest message is writable: header and 1 MiB of payload. */
	std::memset(area, 0xa5,
		    sizeof(fuse_in_header) + sizeof(fuse_write_in) + PayloadPool::max_payload);
	pool.put(b);
}

TEST_CASE("returned buffers are reused, and at most max_spare are kept")
{
	PayloadPool pool(4, 2);
	char *a = pool.get_for_reading(), *b = pool.get_for_reading(), *c = pool.get_for_reading();
	REQUIRE((a && b && c));
	CHECK(std::set<char *>{a, b, c}.size() == 3);
	pool.put(a);
	pool.put(b);
	pool.put(c); /* over max_spare: back to the system */
	CHECK(pool.spare() == 2);
	char *x = pool.get_for_reading(), *y = pool.get_for_reading();
	CHECK(std::set<char *>{x, y} == std::set<char *>{a, b});
	CHECK(pool.spare() == 0);
	pool.put(x);
	pool.put(y);
	pool.put(nullptr); /* a session thread that never had one */
	CHECK(pool.spare() == 2);
}

TEST_CASE("the parked budget: max_parked reservations, then a wait until one comes back")
{
	PayloadPool pool(2, 4);
	CHECK(pool.max_parked() == 2);
	auto never = [] { return false; };
	char *p1 = pool.get_for_reading(), *p2 = pool.get_for_reading();
	REQUIRE((p1 && p2));
	CHECK(pool.reserve_parked_until(never));
	CHECK(pool.reserve_parked_until(never));
	CHECK(pool.parked() == 2);

	std::atomic<bool> reserved{false};
	std::thread waiter([&] { reserved = pool.reserve_parked_until(never); });
	std::this_thread::sleep_for(150ms); /* past one 100 ms re-check of the waiter */
	CHECK_FALSE(reserved.load());
	CHECK(pool.parked() == 2);

	pool.put_parked(p1); /* a request ended: its buffer is back, and room with it */
	CHECK(eventually([&] { return reserved.load(); }));
	waiter.join();
	CHECK(pool.parked() == 2);
	CHECK(pool.spare() == 1); /* the parked buffer is kept for reuse */
	CHECK(pool.get_for_reading() == p1);

	pool.put_parked(p2);
	pool.put_parked(p1);
	CHECK(pool.parked() == 0);
	CHECK(pool.spare() == 2);
}

TEST_CASE("a session thread waiting for room gives up when the session ends")
{
	PayloadPool pool(1, 1);
	std::atomic<bool> ended{false};
	auto session_ended = [&] { return ended.load(); };
	CHECK(pool.reserve_parked_until(session_ended));
	std::atomic<int> result{-1};
	std::thread waiter([&] { result = pool.reserve_parked_until(session_ended) ? 1 : 0; });
	std::this_thread::sleep_for(50ms);
	CHECK(result.load() == -1);
	ended = true; /* nobody notifies: the waiter sees it at its next re-check */
	CHECK(eventually([&] { return result.load() != -1; }));
	waiter.join();
	CHECK(result.load() == 0);
	CHECK(pool.parked() == 1); /* the failed wait counted nothing */
}

TEST_CASE("a parked buffer beyond max_spare goes back to the system")
{
	PayloadPool pool(3, 1);
	auto never = [] { return false; };
	std::vector<char *> bufs;
	for (int i = 0; i < 3; i++) {
		bufs.push_back(pool.get_for_reading());
		REQUIRE(bufs.back());
		REQUIRE(pool.reserve_parked_until(never));
	}
	for (char *b : bufs)
		pool.put_parked(b);
	CHECK(pool.parked() == 0);
	CHECK(pool.spare() == 1);
}

TEST_CASE("buffers come out of the shared arena while it has room, then out of private memory")
{
	PayloadPool pool(2, 1);
	REQUIRE(pool.arena_fd() >= 0);
	/* Its room: the parked budget, the spares and 64 session threads' buffers. */
	const size_t room = 2 + 1 + 64;
	std::vector<char *> bufs;
	std::set<uint64_t> offsets;
	for (size_t i = 0; i < room; i++) {
		char *b = pool.get_for_reading();
		REQUIRE(b);
		uint64_t off = 0;
		REQUIRE(pool.arena_offset(PayloadPool::write_payload(b), PayloadPool::max_payload,
					  off));
		CHECK(off + PayloadPool::max_payload <= pool.arena_size());
		offsets.insert(off);
		bufs.push_back(b);
	}
	CHECK(offsets.size() == room); /* no buffer handed out twice */
	char *extra = pool.get_for_reading();
	REQUIRE(extra);
	uint64_t off = 0;
	CHECK_FALSE(pool.arena_offset(PayloadPool::write_payload(extra), 1, off));
	/* Writable, and the same bytes through the arena's file. */
	char *payload = const_cast<char *>(PayloadPool::write_payload(bufs[5]));
	std::memcpy(payload, "arena", 5);
	REQUIRE(pool.arena_offset(payload, 5, off));
	char seen[5] = {};
	CHECK(pread(pool.arena_fd(), seen, 5, static_cast<off_t>(off)) == 5);
	CHECK(std::memcmp(seen, "arena", 5) == 0);
	/* Returned (one kept as the spare, the rest freed): the arena's room is used again. */
	for (char *b : bufs)
		pool.put(b);
	pool.put(extra);
	for (size_t i = 0; i < room; i++) {
		char *b = pool.get_for_reading();
		REQUIRE(b);
		CHECK(pool.arena_offset(b, 1, off));
		bufs[i] = b;
	}
	for (char *b : bufs)
		pool.put(b);
	/* A range that runs past the arena's end is not in it. */
	CHECK_FALSE(pool.arena_offset(bufs[0], pool.arena_size() + 1, off));
}

TEST_CASE("a parked buffer a dead worker process may still read is never handed out again")
{
	PayloadPool pool(2, 4);
	auto never = [] { return false; };
	char *lost = pool.get_for_reading();
	REQUIRE(lost);
	REQUIRE(pool.reserve_parked_until(never));
	pool.put_parked_lost(lost);
	CHECK(pool.parked() == 0); /* its place in the budget comes back */
	CHECK(pool.spare() == 0);  /* the buffer does not */
	std::vector<char *> bufs;
	for (int i = 0; i < 2 + 4 + 64; i++) {
		bufs.push_back(pool.get_for_reading());
		REQUIRE(bufs.back());
		CHECK(bufs.back() != lost);
	}
	for (char *b : bufs)
		pool.put(b);
}
