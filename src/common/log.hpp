/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Logging for the main-program layers (fuse/, daemon/, cli/). Library layers
 * (image/, cgroup/, dispatch/, config/, control/protocol) log at debug only.
 *
 * Lines go to stderr as "cgloopfs: message"; when stderr is the journal
 * (JOURNAL_STREAM matches it) they carry a "<N>" syslog priority prefix
 * instead, and after the daemon detaches they go to syslog(3).
 * Thread-safe: one write(2) per line.
 */
#pragma once

#include <string_view>

#include <fmt/core.h>

#include "common/mutex.hpp"

namespace cgloopfs::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

/* Set once at start-up, before threads exist. */
void init(std::string_view program);
void set_max_level(Level level);
void use_syslog();
bool enabled(Level level);

void write(Level level, std::string_view message);

template <typename... Args> void error(fmt::format_string<Args...> f, Args &&...args)
{
	write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args> void warning(fmt::format_string<Args...> f, Args &&...args)
{
	write(Level::warning, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args> void notice(fmt::format_string<Args...> f, Args &&...args)
{
	write(Level::notice, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args> void info(fmt::format_string<Args...> f, Args &&...args)
{
	write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args> void debug(fmt::format_string<Args...> f, Args &&...args)
{
	if (enabled(Level::debug))
		write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}

/*
 * Log at most `burst` lines per `interval_s` per call site; returns false
 * when suppressed. Windows are fixed: one starts at the first call at least
 * `interval_s` after the start of the last. Thread-safe.
 */
class RateLimit
{
public:
	RateLimit(unsigned burst, unsigned interval_s) : burst_(burst), interval_s_(interval_s) {}
	/* allow_at(now) on CLOCK_MONOTONIC seconds. */
	bool allow();
	/* The same at a time given in seconds (for tests: no sleeping). */
	bool allow_at(long long now_s);
	/* How many calls were refused since the last time this was asked. */
	unsigned suppressed_since_last();

private:
	unsigned burst_;
	unsigned interval_s_;
	Mutex mutex_; /* a leaf: nothing is taken under it */
	long long window_start_ CGL_GUARDED_BY(mutex_) = 0;
	unsigned count_ CGL_GUARDED_BY(mutex_) = 0;
	unsigned suppressed_ CGL_GUARDED_BY(mutex_) = 0;
};

} /* namespace cgloopfs::log */
