/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Time in nanoseconds, the one way the project reads clocks. Reentrant.
 */
#pragma once

#include <cstdint>
#include <ctime>

namespace cgloopfs {

inline int64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/* CLOCK_MONOTONIC: durations, deadlines, ages. */
inline int64_t monotonic_ns()
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* CLOCK_REALTIME: times shown to people and stored as file times. */
inline int64_t realtime_ns()
{
	return clock_ns(CLOCK_REALTIME);
}

} /* namespace cgloopfs */
