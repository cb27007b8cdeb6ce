/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Clock: the dispatcher's time source, injected so unit tests never sleep.
 * Implementations are thread-safe.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DISPATCH
#error "dispatch/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <cstdint>

#include "common/clock.hpp"

namespace cgloopfs::dispatch {

class Clock
{
public:
	virtual ~Clock() = default;
	/* Monotonic nanoseconds. */
	virtual int64_t now_ns() const = 0;
};

class SteadyClock final : public Clock
{
public:
	int64_t now_ns() const override { return monotonic_ns(); }
};

/* A clock that moves only when told to (unit tests). */
class ManualClock final : public Clock
{
public:
	int64_t now_ns() const override { return now_.load(); }
	void advance_ns(int64_t ns) { now_ += ns; }

private:
	std::atomic<int64_t> now_{1000000000};
};

} /* namespace cgloopfs::dispatch */
