/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "ops.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "common/log.hpp"
#include "open_reply.hpp"

namespace cgloopfs::fuse {

namespace {

constexpr double entry_timeout = 1.0;
constexpr double attr_timeout = 1.0;
/* Writes from this size up keep their payload where it arrived; smaller ones are copied. */
constexpr size_t adopt_threshold = 64 * 1024;

/* One open file: holds its image alive until release, even after a detach. */
struct OpenFile {
	std::shared_ptr<image::BackingImage> image;
	bool writable;
	/*
	 * The opener's cgroup and pid: requests on this handle whose caller has
	 * no cgroup of its own (writeback from the kernel's flusher: pid 0 or a
	 * kernel thread; also a caller in the root cgroup) are served by the
	 * opener's worker, so a stall there holds up only that cgroup, never
	 * the shared root queue.
	 */
	uint64_t opener_cgroup;
	pid_t opener_pid;
};

/* A directory handle: the listing as it was at opendir. */
struct DirSnapshot {
	std::vector<image::ImageEntry> entries;
};

void forget_file(Filesystem &fs, OpenFile *file)
{
	{
		MutexLocker l(fs.files_mutex);
		fs.open_files.erase(file);
	}
	file->image->closed();
	delete file;
}

Filesystem &fs_of(fuse_req_t req)
{
	return *static_cast<Filesystem *>(fuse_req_userdata(req));
}

OpenFile *file_of(const fuse_file_info *fi)
{
	return reinterpret_cast<OpenFile *>(static_cast<uintptr_t>(fi->fh));
}

void fill_root_attr(const Filesystem &fs, struct stat *st)
{
	std::memset(st, 0, sizeof(*st));
	st->st_ino = image::ImageTable::root_ino;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
	st->st_uid = fs.root_uid;
	st->st_gid = fs.root_gid;
	st->st_atim = st->st_mtim = st->st_ctim = fs.start_time;
	st->st_blksize = 4096;
}

void fill_image_attr(uint64_t ino, const image::BackingImage &img, struct stat *st)
{
	auto a = img.attr();
	std::memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | a.mode;
	st->st_nlink = 1;
	st->st_uid = a.uid;
	st->st_gid = a.gid;
	st->st_size = static_cast<off_t>(a.size);
	st->st_blocks = static_cast<blkcnt_t>(a.size / 512);
	st->st_blksize = a.block_size;
	st->st_atim = a.atime;
	st->st_mtim = a.mtime;
	st->st_ctim = a.ctime;
}

void op_init(void *userdata, struct fuse_conn_info *conn) noexcept
{
	auto &fs = *static_cast<Filesystem *>(userdata);
	/* 1 MiB requests: libfuse negotiates max_pages from max_write. */
	conn->max_write = PayloadPool::max_payload;
	conn->max_readahead = fs.options.cache == config::CacheMode::kernel ? 1024 * 1024 : 0;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
	conn->time_gran = 1;
	/* The writeback cache would hide callers (pid 0) and acknowledge early. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/*
	 * No splice: requests are read into memory (a large write's payload
	 * then stays in the buffer it arrived in). A spliced 1 MiB reply needs
	 * a pipe larger than 1 MiB, which takes CAP_SYS_RESOURCE.
	 */
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/*
	 * The kernel's asynchronous direct I/O reports a short write as EIO
	 * (fuse_get_res_by_io()), though the bytes inside the window were
	 * written. With cache=direct, write(2) takes the direct path of
	 * FOPEN_DIRECT_IO, which keeps short counts; with cache=kernel, O_DIRECT
	 * goes through ->direct_IO, which keeps them only when it is
	 * synchronous: an O_DIRECT write crossing the end is then short, as
	 * with cache=direct. Requests of up to max_write (1 MiB) are one FUSE
	 * request either way.
	 */
	if (fs.options.cache == config::CacheMode::kernel)
		conn->want &= ~FUSE_CAP_ASYNC_DIO;
	else if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) noexcept
{
	auto &fs = fs_of(req);
	if (parent != image::ImageTable::root_ino) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	try {
		auto e = fs.table.lookup(name);
		if (!e.ok()) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		fuse_entry_param ep{};
		ep.ino = e->ino;
		ep.generation = 1;
		ep.entry_timeout = entry_timeout;
		ep.attr_timeout = attr_timeout;
		fill_image_attr(e->ino, *e->image, &ep.attr);
		fuse_reply_entry(req, &ep);
	} catch (const std::bad_alloc &) {
		fuse_reply_err(req, ENOMEM);
	}
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	struct stat st;
	if (ino == image::ImageTable::root_ino) {
		fill_root_attr(fs, &st);
	} else {
		/* fstat of an open file names its handle: it works after a lazy detach too. */
		auto img = fi ? file_of(fi)->image : fs.table.find(ino);
		if (!img) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		fill_image_attr(ino, *img, &st);
	}
	fuse_reply_attr(req, &st, attr_timeout);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	if (ino == image::ImageTable::root_ino) {
		fuse_reply_err(req, EPERM);
		return;
	}
	std::shared_ptr<image::BackingImage> img = fi ? file_of(fi)->image : fs.table.find(ino);
	if (!img) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		/* Owner and mode come from the image's settings, not from chmod/chown. */
		fuse_reply_err(req, EPERM);
		return;
	}
	if (img->read_only() &&
	    (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && static_cast<uint64_t>(attr->st_size) != img->size()) {
		/* The size follows the window, as a loop device's does. */
		fuse_reply_err(req, EPERM);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
		img->touch();
	struct stat st;
	fill_image_attr(ino, *img, &st);
	fuse_reply_attr(req, &st, attr_timeout);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	if (ino == image::ImageTable::root_ino) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	auto img = fs.table.find(ino);
	if (!img) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (writable && img->read_only()) {
		fuse_reply_err(req, EROFS);
		return;
	}
	OpenFile *file = nullptr;
	try {
		const fuse_ctx *ctx = fuse_req_ctx(req);
		uint64_t cg = fs.dispatch.mode() == dispatch::Mode::cgroup
				      ? fs.resolver.cgroup_id(ctx->pid)
				      : 0;
		file = new OpenFile{img, writable, cg, ctx->pid};
		MutexLocker l(fs.files_mutex);
		fs.open_files.insert(file);
	} catch (const std::bad_alloc &) {
		delete file;
		fuse_reply_err(req, ENOMEM);
		return;
	}
	img->opened();
	bool direct = fs.options.cache == config::CacheMode::direct;
	/*
	 * A close steps a worker process out of the caller's cgroups (op_flush).
	 * Not with cache=kernel: a close would first wait for the writeback of
	 * pages dirtied through shared mappings, whoever's.
	 */
	bool flush = direct && fs.dispatch.mode() == dispatch::Mode::cgroup &&
		     fs.charge.load() == config::ChargeMode::cgroup;
	int r = reply_open(req, reinterpret_cast<uintptr_t>(file), direct, !direct, flush);
	if (r == -ENOENT)
		forget_file(fs, file); /* the open was interrupted: no RELEASE will come */
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	forget_file(fs, file_of(fi));
	fuse_reply_err(req, 0);
}

/*
 * Hand an I/O request to the dispatcher, keyed by its caller's cgroup, or
 * by its opener's when the caller has none (kernel writeback).
 */
void submit(Filesystem &fs, fuse_req_t req, IoRequest *r, const OpenFile *file)
{
	if (fs.dispatch.mode() == dispatch::Mode::cgroup) {
		const fuse_ctx *ctx = fuse_req_ctx(req);
		r->caller_pid = ctx->pid;
		r->cgroup_id = ctx->pid > 0 ? fs.resolver.cgroup_id(ctx->pid) : 0;
		if (r->cgroup_id == 0 && file->opener_cgroup != 0) {
			r->cgroup_id = file->opener_cgroup;
			r->caller_pid = file->opener_pid;
		}
	} else {
		r->caller_pid = 0;
		r->cgroup_id = 0;
	}
	r->watch_interrupts();
	fs.dispatch.submit(r);
}

/*
 * The kernel's id of the request the calling session thread is in, read
 * from the header of the message in its buffer (libfuse does not give it);
 * 0 when that header is not this request's. A host process answers the
 * kernel with it (charge.hpp).
 */
uint64_t request_unique(fuse_req_t req, IoOp op)
{
	if (!current_read_buffer)
		return 0;
	const auto *h = reinterpret_cast<const fuse_in_header *>(
		PayloadPool::read_area(current_read_buffer));
	uint32_t opcode = 0;
	switch (op) {
	case IoOp::read:
		opcode = FUSE_READ;
		break;
	case IoOp::write:
		opcode = FUSE_WRITE;
		break;
	case IoOp::fsync:
		opcode = FUSE_FSYNC;
		break;
	case IoOp::fallocate:
		opcode = FUSE_FALLOCATE;
		break;
	case IoOp::flush:
		opcode = FUSE_FLUSH;
		break;
	}
	const fuse_ctx *ctx = fuse_req_ctx(req);
	if (h->opcode != opcode || static_cast<pid_t>(h->pid) != ctx->pid || h->uid != ctx->uid)
		return 0;
	return h->unique;
}

IoRequest *new_request(Filesystem &fs, fuse_req_t req, IoOp op, fuse_file_info *fi)
{
	IoRequest *r = fs.pool.get();
	if (!r) {
		fuse_reply_err(req, ENOMEM);
		return nullptr;
	}
	r->prepare(req, op, file_of(fi)->image);
	r->unique = request_unique(req, op);
	return r;
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	IoRequest *r = new_request(fs, req, IoOp::read, fi);
	if (!r)
		return;
	r->pos = static_cast<uint64_t>(off);
	r->len = size;
	submit(fs, req, r, file_of(fi));
}

/*
 * Keep a write's payload in the session thread's buffer, which the request
 * takes over; the thread reads on into a fresh one. Waits while the parked
 * payloads fill max_queued. False when the payload must be copied instead.
 */
bool adopt_payload(Filesystem &fs, const fuse_bufvec *in, IoRequest *r)
{
	char *base = current_read_buffer;
	if (!base || in->count != 1 || (in->buf[0].flags & FUSE_BUF_IS_FD) ||
	    in->buf[0].mem != PayloadPool::write_payload(base))
		return false;
	char *fresh = fs.payloads.get_for_reading();
	if (!fresh)
		return false;
	if (!fs.payloads.reserve_parked(fs.reading_ends)) {
		fs.payloads.put(fresh);
		return false;
	}
	r->adopt_payload(fs.payloads, base);
	current_read_buffer = fresh;
	return true;
}

void op_write_buf(fuse_req_t req, fuse_ino_t, struct fuse_bufvec *in, off_t off,
		  fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	OpenFile *file = file_of(fi);
	if (file->image->read_only()) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	size_t size = fuse_buf_size(in);
	IoRequest *r = new_request(fs, req, IoOp::write, fi);
	if (!r)
		return;
	r->pos = static_cast<uint64_t>(off);
	r->len = size;
	if (size >= adopt_threshold && adopt_payload(fs, in, r)) {
		submit(fs, req, r, file_of(fi));
		return;
	}
	if (!r->payload.reserve(size)) {
		r->cancel(ENOMEM);
		r->release();
		return;
	}
	/* The buffer dies when this callback returns: copy the payload out. */
	fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
	dst.buf[0].mem = r->payload.data();
	ssize_t copied = fuse_buf_copy(&dst, in, static_cast<fuse_buf_copy_flags>(0));
	if (copied < 0 || static_cast<size_t>(copied) != size) {
		r->cancel(copied < 0 ? static_cast<int>(-copied) : EIO);
		r->release();
		return;
	}
	submit(fs, req, r, file_of(fi));
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info *fi) noexcept
{
	/*
	 * Writes go through to the backing file; there is nothing to flush.
	 * But a close(2) is often a process's last word (an exit closes every
	 * file): a worker process that serves the caller's cgroup from inside
	 * it (charge=cgroup) steps out before it answers, unless it is serving
	 * more of that cgroup's requests. A container whose last process exits
	 * (its exit waits for the flush's answer) then finds nothing of ours
	 * in its cgroups, whatever the idle delay before a worker process
	 * steps out by itself. Answered here when there is no such process, or
	 * it cannot take the flush at once (its slots held by a stalled backing
	 * store); one it takes but does not get to (stopped, frozen) is
	 * answered 20 ms later (IoRequest::done_after_ns()): a close never
	 * waits for a stall.
	 */
	auto &fs = fs_of(req);
	const fuse_ctx *ctx = fuse_req_ctx(req);
	uint64_t cgroup = 0;
	if (fs.dispatch.mode() == dispatch::Mode::cgroup && ctx->pid > 0)
		cgroup = fs.resolver.cgroup_id(ctx->pid);
	IoRequest *r = cgroup != 0 ? fs.pool.get() : nullptr;
	if (!r) {
		fuse_reply_err(req, 0);
		return;
	}
	r->prepare(req, IoOp::flush, file_of(fi)->image);
	r->unique = request_unique(req, IoOp::flush);
	r->caller_pid = ctx->pid;
	r->cgroup_id = cgroup;
	r->watch_interrupts();
	if (fs.dispatch.submit_hosted(r))
		return;
	(void)r->cancel(0); /* answered here (and not interrupted meanwhile) */
	r->release();
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	IoRequest *r = new_request(fs, req, IoOp::fsync, fi);
	if (!r)
		return;
	r->datasync = datasync != 0;
	submit(fs, req, r, file_of(fi));
}

void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length,
		  fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	if (offset < 0 || length <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	IoRequest *r = new_request(fs, req, IoOp::fallocate, fi);
	if (!r)
		return;
	r->mode = mode;
	r->pos = static_cast<uint64_t>(offset);
	r->len = static_cast<uint64_t>(length);
	submit(fs, req, r, file_of(fi));
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info *fi) noexcept
{
	auto &fs = fs_of(req);
	if (ino != image::ImageTable::root_ino) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	try {
		auto *snap = new DirSnapshot{fs.table.list()};
		fi->fh = reinterpret_cast<uintptr_t>(snap);
		fuse_reply_open(req, fi);
	} catch (const std::bad_alloc &) {
		fuse_reply_err(req, ENOMEM);
	}
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info *fi) noexcept
{
	auto *snap = reinterpret_cast<DirSnapshot *>(static_cast<uintptr_t>(fi->fh));
	std::vector<char> buf;
	try {
		buf.resize(size);
	} catch (const std::bad_alloc &) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	/* Offsets: 1 is ".", 2 is "..", 3 + i is entry i. */
	for (off_t i = off; i < static_cast<off_t>(snap->entries.size()) + 2; i++) {
		struct stat st = {};
		const char *name;
		if (i == 0) {
			name = ".";
			st.st_ino = image::ImageTable::root_ino;
			st.st_mode = S_IFDIR;
		} else if (i == 1) {
			name = "..";
			st.st_ino = image::ImageTable::root_ino;
			st.st_mode = S_IFDIR;
		} else {
			const auto &e = snap->entries[static_cast<size_t>(i - 2)];
			name = e.image->name().c_str();
			st.st_ino = e.ino;
			st.st_mode = S_IFREG;
		}
		size_t need =
			fuse_add_direntry(req, buf.data() + used, size - used, name, &st, i + 1);
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf.data(), used);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info *fi) noexcept
{
	delete reinterpret_cast<DirSnapshot *>(static_cast<uintptr_t>(fi->fh));
	fuse_reply_err(req, 0);
}

void op_statfs(fuse_req_t req, fuse_ino_t) noexcept
{
	auto &fs = fs_of(req);
	struct statvfs sv = {};
	uint64_t total = 0;
	size_t n = 0;
	try {
		for (const auto &e : fs.table.list()) {
			total += e.image->size();
			n++;
		}
	} catch (...) {
	}
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = total / 4096;
	sv.f_files = n + 1;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* Answer an xattr read: its size when asked (size 0), ERANGE when too small. */
void reply_xattr_value(fuse_req_t req, const std::string &v, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, v.size());
	else if (size < v.size())
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v.data(), v.size());
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) noexcept
{
	auto &fs = fs_of(req);
	if (ino != image::ImageTable::root_ino || std::strcmp(name, control_xattr) != 0 ||
	    fs.control_path.empty()) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	reply_xattr_value(req, fs.control_path, size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) noexcept
{
	auto &fs = fs_of(req);
	std::string v;
	if (ino == image::ImageTable::root_ino && !fs.control_path.empty())
		v = std::string(control_xattr) + '\0';
	reply_xattr_value(req, v, size);
}

/* The directory is the image list: it changes only through the control socket. */
void op_mknod(fuse_req_t req, fuse_ino_t, const char *, mode_t, dev_t) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_mkdir(fuse_req_t req, fuse_ino_t, const char *, mode_t) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_unlink(fuse_req_t req, fuse_ino_t, const char *) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_rmdir(fuse_req_t req, fuse_ino_t, const char *) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_symlink(fuse_req_t req, const char *, fuse_ino_t, const char *) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_rename(fuse_req_t req, fuse_ino_t, const char *, fuse_ino_t, const char *,
	       unsigned int) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char *) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_create(fuse_req_t req, fuse_ino_t, const char *, mode_t, fuse_file_info *) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_setxattr(fuse_req_t req, fuse_ino_t, const char *, const char *, size_t, int) noexcept
{
	fuse_reply_err(req, EPERM);
}
void op_removexattr(fuse_req_t req, fuse_ino_t, const char *) noexcept
{
	fuse_reply_err(req, EPERM);
}

} /* namespace */

void Filesystem::close_all_files()
{
	MutexLocker l(files_mutex);
	for (void *f : open_files)
		delete static_cast<OpenFile *>(f);
	open_files.clear();
}

size_t Filesystem::open_handles()
{
	MutexLocker l(files_mutex);
	return open_files.size();
}

void Filesystem::invalidate(uint64_t ino, const std::string &name)
{
	if (!session)
		return;
	/* -ENOENT only means the kernel had nothing cached. */
	(void)fuse_lowlevel_notify_inval_entry(session, image::ImageTable::root_ino, name.c_str(),
					       name.size());
	(void)fuse_lowlevel_notify_inval_inode(session, ino, 0, 0);
}

void Filesystem::invalidate_attr(uint64_t ino)
{
	if (session)
		(void)fuse_lowlevel_notify_inval_inode(session, ino, 0, 0);
}

fuse_lowlevel_ops make_ops()
{
	fuse_lowlevel_ops ops{};
	ops.init = op_init;
	ops.lookup = op_lookup;
	ops.getattr = op_getattr;
	ops.setattr = op_setattr;
	ops.open = op_open;
	ops.release = op_release;
	ops.flush = op_flush;
	ops.read = op_read;
	ops.write_buf = op_write_buf;
	ops.fsync = op_fsync;
	ops.fallocate = op_fallocate;
	ops.opendir = op_opendir;
	ops.readdir = op_readdir;
	ops.releasedir = op_releasedir;
	ops.statfs = op_statfs;
	ops.getxattr = op_getxattr;
	ops.listxattr = op_listxattr;
	ops.setxattr = op_setxattr;
	ops.removexattr = op_removexattr;
	ops.mknod = op_mknod;
	ops.mkdir = op_mkdir;
	ops.unlink = op_unlink;
	ops.rmdir = op_rmdir;
	ops.symlink = op_symlink;
	ops.rename = op_rename;
	ops.link = op_link;
	ops.create = op_create;
	return ops;
}

} /* namespace cgloopfs::fuse */
