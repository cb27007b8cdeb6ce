/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "image_lock.hpp"

#include <cerrno>
#include <tuple>

#include <fcntl.h>
#include <unistd.h>

namespace cgloopfs::image {

namespace {

/* One byte, F_OFD_SETLK (type F_RDLCK or F_UNLCK). */
int set_byte(int fd, off_t byte, short type)
{
	struct flock fl = {};
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	return ::fcntl(fd, F_OFD_SETLK, &fl) < 0 ? -errno : 0;
}

/* Does another description lock `byte`? 1 yes, 0 no, -errno (QEMU's qemu_lock_fd_test). */
int byte_locked_by_other(int fd, off_t byte)
{
	struct flock fl = {};
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	if (::fcntl(fd, F_OFD_GETLK, &fl) < 0)
		return -errno;
	return fl.l_type != F_UNLCK ? 1 : 0;
}

} /* namespace */

LockBits image_lock_bits(bool writable)
{
	LockBits b;
	b.held = perm_consistent_read | (writable ? perm_write : 0);
	b.refused = perm_write;
	return b;
}

const char *perm_name(uint32_t bit)
{
	switch (bit) {
	case perm_consistent_read:
		return "consistent read";
	case perm_write:
		return "write";
	case perm_write_unchanged:
		return "write unchanged";
	case perm_resize:
		return "resize";
	}
	return "unknown";
}

int apply_lock_bytes(int fd, LockBits from, LockBits to)
{
	for (unsigned i = 0; i < perm_bits; i++) {
		uint32_t bit = 1u << i;
		for (auto [base, was, want] :
		     {std::tuple{lock_perm_base, from.held, to.held},
		      std::tuple{lock_shared_base, from.refused, to.refused}}) {
			int r = 0;
			if ((want & bit) && !(was & bit))
				r = set_byte(fd, base + i, F_RDLCK);
			else if (!(want & bit) && (was & bit))
				r = set_byte(fd, base + i, F_UNLCK);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int check_lock_bytes(int fd, LockBits bits, LockConflict *ret_conflict)
{
	for (bool other_holds : {true, false}) {
		uint32_t mine = other_holds ? bits.refused : bits.held;
		off_t base = other_holds ? lock_perm_base : lock_shared_base;
		for (unsigned i = 0; i < perm_bits; i++) {
			uint32_t bit = 1u << i;
			if (!(mine & bit))
				continue;
			int r = byte_locked_by_other(fd, base + i);
			if (r < 0)
				return r;
			if (r > 0) {
				if (ret_conflict)
					*ret_conflict = LockConflict{other_holds, bit};
				return -EAGAIN;
			}
		}
	}
	return 0;
}

bool lock_unsupported(int err)
{
	if (err > 0)
		err = -err;
	return err == -EINVAL || err == -ENOLCK || err == -EOPNOTSUPP || err == -ENOSYS;
}

LockBits BackingLock::bits_for(unsigned readers, unsigned writers) const
{
	LockBits b;
	if (readers + writers == 0)
		return b;
	LockBits r = image_lock_bits(writers > 0);
	b.held = r.held;
	b.refused = r.refused;
	return b;
}

Result<LockState> BackingLock::acquire(const std::string &reopen_path, bool writable,
				       bool block_device, bool required, Refusal *ret)
{
	MutexLocker l(mutex_);
	auto refuse = [&](int err, LockConflict c = {}) -> Result<LockState> {
		if (ret)
			*ret = Refusal{err, c};
		return Errno{err};
	};
	bool opened_here = false;
	if (!fd_) {
		fd_.reset(::open(reopen_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
		if (!fd_)
			return refuse(-errno);
		opened_here = true;
	}
	/* Undo what this call did when it refuses (called with mutex_ held, as here). */
	auto unwind = [&]() CGL_NO_THREAD_SAFETY_ANALYSIS {
		if (opened_here)
			fd_.reset();
	};

	UniqueFd claim;
	if (writable && block_device && !claim_fd_) {
		claim.reset(::open(reopen_path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC | O_NOCTTY));
		if (!claim) {
			int err = -errno;
			unwind();
			return refuse(err);
		}
	}

	unsigned readers = readers_ + (writable ? 0 : 1);
	unsigned writers = writers_ + (writable ? 1 : 0);
	LockBits before = bits_for(readers_, writers_);
	LockBits after = bits_for(readers, writers);
	bool unsupported = unsupported_;
	if (!unsupported) {
		int r = apply_lock_bytes(fd_.get(), before, after);
		LockConflict c;
		if (r == 0)
			r = check_lock_bytes(fd_.get(), after, &c);
		if (r < 0) {
			(void)apply_lock_bytes(fd_.get(), after, before);
			if (!lock_unsupported(r) || required) {
				unwind();
				return refuse(lock_unsupported(r) ? -ENOLCK : r, c);
			}
			unsupported = true;
		}
	} else if (required) {
		unwind();
		return refuse(-ENOLCK);
	}

	readers_ = readers;
	writers_ = writers;
	unsupported_ = unsupported;
	if (claim)
		claim_fd_ = std::move(claim);
	return unsupported ? LockState::unsupported : LockState::held;
}

void BackingLock::release(bool writable)
{
	MutexLocker l(mutex_);
	unsigned readers = readers_ - (writable ? 0 : 1);
	unsigned writers = writers_ - (writable ? 1 : 0);
	if (fd_ && !unsupported_)
		(void)apply_lock_bytes(fd_.get(), bits_for(readers_, writers_),
				       bits_for(readers, writers));
	readers_ = readers;
	writers_ = writers;
	if (writers_ == 0)
		claim_fd_.reset();
	if (readers_ + writers_ == 0) {
		fd_.reset();
		unsupported_ = false;
	}
}

} /* namespace cgloopfs::image */
