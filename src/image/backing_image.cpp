/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "backing_image.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/stat.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fmt/core.h>

#include "common/clock.hpp"
#include "window.hpp"

namespace cgloopfs::image {

using config::ConfigError;
using config::describe;

namespace {

constexpr size_t zero_chunk = 64 * 1024;
alignas(AlignedBuffer::alignment) const char zeros[zero_chunk] = {};

/*
 * pread until `len` bytes or end of file; returns bytes read (short only at
 * the end of the file) or -errno. An error after some bytes is still an
 * error: a short count would read as the end of the file, and the caller
 * would get zeros where the backing store failed (a FUSE or network backing
 * file returns the bytes before a bad range, then fails). Only at the end
 * of a regular file, where an O_DIRECT read may refuse the unaligned
 * position a short read left, does it stop short.
 */
ssize_t pread_full(int fd, char *buf, size_t len, uint64_t pos)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(pos + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int err = errno;
			struct stat st;
			if (done > 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
			    pos + done >= static_cast<uint64_t>(st.st_size))
				break;
			return -err;
		}
		if (n == 0)
			break;
		done += static_cast<size_t>(n);
	}
	return static_cast<ssize_t>(done);
}

/* pwrite all of `len`; returns bytes written (short only after an error) or -errno. */
ssize_t pwrite_full(int fd, const char *buf, size_t len, uint64_t pos)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = ::pwrite(fd, buf + done, len - done, static_cast<off_t>(pos + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done > 0 ? static_cast<ssize_t>(done) : -errno;
		}
		if (n == 0)
			return done > 0 ? static_cast<ssize_t>(done) : -EIO;
		done += static_cast<size_t>(n);
	}
	return static_cast<ssize_t>(done);
}

uint32_t query_dio_align(int fd, bool is_block_device)
{
	uint32_t align = 0;
	struct statx stx = {};
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align != 0)
		align = std::max(stx.stx_dio_offset_align, stx.stx_dio_mem_align);
	if (align == 0 && is_block_device) {
		int lbs = 0;
		if (ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
			align = static_cast<uint32_t>(lbs);
	}
	if (align == 0)
		align = 4096; /* unknown: the largest logical block size in common use */
	return std::max<uint32_t>(align, 512);
}

} /* namespace */

BlockRangeLock::Guard::Guard(BlockRangeLock &lock, uint64_t begin, uint64_t end, bool wait)
	: lock_(lock), begin_(begin), end_(end)
{
	MutexLocker l(lock_.mutex_);
	auto free = [&]() CGL_NO_THREAD_SAFETY_ANALYSIS {
		for (const auto &[b, e] : lock_.held_)
			if (b < end_ && begin_ < e)
				return false;
		return true;
	};
	if (!wait && !free())
		return;
	lock_.released_.wait(l, free);
	lock_.held_.emplace_back(begin_, end_);
	held_ = true;
}

BlockRangeLock::Guard::~Guard()
{
	if (!held_)
		return;
	{
		MutexLocker l(lock_.mutex_);
		auto it = std::find(lock_.held_.begin(), lock_.held_.end(),
				    std::make_pair(begin_, end_));
		if (it != lock_.held_.end()) {
			*it = lock_.held_.back();
			lock_.held_.pop_back();
		}
	}
	lock_.released_.notify_all();
}

std::shared_ptr<SharedBacking> SharedBacking::of(dev_t dev, ino_t ino)
{
	static std::mutex mutex;
	static std::map<std::pair<dev_t, ino_t>, std::weak_ptr<SharedBacking>> all;
	std::lock_guard<std::mutex> l(mutex);
	for (auto it = all.begin(); it != all.end();) /* forget the ones nobody holds */
		it = it->second.expired() ? all.erase(it) : std::next(it);
	auto &slot = all[{dev, ino}];
	auto shared = slot.lock();
	if (!shared) {
		shared = std::make_shared<SharedBacking>();
		slot = shared;
	}
	return shared;
}

namespace {
std::atomic<uint64_t> next_serial{1};
std::atomic<void (*)(uint64_t)> destroy_hook{nullptr};
} /* namespace */

void BackingImage::on_destroy(void (*fn)(uint64_t serial))
{
	destroy_hook.store(fn);
}

BackingImage::~BackingImage()
{
	if (!replica_) {
		if (auto fn = destroy_hook.load())
			fn(serial_);
	}
	if (shared_ && direct_counted_)
		shared_->direct_users.fetch_sub(1);
	if (shared_ && lock_state_ != LockState::off)
		shared_->image_lock.release(!read_only_);
}

void BackingImage::lock(const std::string &reopen_path, config::LockMode default_lock)
{
	config::LockMode mode = spec_.lock.value_or(default_lock);
	if (mode != config::LockMode::automatic)
		spec_.lock = mode;
	if (mode == config::LockMode::off)
		return;
	bool writable = !read_only_;
	BackingLock::Refusal why;
	auto r = shared_->image_lock.acquire(reopen_path, writable, is_block_device_,
					     mode == config::LockMode::on, &why);
	if (r.ok()) {
		lock_state_ = *r;
		return;
	}
	std::string who = describe(spec_.origin, spec_.name);
	constexpr const char *override_hint = "; use lock=off to override";
	const std::string &path = spec_.path;
	switch (why.err) {
	case -EAGAIN:
		if (why.conflict.other_holds && why.conflict.bit == perm_write)
			throw ConfigError(fmt::format(
				"{}another process has \"{}\" open for writing (perhaps a virtual "
				"machine or another cgloopfs){}",
				who, path, override_hint));
		if (why.conflict.other_holds)
			throw ConfigError(fmt::format(
				"{}another process holds the \"{}\" permission on \"{}\", which "
				"this image needs to keep from others (QEMU lock byte {}){}",
				who, perm_name(why.conflict.bit), path,
				lock_perm_base + std::countr_zero(why.conflict.bit),
				override_hint));
		if (why.conflict.bit == perm_write)
			throw ConfigError(
				fmt::format("{}another process has \"{}\" open and lets no "
					    "one else write to it (perhaps a virtual machine "
					    "or another cgloopfs){}",
					    who, path, override_hint));
		throw ConfigError(fmt::format(
			"{}another process has \"{}\" open and lets no one else have the \"{}\" "
			"permission (QEMU lock byte {}){}",
			who, path, perm_name(why.conflict.bit),
			lock_shared_base + std::countr_zero(why.conflict.bit), override_hint));
	case -EBUSY:
		throw ConfigError(fmt::format("{}block device \"{}\" is in use (mounted, or opened "
					      "exclusively by another program){}",
					      who, path, override_hint));
	case -ENOLCK:
		throw ConfigError(fmt::format(
			"{}lock=on: \"{}\" is on a file system without open file description "
			"locks (use lock=auto to serve it unlocked)",
			who, path));
	default:
		throw ConfigError(fmt::format("{}path \"{}\": cannot be opened to lock it: {}", who,
					      path, std::strerror(-why.err)));
	}
}

std::shared_ptr<BackingImage> BackingImage::open(const config::ImageSpec &spec,
						 bool force_read_only,
						 config::LockMode default_lock)
{
	std::string who = describe(spec.origin, spec.name);
	std::shared_ptr<BackingImage> img(new BackingImage());
	img->serial_ = next_serial.fetch_add(1);
	img->spec_ = spec;
	img->read_only_ = spec.read_only || force_read_only;
	img->spec_.read_only = img->read_only_;

	/* O_PATH first: never blocks on a FIFO, never opens a device we refuse. */
	UniqueFd path_fd(::open(spec.path.c_str(), O_PATH | O_CLOEXEC));
	if (!path_fd)
		throw ConfigError(
			fmt::format("{}path \"{}\": {}", who, spec.path, std::strerror(errno)));
	struct stat st;
	if (fstat(path_fd.get(), &st) < 0)
		throw ConfigError(
			fmt::format("{}path \"{}\": {}", who, spec.path, std::strerror(errno)));
	if (S_ISDIR(st.st_mode))
		throw ConfigError(fmt::format("{}path \"{}\": is a directory", who, spec.path));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		throw ConfigError(fmt::format("{}path \"{}\": not a regular file or block device",
					      who, spec.path));
	img->is_block_device_ = S_ISBLK(st.st_mode);

	std::string proc = fmt::format("/proc/self/fd/{}", path_fd.get());
	/* Symlinks are followed once, here; the image is the file they led to. */
	char resolved[PATH_MAX];
	ssize_t rn = readlink(proc.c_str(), resolved, sizeof(resolved) - 1);
	if (rn > 0) {
		resolved[rn] = '\0';
		img->spec_.path = resolved;
	}
	int flags = (img->read_only_ ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	if (spec.direct_io) {
		UniqueFd fd(::open(proc.c_str(), flags | O_DIRECT));
		if (!fd && errno == EINVAL)
			throw ConfigError(fmt::format("{}direct_io: \"{}\" is on a file system "
						      "that does not support O_DIRECT",
						      who, spec.path));
		img->fd_ = std::move(fd);
		if (img->fd_)
			img->buffered_fd_.reset(::open(proc.c_str(), flags));
	} else {
		img->fd_.reset(::open(proc.c_str(), flags));
	}
	if (!img->fd_ || (spec.direct_io && !img->buffered_fd_)) {
		int err = errno;
		if (!img->read_only_ && (err == EACCES || err == EROFS || err == EPERM))
			throw ConfigError(fmt::format("{}path \"{}\": cannot be opened for writing "
						      "({}); set read_only",
						      who, spec.path, std::strerror(err)));
		if (err == EBUSY && img->is_block_device_)
			throw ConfigError(
				fmt::format("{}block device \"{}\" is in use (mounted, or "
					    "opened exclusively by another program)",
					    who, spec.path));
		throw ConfigError(
			fmt::format("{}path \"{}\": {}", who, spec.path, std::strerror(err)));
	}
	/* Locked before it is served (image_lock.hpp); a refusal leaves the file untouched. */
	img->shared_ = SharedBacking::of(st.st_dev, st.st_ino);
	img->lock(proc, default_lock);

	img->dev_ = st.st_dev;
	img->ino_ = st.st_ino;
	img->uid_ = spec.uid.value_or(st.st_uid);
	img->gid_ = spec.gid.value_or(st.st_gid);
	img->mode_ = spec.mode.value_or(st.st_mode & 0666);
	if (img->read_only_)
		img->mode_ &= ~0222u;
	img->atime_ = st.st_atim;
	img->mtime_ns_ = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
	if (spec.direct_io) {
		img->dio_align_ = query_dio_align(img->fd_.get(), img->is_block_device_);
		uint32_t a = img->shared_->align.load();
		while (a < img->dio_align_ &&
		       !img->shared_->align.compare_exchange_weak(a, img->dio_align_))
			;
		img->shared_->direct_users.fetch_add(1);
		img->direct_counted_ = true;
	}

	auto bsize = img->backing_size();
	if (!bsize.ok())
		throw ConfigError(fmt::format("{}path \"{}\": cannot read its size: {}", who,
					      spec.path, std::strerror(-bsize.error())));
	if (spec.offset > *bsize || (spec.offset == *bsize && *bsize > 0))
		throw ConfigError(fmt::format("{}offset: {} is past the end of \"{}\" ({} bytes)",
					      who, spec.offset, spec.path, *bsize));
	uint64_t size = window_size(*bsize, spec.offset, spec.size_limit);
	if (size == 0)
		throw ConfigError(fmt::format(
			"{}size is 0: \"{}\" has {} bytes, offset {}, size_limit {} (an image "
			"needs at least 512 bytes)",
			who, spec.path, *bsize, spec.offset, spec.size_limit));
	img->backing_size_ = *bsize;
	img->size_ = size;
	return img;
}

std::shared_ptr<BackingImage> BackingImage::replica(const ReplicaInfo &info, UniqueFd fd,
						    UniqueFd buffered_fd)
{
	std::shared_ptr<BackingImage> img(new BackingImage());
	img->replica_ = true;
	img->serial_ = info.serial;
	img->spec_.name.assign(info.name, strnlen(info.name, sizeof(info.name)));
	img->spec_.offset = info.offset;
	img->spec_.size_limit = info.size_limit;
	img->spec_.read_only = img->read_only_ = info.read_only != 0;
	img->spec_.direct_io = info.direct_io != 0;
	img->spec_.discard = info.discard != 0;
	img->is_block_device_ = info.is_block_device != 0;
	img->dio_align_ = info.dio_align;
	img->dev_ = static_cast<dev_t>(info.dev);
	img->ino_ = static_cast<ino_t>(info.ino);
	img->fd_ = std::move(fd);
	img->buffered_fd_ = std::move(buffered_fd);
	img->size_ = info.size;
	img->backing_size_ = info.backing_size;
	img->shared_ = SharedBacking::of(img->dev_, img->ino_);
	if (img->spec_.direct_io) {
		img->shared_->direct_users.fetch_add(1);
		img->direct_counted_ = true;
		uint32_t a = img->shared_->align.load();
		while (a < img->dio_align_ &&
		       !img->shared_->align.compare_exchange_weak(a, img->dio_align_))
			;
	}
	return img;
}

ReplicaInfo BackingImage::replica_info(std::vector<int> &fds) const
{
	ReplicaInfo info = {};
	info.serial = serial_;
	info.offset = spec_.offset;
	info.size_limit = spec_.size_limit;
	info.size = size();
	info.backing_size = backing_size_.load();
	info.dev = dev_;
	info.ino = ino_;
	info.dio_align = dio_align_;
	info.read_only = read_only_;
	info.direct_io = spec_.direct_io;
	info.discard = spec_.discard;
	info.is_block_device = is_block_device_;
	std::memcpy(info.name, spec_.name.data(), std::min(spec_.name.size(), sizeof(info.name)));
	fds.push_back(fd_.get());
	if (buffered_fd_)
		fds.push_back(buffered_fd_.get());
	return info;
}

void BackingImage::set_sizes(uint64_t size, uint64_t backing_size)
{
	size_.store(size, std::memory_order_relaxed);
	backing_size_.store(backing_size, std::memory_order_relaxed);
}

bool BackingImage::write_lock_range(uint64_t pos, uint64_t len, uint64_t &begin, uint64_t &end)
{
	uint64_t n = clamp_to_window(size(), pos, len);
	if (n == 0)
		return false;
	if (!spec_.direct_io && shared_->direct_users.load(std::memory_order_relaxed) == 0)
		return false;
	/* The wider of the two alignments write_direct() and write_buffered() use. */
	uint64_t a = std::max(dio_align_, shared_->align.load(std::memory_order_relaxed));
	uint64_t bpos = spec_.offset + pos;
	begin = align_down(bpos, a);
	end = align_up(bpos + n, a);
	return true;
}

void BackingImage::hold_write_range(std::optional<BlockRangeLock::Guard> &guard, uint64_t pos,
				    uint64_t len)
{
	uint64_t begin, end;
	if (write_lock_range(pos, len, begin, end))
		guard.emplace(shared_->lock, begin, end);
}

bool BackingImage::try_hold_write_range(std::optional<BlockRangeLock::Guard> &guard, uint64_t pos,
					uint64_t len)
{
	uint64_t begin, end;
	if (!write_lock_range(pos, len, begin, end))
		return true;
	guard.emplace(shared_->lock, begin, end, false);
	if (guard->held())
		return true;
	guard.reset();
	return false;
}

int BackingImage::sync_backing(bool datasync)
{
	int r = datasync ? ::fdatasync(fd_.get()) : ::fsync(fd_.get());
	return r < 0 ? -errno : 0;
}

void BackingImage::note_write_error(int err)
{
	int none = 0;
	write_error_.compare_exchange_strong(none, err, std::memory_order_acq_rel);
}

Result<uint64_t> BackingImage::backing_size() const
{
	if (is_block_device_) {
		uint64_t bytes = 0;
		if (ioctl(fd_.get(), BLKGETSIZE64, &bytes) < 0)
			return Errno{-errno};
		return bytes;
	}
	struct stat st;
	if (fstat(fd_.get(), &st) < 0)
		return Errno{-errno};
	return static_cast<uint64_t>(st.st_size);
}

ExportedAttr BackingImage::attr() const
{
	ExportedAttr a{};
	a.size = size();
	a.mode = mode_;
	a.uid = uid_;
	a.gid = gid_;
	a.block_size = spec_.block_size;
	a.atime = atime_;
	int64_t m = mtime_ns_.load(std::memory_order_relaxed);
	a.mtime.tv_sec = m / 1000000000;
	a.mtime.tv_nsec = m % 1000000000;
	a.ctime = a.mtime;
	return a;
}

bool BackingImage::shares_bytes_with(const BackingImage &other) const
{
	if (dev_ != other.dev_ || ino_ != other.ino_)
		return false;
	if (read_only_ && other.read_only_)
		return false;
	/* A window with no size limit reaches to the end, however far that grows. */
	auto end_of = [](const config::ImageSpec &s) {
		return s.size_limit ? s.offset + s.size_limit : UINT64_MAX;
	};
	return spec_.offset < end_of(other.spec_) && other.spec_.offset < end_of(spec_);
}

void BackingImage::touch()
{
	mtime_ns_.store(realtime_ns(), std::memory_order_relaxed);
}

Result<std::span<const char>> BackingImage::read(uint64_t pos, size_t len, AlignedBuffer &buf)
{
	uint64_t n = clamp_to_window(size(), pos, len);
	if (n == 0)
		return std::span<const char>();
	uint64_t bpos = spec_.offset + pos;
	if (spec_.direct_io)
		return read_direct(bpos, n, buf);
	if (!buf.reserve(n))
		return Errno{-ENOMEM};
	ssize_t got = pread_full(fd_.get(), buf.data(), n, bpos);
	if (got < 0)
		return Errno{static_cast<int>(got)};
	/* The backing file shrank under the window: the rest reads as zeros, as in loop. */
	if (static_cast<uint64_t>(got) < n)
		std::memset(buf.data() + got, 0, n - static_cast<uint64_t>(got));
	return std::span<const char>(buf.data(), n);
}

Result<std::span<const char>> BackingImage::read_direct(uint64_t bpos, size_t len,
							AlignedBuffer &buf)
{
	uint64_t a0 = align_down(bpos, dio_align_);
	uint64_t a1 = align_up(bpos + len, dio_align_);
	int fd = fd_.get();
	if (a1 > backing_size_.load(std::memory_order_relaxed)) {
		/*
		 * The last block of the backing file is partial: read it buffered,
		 * as write_direct() writes it. Its aligned end may not even be an
		 * off_t (a file ending near 2^63).
		 */
		a0 = bpos;
		a1 = bpos + len;
		fd = buffered_fd_.get();
	}
	if (!buf.reserve(a1 - a0))
		return Errno{-ENOMEM};
	ssize_t got = pread_full(fd, buf.data(), a1 - a0, a0);
	if (got < 0)
		return Errno{static_cast<int>(got)};
	uint64_t have = static_cast<uint64_t>(got);
	if (have < (bpos - a0) + len)
		std::memset(buf.data() + have, 0, (bpos - a0) + len - have);
	return std::span<const char>(buf.data() + (bpos - a0), len);
}

Result<size_t> BackingImage::write(uint64_t pos, std::span<const char> data, AlignedBuffer &scratch)
{
	if (read_only_)
		return Errno{-EROFS};
	if (data.empty())
		return size_t{0};
	uint64_t n = clamp_to_window(size(), pos, data.size());
	if (n == 0)
		return Errno{-ENOSPC};
	Result<size_t> r = write_backing(spec_.offset + pos, data.first(n), scratch);
	if (r.ok())
		touch();
	return r;
}

Result<size_t> BackingImage::write_backing(uint64_t bpos, std::span<const char> data,
					   AlignedBuffer &scratch)
{
	Result<size_t> r =
		spec_.direct_io ? write_direct(bpos, data, scratch) : write_buffered(bpos, data);
	if (!r.ok()) {
		/* Keep the first error until a sync reports it. */
		int none = 0;
		write_error_.compare_exchange_strong(none, r.error(), std::memory_order_acq_rel);
	}
	return r;
}

Result<size_t> BackingImage::write_buffered(uint64_t bpos, std::span<const char> data)
{
	/* Another window of this file does direct I/O: order against its RMWs. */
	std::optional<BlockRangeLock::Guard> guard;
	if (shared_->direct_users.load(std::memory_order_relaxed) > 0) {
		uint32_t a = shared_->align.load(std::memory_order_relaxed);
		guard.emplace(shared_->lock, align_down(bpos, a), align_up(bpos + data.size(), a));
	}
	ssize_t w = pwrite_full(fd_.get(), data.data(), data.size(), bpos);
	if (w < 0)
		return Errno{static_cast<int>(w)};
	return static_cast<size_t>(w);
}

Result<size_t> BackingImage::write_direct(uint64_t bpos, std::span<const char> data,
					  AlignedBuffer &scratch)
{
	uint64_t len = data.size();
	uint64_t a0 = align_down(bpos, dio_align_);
	uint64_t a1 = align_up(bpos + len, dio_align_);
	BlockRangeLock::Guard guard(shared_->lock, a0, a1);

	ssize_t w;
	bool aligned = a0 == bpos && a1 == bpos + len &&
		       reinterpret_cast<uintptr_t>(data.data()) % dio_align_ == 0;
	if (aligned) {
		w = pwrite_full(fd_.get(), data.data(), len, bpos);
	} else if (a1 > backing_size_.load(std::memory_order_relaxed)) {
		/* The last block of the backing file is partial: O_DIRECT cannot write it. */
		w = pwrite_full(buffered_fd_.get(), data.data(), len, bpos);
	} else {
		/* Read-modify-write of the partial head and tail blocks. */
		if (!scratch.reserve(a1 - a0))
			return Errno{-ENOMEM};
		char *blk = scratch.data();
		if (bpos != a0) {
			ssize_t r = pread_full(fd_.get(), blk, dio_align_, a0);
			if (r < 0)
				return Errno{static_cast<int>(r)};
			std::memset(blk + r, 0, dio_align_ - static_cast<size_t>(r));
		}
		uint64_t tail = a1 - dio_align_;
		if (bpos + len != a1 && (tail != a0 || bpos == a0)) {
			ssize_t r = pread_full(fd_.get(), blk + (tail - a0), dio_align_, tail);
			if (r < 0)
				return Errno{static_cast<int>(r)};
			std::memset(blk + (tail - a0) + r, 0, dio_align_ - static_cast<size_t>(r));
		}
		std::memcpy(blk + (bpos - a0), data.data(), len);
		w = pwrite_full(fd_.get(), blk, a1 - a0, a0);
		if (w >= 0 && static_cast<uint64_t>(w) < a1 - a0) {
			/* A short aligned write: report only whole bytes of ours that landed. */
			uint64_t end = a0 + static_cast<uint64_t>(w);
			w = end > bpos ? static_cast<ssize_t>(std::min(end - bpos, len)) : -EIO;
		} else if (w >= 0) {
			w = static_cast<ssize_t>(len);
		}
	}
	if (w < 0)
		return Errno{static_cast<int>(w)};
	return static_cast<size_t>(w);
}

int BackingImage::sync(bool datasync)
{
	int err = sync_backing(datasync);
	/*
	 * A write that failed since the last sync lost data that the flush of
	 * the backing file cannot bring back (a failed write through a file
	 * system leaves nothing dirty to fail again): report it, once, as
	 * fsync(2) reports a lost writeback.
	 */
	int lost = write_error_.exchange(0, std::memory_order_acq_rel);
	return err != 0 ? err : lost;
}

int BackingImage::zero_fill(uint64_t bpos, uint64_t len, AlignedBuffer &scratch)
{
	while (len > 0) {
		size_t chunk = static_cast<size_t>(std::min<uint64_t>(len, zero_chunk));
		auto r = write_backing(bpos, std::span<const char>(zeros, chunk), scratch);
		ssize_t w = r.ok() ? static_cast<ssize_t>(*r) : r.error();
		if (w < 0)
			return static_cast<int>(w);
		if (w == 0)
			return -EIO;
		bpos += static_cast<uint64_t>(w);
		len -= static_cast<uint64_t>(w);
	}
	return 0;
}

int BackingImage::fallocate(int mode, uint64_t pos, uint64_t len, AlignedBuffer &scratch)
{
	if (read_only_)
		return -EROFS;
	if (len == 0)
		return -EINVAL;
	bool punch = mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
	bool zero = (mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE;
	bool reserve = mode == 0 || mode == FALLOC_FL_KEEP_SIZE;
	if (!punch && !zero && !reserve)
		return -EOPNOTSUPP;
	uint64_t size = this->size();
	uint64_t bpos = spec_.offset + pos;
	if (reserve) {
		if (!inside_window(size, pos, len))
			return -ENOSPC;
		int r = ::fallocate(fd_.get(), FALLOC_FL_KEEP_SIZE, static_cast<off_t>(bpos),
				    static_cast<off_t>(len));
		return r < 0 ? -errno : 0;
	}
	if (!spec_.discard)
		return -EOPNOTSUPP;
	if (!inside_window(size, pos, len))
		return -EINVAL;

	std::optional<BlockRangeLock::Guard> guard;
	if (shared_->direct_users.load(std::memory_order_relaxed) > 0) {
		uint32_t a = shared_->align.load(std::memory_order_relaxed);
		guard.emplace(shared_->lock, align_down(bpos, a), align_up(bpos + len, a));
	}
	int r = -EOPNOTSUPP;
	if (zero)
		r = ::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
				static_cast<off_t>(bpos), static_cast<off_t>(len)) < 0
			    ? -errno
			    : 0;
	if (r == -EOPNOTSUPP)
		r = ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				static_cast<off_t>(bpos), static_cast<off_t>(len)) < 0
			    ? -errno
			    : 0;
	if (r == -EOPNOTSUPP || r == -EINVAL) {
		guard.reset(); /* zero_fill takes the block lock itself */
		r = zero_fill(bpos, len, scratch);
	}
	if (r == 0)
		touch();
	return r;
}

Result<uint64_t> BackingImage::set_capacity()
{
	auto bsize = backing_size();
	if (!bsize.ok())
		return bsize;
	backing_size_.store(*bsize, std::memory_order_relaxed);
	uint64_t size = window_size(*bsize, spec_.offset, spec_.size_limit);
	size_.store(size, std::memory_order_release);
	return size;
}

} /* namespace cgloopfs::image */
