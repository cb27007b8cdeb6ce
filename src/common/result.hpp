/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Result<T>: a value or a negative errno, for code below the FUSE adapters
 * (no exceptions on the I/O path). Reentrant; a Result is a plain value.
 */
#pragma once

#include <cassert>
#include <cerrno>
#include <utility>
#include <variant>

namespace cgloopfs {

/* Tag for constructing an error Result: Result<int> r = Errno{-EIO}. */
struct Errno {
	int value; /* negative errno */
};

template <typename T> class [[nodiscard]] Result
{
public:
	Result(T value) : v_(std::move(value)) {}
	Result(Errno e) : v_(e) { assert(e.value < 0); }

	bool ok() const { return std::holds_alternative<T>(v_); }
	explicit operator bool() const { return ok(); }

	/* The negative errno; 0 when ok(). */
	int error() const { return ok() ? 0 : std::get<Errno>(v_).value; }

	T &value() &
	{
		assert(ok());
		return std::get<T>(v_);
	}
	const T &value() const &
	{
		assert(ok());
		return std::get<T>(v_);
	}
	T &&value() &&
	{
		assert(ok());
		return std::get<T>(std::move(v_));
	}
	T *operator->() { return &value(); }
	const T *operator->() const { return &value(); }
	T &operator*() & { return value(); }
	const T &operator*() const & { return value(); }

private:
	std::variant<T, Errno> v_;
};

/* The syscall convention turned into ours: -1 and errno become -errno. */
inline int neg_errno(long ret)
{
	return ret < 0 ? -errno : 0;
}

} /* namespace cgloopfs */
