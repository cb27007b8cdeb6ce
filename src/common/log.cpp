/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "log.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "clock.hpp"
#include "escape.hpp"

namespace cgloopfs::log {

namespace {

std::string program_name = "cgloopfs";
std::atomic<int> max_level{static_cast<int>(Level::info)};
bool to_journal = false;
bool to_syslog = false;

/* JOURNAL_STREAM is "DEV:INO" of the stream systemd connected to stderr. */
bool stderr_is_journal()
{
	const char *env = std::getenv("JOURNAL_STREAM");
	if (!env)
		return false;
	unsigned long long dev = 0, ino = 0;
	if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2)
		return false;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

} /* namespace */

void init(std::string_view program)
{
	program_name = program;
	to_journal = stderr_is_journal();
}

void set_max_level(Level level)
{
	max_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void use_syslog()
{
	openlog(program_name.c_str(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
	to_syslog = true;
}

bool enabled(Level level)
{
	return static_cast<int>(level) <= max_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view message)
{
	if (!enabled(level))
		return;
	int saved = errno;
	/* Text from outside in a message cannot split the line or reach a terminal raw. */
	std::string safe = escape_controls(message);
	message = safe;
	if (to_syslog) {
		syslog(static_cast<int>(level), "%.*s", static_cast<int>(message.size()),
		       message.data());
		errno = saved;
		return;
	}
	std::string line;
	line.reserve(message.size() + program_name.size() + 8);
	if (to_journal)
		line += fmt::format("<{}>", static_cast<int>(level));
	else {
		line += program_name;
		line += ": ";
	}
	line += message;
	line += '\n';
	/* One write(2) per line so threads do not interleave within a line. */
	const char *p = line.data();
	size_t left = line.size();
	while (left > 0) {
		ssize_t n = ::write(STDERR_FILENO, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		left -= static_cast<size_t>(n);
	}
	errno = saved;
}

bool RateLimit::allow()
{
	return allow_at(monotonic_ns() / 1000000000);
}

bool RateLimit::allow_at(long long now_s)
{
	MutexLocker lock(mutex_);
	if (now_s - window_start_ >= static_cast<long long>(interval_s_)) {
		window_start_ = now_s;
		count_ = 0;
	}
	if (count_ < burst_) {
		count_++;
		return true;
	}
	suppressed_++;
	return false;
}

unsigned RateLimit::suppressed_since_last()
{
	MutexLocker lock(mutex_);
	unsigned n = suppressed_;
	suppressed_ = 0;
	return n;
}

} /* namespace cgloopfs::log */
