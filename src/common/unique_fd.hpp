/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * UniqueFd: owns one file descriptor and closes it. Move-only, not thread-safe.
 */
#pragma once

#include <unistd.h>

namespace cgloopfs {

class UniqueFd
{
public:
	UniqueFd() = default;
	explicit UniqueFd(int fd) : fd_(fd) {}
	~UniqueFd() { reset(); }

	UniqueFd(UniqueFd &&other) noexcept : fd_(other.release()) {}
	UniqueFd &operator=(UniqueFd &&other) noexcept
	{
		if (this != &other)
			reset(other.release());
		return *this;
	}
	UniqueFd(const UniqueFd &) = delete;
	UniqueFd &operator=(const UniqueFd &) = delete;

	int get() const { return fd_; }
	bool valid() const { return fd_ >= 0; }
	explicit operator bool() const { return valid(); }

	[[nodiscard]] int release()
	{
		int fd = fd_;
		fd_ = -1;
		return fd;
	}

	void reset(int fd = -1)
	{
		if (fd_ >= 0)
			(void)::close(fd_);
		fd_ = fd;
	}

private:
	int fd_ = -1;
};

} /* namespace cgloopfs */
