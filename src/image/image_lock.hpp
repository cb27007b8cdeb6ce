/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Image locks, taken the way QEMU's file driver takes them (block/file-posix.c,
 * raw_apply_lock_bytes and raw_check_lock_bytes), so that QEMU and its tools,
 * libvirt and other cgloopfs daemons see an image cgloopfs serves, and
 * cgloopfs sees theirs.
 *
 * They are open file description (OFD) read locks on single bytes of the
 * backing file: holding QEMU permission bit n is a lock on byte 100 + n;
 * refusing bit n to everyone else is a lock on byte 200 + n. Read locks
 * never conflict with each other, so taking them always succeeds; a
 * conflict is found by asking (F_OFD_GETLK, as for a write lock) whether
 * another description locks the opposite byte. The kernel drops them when
 * the description is closed, also when the process is killed.
 *
 * Measured with Debian's QEMU 7.2 (qemu-io, qemu-storage-daemon):
 *   qemu-io -f raw IMG                    holds 100 101          refuses -
 *   qemu-io -r -f raw IMG                 holds 100              refuses -
 *   qemu-storage-daemon, NBD export rw    holds 100 101          refuses 203
 *   qemu-storage-daemon, FUSE export rw   holds 100 101 103      refuses -
 * and, from QEMU's sources (hw/block/block.c), a VM's disk holds 100 (and
 * 101 when writable) and refuses 201 (and 203 unless resizable).
 *
 * cgloopfs locks like a VM's resizable disk: a writable image holds 100
 * and 101 and refuses 201; a read-only one holds 100 and refuses 201. So
 * two writers never share an image, readers share it with each other, and
 * set-capacity may follow a backing file that another program grows.
 *
 * The functions are reentrant syscall wrappers returning -errno.
 * BackingLock is thread-safe.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_IMAGE
#error "image/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>
#include <mutex>
#include <string>

#include <sys/types.h>

#include "common/mutex.hpp"
#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cgloopfs::image {

/* QEMU's permission bits (BLK_PERM_*, include/block/block-common.h in 7.2). */
constexpr uint32_t perm_consistent_read = 1u << 0;
constexpr uint32_t perm_write = 1u << 1;
constexpr uint32_t perm_write_unchanged = 1u << 2;
constexpr uint32_t perm_resize = 1u << 3;
constexpr unsigned perm_bits = 4; /* BLK_PERM_MAX */

constexpr off_t lock_perm_base = 100;	/* RAW_LOCK_PERM_BASE */
constexpr off_t lock_shared_base = 200; /* RAW_LOCK_SHARED_BASE */

/* The bytes one opener locks: the bits it holds and those it refuses others. */
struct LockBits {
	uint32_t held = 0;
	uint32_t refused = 0;

	bool operator==(const LockBits &) const = default;
};

/* What cgloopfs locks for a writable or a read-only image (see above). */
LockBits image_lock_bits(bool writable);

/* QEMU's name of one permission bit ("write", "consistent read", ...). */
const char *perm_name(uint32_t bit);

/* A lock of another open file description that conflicts with ours. */
struct LockConflict {
	/* true: the other holds a bit we refuse; false: it refuses a bit we hold. */
	bool other_holds = false;
	uint32_t bit = 0;
};

/*
 * Lock the bytes of `to` and unlock those of `from` that `to` lacks, on the
 * description of `fd` (F_OFD_SETLK). 0 or -errno; on an error the bytes
 * already changed stay changed.
 */
int apply_lock_bytes(int fd, LockBits from, LockBits to);

/*
 * Does another open file description lock a byte that conflicts with `bits`
 * (F_OFD_GETLK)? 0: no; -EAGAIN: yes, *ret_conflict says which (checked in
 * that order: bits others hold that we refuse, then bits we hold that others
 * refuse); another -errno when the question cannot be asked.
 */
int check_lock_bytes(int fd, LockBits bits, LockConflict *ret_conflict);

/* Does this fcntl error mean that the file system has no OFD locks? */
bool lock_unsupported(int err);

/* How one image stands with its locks. */
enum class LockState {
	off,	     /* lock=off: none taken, nothing checked */
	held,	     /* taken, no conflict */
	unsupported, /* lock=auto on a file system without OFD locks: served unlocked */
};

/*
 * The locks this process holds on one backing file, for every image it
 * serves from it: one description of its own (opened read-only) carries the
 * union of what the images need, so that two windows of one file never
 * conflict with each other, and lives exactly as long as the images do. A
 * block device that any of them serves writable is also claimed O_EXCL, as
 * mount(8) and mkfs claim theirs, while it is.
 */
class BackingLock
{
public:
	struct Refusal {
		int err = 0; /* -EAGAIN conflict, -EBUSY claimed, -ENOLCK unsupported, ... */
		LockConflict conflict{}; /* for -EAGAIN */
	};

	/*
	 * Register one image: `reopen_path` opens the backing file (a
	 * /proc/self/fd path); `required` is lock=on. Takes the bytes first
	 * and then checks them, as QEMU does, so of two openers racing at
	 * least one sees the other. On a refusal nothing is left changed:
	 *   -EAGAIN  another process conflicts (*ret says how)
	 *   -EBUSY   the block device is in use (mounted, or claimed)
	 *   -ENOLCK  `required`, and the file system has no OFD locks
	 *   other    opening the lock descriptor failed
	 */
	Result<LockState> acquire(const std::string &reopen_path, bool writable, bool block_device,
				  bool required, Refusal *ret);

	/* Undo one acquire() that succeeded (held or unsupported). */
	void release(bool writable);

private:
	LockBits bits_for(unsigned readers, unsigned writers) const;

	/* A leaf: nothing is taken under it. */
	mutable Mutex mutex_;
	UniqueFd fd_ CGL_GUARDED_BY(mutex_);
	UniqueFd claim_fd_ CGL_GUARDED_BY(mutex_); /* O_EXCL, while a block device has writers */
	unsigned readers_ CGL_GUARDED_BY(mutex_) = 0;
	unsigned writers_ CGL_GUARDED_BY(mutex_) = 0;
	bool unsupported_ CGL_GUARDED_BY(mutex_) = false; /* the fs refused an OFD lock */
};

} /* namespace cgloopfs::image */
