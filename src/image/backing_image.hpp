/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * BackingImage: one backing file (or block device) held open by descriptor,
 * and the window of it that is exported: offset, size limit, read-only,
 * O_DIRECT. Translates exported positions to backing positions and never
 * touches a byte outside the window.
 *
 * Thread-safe: any number of threads may read, write, sync and discard at
 * once. Opening is not on the I/O path and throws config::ConfigError.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_IMAGE
#error "image/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <sys/types.h>

#include "common/aligned_buffer.hpp"
#include "common/mutex.hpp"
#include "common/result.hpp"
#include "common/unique_fd.hpp"
#include "config/image_spec.hpp"
#include "image_lock.hpp"

namespace cgloopfs::image {

/* What a stat of the exported file shows. */
struct ExportedAttr {
	uint64_t size;
	uint32_t mode; /* permission bits only */
	uint32_t uid;
	uint32_t gid;
	uint32_t block_size;
	struct timespec atime, mtime, ctime;
};

/*
 * Serializes direct-I/O writes that share an aligned block, so a
 * read-modify-write of a partial block never loses a neighbour's bytes.
 * Only writes whose aligned ranges overlap wait for each other.
 */
class BlockRangeLock
{
public:
	class Guard
	{
	public:
		/* Waits for the range; with `wait` false, takes it only if it is free (held()). */
		Guard(BlockRangeLock &lock, uint64_t begin, uint64_t end, bool wait = true);
		~Guard();
		Guard(const Guard &) = delete;
		Guard &operator=(const Guard &) = delete;
		bool held() const { return held_; }

	private:
		BlockRangeLock &lock_;
		uint64_t begin_, end_;
		bool held_ = false;
	};

private:
	Mutex mutex_; /* a leaf: taken around the bookkeeping only, never across I/O */
	ConditionVariable released_;
	std::vector<std::pair<uint64_t, uint64_t>> held_ CGL_GUARDED_BY(mutex_);
};

/*
 * What the images on one backing file share: the block lock and whether any
 * of them does direct I/O. An unaligned direct write rewrites whole blocks,
 * which may hold bytes of another window of the same file; every write to a
 * backing file that has a direct-I/O window takes the block lock, so none is
 * lost. Thread-safe.
 */
struct SharedBacking {
	BlockRangeLock lock;
	std::atomic<unsigned> direct_users{0};
	std::atomic<uint32_t> align{512}; /* the largest direct-I/O alignment among them */
	BackingLock image_lock;		  /* this process's QEMU-style locks on the file */

	/* The one for (dev, ino), made on first use; kept while an image holds it. */
	static std::shared_ptr<SharedBacking> of(dev_t dev, ino_t ino);
};

/*
 * What a process other than the daemon needs to serve an image the daemon
 * opened, next to its descriptors (see BackingImage::replica()). Plain
 * data: it is sent over a socket.
 */
struct ReplicaInfo {
	uint64_t serial;
	uint64_t offset, size_limit;
	uint64_t size, backing_size;
	uint64_t dev, ino;
	uint32_t dio_align;
	uint8_t read_only, direct_io, discard, is_block_device;
	char name[256]; /* for log lines; cut */
};

class BackingImage
{
public:
	/*
	 * Open the backing file of `spec`; `force_read_only` is -o ro,
	 * `default_lock` the -o lock for images that do not say. Locks it
	 * (image_lock.hpp) before it is opened for I/O. Throws
	 * config::ConfigError naming the image and the setting, or the
	 * process that holds the image.
	 */
	static std::shared_ptr<BackingImage>
	open(const config::ImageSpec &spec, bool force_read_only,
	     config::LockMode default_lock = config::LockMode::automatic);

	/*
	 * The same image served by another process (a charged worker,
	 * fuse/charge.hpp) through descriptors the daemon passed it: no lock
	 * is taken (the daemon holds it), nothing is opened. The daemon keeps
	 * what images of one file share (block lock, write errors, size): it
	 * sends the sizes with each request (set_sizes()) and holds the block
	 * lock around a write it has the replica do (hold_write_range()).
	 */
	static std::shared_ptr<BackingImage> replica(const ReplicaInfo &info, UniqueFd fd,
						     UniqueFd buffered_fd);
	/* What replica() needs; `fds` gets the descriptors to pass with it (1 or 2). */
	ReplicaInfo replica_info(std::vector<int> &fds) const;
	bool replica() const { return replica_; }
	/* A number no other image of this process had or will have. */
	uint64_t serial() const { return serial_; }
	/* Set by the daemon: called with an image's serial when it is destroyed. */
	static void on_destroy(void (*fn)(uint64_t serial));
	/* A replica takes the daemon's sizes of the moment. */
	void set_sizes(uint64_t size, uint64_t backing_size);
	uint64_t backing_size_now() const { return backing_size_.load(std::memory_order_relaxed); }
	/*
	 * Hold, in `guard`, the block lock a write (or discard) of `len` bytes
	 * at exported position `pos` would take, for one done by a replica.
	 */
	void hold_write_range(std::optional<BlockRangeLock::Guard> &guard, uint64_t pos,
			      uint64_t len);
	/* The same without waiting: false (and `guard` empty) when another holds part of it. */
	bool try_hold_write_range(std::optional<BlockRangeLock::Guard> &guard, uint64_t pos,
				  uint64_t len);
	/* sync() without the write error: what a replica does (the daemon keeps that). */
	int sync_backing(bool datasync);
	/* The failed write's error since the last sync, forgotten (0: none). */
	int take_write_error() { return write_error_.exchange(0, std::memory_order_acq_rel); }
	/* A write a replica did failed with -errno `err`: keep it for the next sync. */
	void note_write_error(int err);

	~BackingImage();
	BackingImage(const BackingImage &) = delete;
	BackingImage &operator=(const BackingImage &) = delete;

	const config::ImageSpec &spec() const { return spec_; }
	const std::string &name() const { return spec_.name; }
	bool read_only() const { return read_only_; }
	bool direct_io() const { return spec_.direct_io; }
	bool discard_enabled() const { return spec_.discard; }
	uint64_t size() const { return size_.load(std::memory_order_acquire); }
	LockState lock_state() const { return lock_state_; }
	dev_t backing_dev() const { return dev_; }
	ino_t backing_ino() const { return ino_; }
	ExportedAttr attr() const;

	/*
	 * Read up to `len` bytes at exported position `pos` into `buf` (grown as
	 * needed). Returns the bytes read (empty at or past the end), which lie
	 * inside `buf` (not necessarily at its start), or -errno.
	 */
	Result<std::span<const char>> read(uint64_t pos, size_t len, AlignedBuffer &buf);

	/*
	 * Write `data` at exported position `pos`: the part inside the window
	 * (a short count when it crosses the end), -ENOSPC when nothing fits,
	 * -EROFS on a read-only image. `scratch` serves unaligned direct I/O.
	 */
	Result<size_t> write(uint64_t pos, std::span<const char> data, AlignedBuffer &scratch);

	/*
	 * fsync (datasync: fdatasync) of the backing file. Also fails, once,
	 * when a write to the backing file failed since the last sync (with
	 * that write's error), as fsync(2) reports a lost writeback; the
	 * error is then forgotten.
	 */
	int sync(bool datasync);

	/*
	 * fallocate on the exported file: mode 0 / KEEP_SIZE reserve space,
	 * PUNCH_HOLE and ZERO_RANGE discard (when `discard` is on), only
	 * inside the window.
	 */
	int fallocate(int mode, uint64_t pos, uint64_t len, AlignedBuffer &scratch);

	/* Re-read the backing size (LOOP_SET_CAPACITY); returns the new exported size. */
	Result<uint64_t> set_capacity();

	/* Note that the exported file was modified now (mtime/ctime). */
	void touch();

	/* Open handles on the exported file (detach refuses while there are any). */
	void opened() { open_count_.fetch_add(1, std::memory_order_relaxed); }
	void closed() { open_count_.fetch_sub(1, std::memory_order_relaxed); }
	uint32_t open_count() const { return open_count_.load(std::memory_order_relaxed); }

	/*
	 * Would serving both images let one change bytes the other shows? Same
	 * backing file, overlapping windows (as far as the backing file goes
	 * today, or could go), and at least one of them writable.
	 */
	bool shares_bytes_with(const BackingImage &other) const;

private:
	BackingImage() = default;

	/* Take the image's locks (image_lock.hpp) or throw ConfigError saying who holds it. */
	void lock(const std::string &reopen_path, config::LockMode default_lock);
	/* The backing range [begin, end) a write at `pos` locks; false: it locks none. */
	bool write_lock_range(uint64_t pos, uint64_t len, uint64_t &begin, uint64_t &end);

	Result<std::span<const char>> read_direct(uint64_t bpos, size_t len, AlignedBuffer &buf);
	/* Write at a backing position, under the block lock where one is needed. */
	Result<size_t> write_backing(uint64_t bpos, std::span<const char> data,
				     AlignedBuffer &scratch);
	Result<size_t> write_buffered(uint64_t bpos, std::span<const char> data);
	Result<size_t> write_direct(uint64_t bpos, std::span<const char> data,
				    AlignedBuffer &scratch);
	int zero_fill(uint64_t bpos, uint64_t len, AlignedBuffer &scratch);
	Result<uint64_t> backing_size() const;

	config::ImageSpec spec_;
	uint64_t serial_ = 0;
	bool replica_ = false;
	UniqueFd fd_;	       /* the I/O descriptor: O_DIRECT when direct_io */
	UniqueFd buffered_fd_; /* direct_io only: for the unaligned tail of the backing file */
	bool read_only_ = false;
	bool is_block_device_ = false;
	uint32_t dio_align_ = 512;
	dev_t dev_ = 0;
	ino_t ino_ = 0;
	uint32_t mode_ = 0, uid_ = 0, gid_ = 0;
	struct timespec atime_ = {};
	std::atomic<uint64_t> size_{0};
	std::atomic<uint64_t> backing_size_{0};
	std::atomic<int64_t> mtime_ns_{0};
	std::atomic<uint32_t> open_count_{0};
	std::atomic<int> write_error_{0}; /* -errno of a failed write since the last sync */
	std::shared_ptr<SharedBacking> shared_;
	LockState lock_state_ = LockState::off; /* held or unsupported: registered in shared_ */
	bool direct_counted_ = false;		/* counted in shared_->direct_users */
};

} /* namespace cgloopfs::image */
