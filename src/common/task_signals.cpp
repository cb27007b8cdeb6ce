/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "task_signals.hpp"

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>

#include <fcntl.h>
#include <unistd.h>

#include "unique_fd.hpp"

namespace cgloopfs {

namespace {

constexpr uint64_t bit(int sig)
{
	return uint64_t{1} << (sig - 1);
}

/* Signals whose default action is to ignore or to stop: all others end the process. */
constexpr uint64_t harmless_by_default = bit(SIGCHLD) | bit(SIGCONT) | bit(SIGSTOP) | bit(SIGTSTP) |
					 bit(SIGTTIN) | bit(SIGTTOU) | bit(SIGURG) | bit(SIGWINCH);

/* The hexadecimal mask after `key` ("SigPnd:") at the start of a line; false if absent. */
bool mask_of(std::string_view status, std::string_view key, uint64_t &out)
{
	size_t at = 0;
	while (at < status.size()) {
		size_t end = status.find('\n', at);
		std::string_view line = status.substr(
			at, end == std::string_view::npos ? std::string_view::npos : end - at);
		if (line.starts_with(key)) {
			uint64_t v = 0;
			bool digits = false;
			for (char c : line.substr(key.size())) {
				int d = c >= '0' && c <= '9'   ? c - '0'
					: c >= 'a' && c <= 'f' ? c - 'a' + 10
					: c >= 'A' && c <= 'F' ? c - 'A' + 10
							       : -1;
				if (d < 0) {
					if (digits)
						break;
					if (c == ' ' || c == '\t')
						continue;
					return false;
				}
				v = v << 4 | static_cast<uint64_t>(d);
				digits = true;
			}
			out = v;
			return digits;
		}
		if (end == std::string_view::npos)
			break;
		at = end + 1;
	}
	return false;
}

} /* namespace */

bool status_says_dying(std::string_view status) noexcept
{
	size_t state = status.find("\nState:");
	if (state != std::string_view::npos) {
		size_t c = status.find_first_not_of(" \t", state + 7);
		if (c != std::string_view::npos && (status[c] == 'Z' || status[c] == 'X'))
			return true;
	}
	uint64_t own = 0, shared = 0, blocked = 0, ignored = 0, caught = 0;
	if (!mask_of(status, "SigPnd:", own) || !mask_of(status, "ShdPnd:", shared))
		return false;
	uint64_t pending = own | shared;
	if (pending & bit(SIGKILL))
		return true;
	(void)mask_of(status, "SigBlk:", blocked);
	(void)mask_of(status, "SigIgn:", ignored);
	(void)mask_of(status, "SigCgt:", caught);
	return (pending & ~blocked & ~ignored & ~caught & ~harmless_by_default) != 0;
}

bool task_dying(int tid) noexcept
{
	if (tid <= 0)
		return true;
	char path[32];
	std::snprintf(path, sizeof(path), "/proc/%d/status", tid);
	UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
	if (!fd)
		return true;
	char buf[4096];
	size_t got = 0;
	while (got < sizeof(buf)) {
		ssize_t n = read(fd.get(), buf + got, sizeof(buf) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return true;
		if (n == 0)
			break;
		got += static_cast<size_t>(n);
	}
	std::string_view text(buf, got);
	/* A status without the signal lines (cut short, or a kernel that words them otherwise). */
	if (text.find("\nShdPnd:") == std::string_view::npos)
		return true;
	return status_says_dying(text);
}

} /* namespace cgloopfs */
