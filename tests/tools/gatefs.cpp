/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gatefs: a test-only FUSE file system that serves one backing file as
 * MOUNTPOINT/disk and holds every read and write reaching at or past
 * GATE_OFFSET while the file GATE_FILE exists. It stalls a backing store on
 * purpose, so the isolation tests can show one cgroup stuck while others go on.
 *
 *   gatefs BACKING MOUNTPOINT GATE_OFFSET GATE_FILE
 *
 * Runs in the foreground; multithreaded (a held request holds only its own
 * thread); direct I/O with parallel direct writes, so the kernel neither
 * caches nor serializes what passes through it. Stops on unmount.
 */
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace {

int backing_fd = -1;
uint64_t gate_offset = 0;
std::string gate_file;
std::atomic<unsigned> held{0};
constexpr fuse_ino_t disk_ino = 2;

void wait_gate(uint64_t off, uint64_t len)
{
	if (off + len <= gate_offset)
		return;
	bool counted = false;
	while (access(gate_file.c_str(), F_OK) == 0) {
		if (!counted) {
			held++;
			counted = true;
		}
		usleep(5000);
	}
	if (counted)
		held--;
}

void fill_attr(fuse_ino_t ino, struct stat *st)
{
	std::memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return;
	}
	struct stat b;
	fstat(backing_fd, &b);
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = b.st_size;
	st->st_blocks = b.st_blocks;
	st->st_blksize = 4096;
}

void g_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent != FUSE_ROOT_ID || std::strcmp(name, "disk") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_entry_param e{};
	e.ino = disk_ino;
	e.attr_timeout = 0;
	e.entry_timeout = 0;
	fill_attr(disk_ino, &e.attr);
	fuse_reply_entry(req, &e);
}

void g_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info *)
{
	struct stat st;
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

void g_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, fuse_file_info *)
{
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (ftruncate(backing_fd, attr->st_size) < 0) {
			fuse_reply_err(req, errno);
			return;
		}
	}
	struct stat st;
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, 0);
}

void g_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info *)
{
	if (ino != disk_ino) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	struct fuse_open_out out = {};
	out.open_flags = FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES;
	struct iovec iov = {&out, sizeof(out)};
	fuse_reply_iov(req, &iov, 1);
}

void g_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info *)
{
	wait_gate(static_cast<uint64_t>(off), size);
	char *buf = static_cast<char *>(std::malloc(size ? size : 1));
	ssize_t n = pread(backing_fd, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, static_cast<size_t>(n));
	std::free(buf);
}

void g_write(fuse_req_t req, fuse_ino_t, const char *buf, size_t size, off_t off, fuse_file_info *)
{
	wait_gate(static_cast<uint64_t>(off), size);
	ssize_t n = pwrite(backing_fd, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, static_cast<size_t>(n));
}

void g_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info *)
{
	fuse_reply_err(req, fsync(backing_fd) < 0 ? errno : 0);
}

void g_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info *)
{
	fuse_reply_err(req, fallocate(backing_fd, mode, off, len) < 0 ? errno : 0);
}

void g_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info *)
{
	char buf[512];
	size_t used = 0;
	const char *names[] = {".", "..", "disk"};
	fuse_ino_t inos[] = {FUSE_ROOT_ID, FUSE_ROOT_ID, disk_ino};
	for (off_t i = off; i < 3; i++) {
		struct stat st = {};
		st.st_ino = inos[i];
		st.st_mode = i == 2 ? S_IFREG : S_IFDIR;
		size_t n = fuse_add_direntry(req, buf + used, std::min(size, sizeof(buf)) - used,
					     names[i], &st, i + 1);
		if (n > std::min(size, sizeof(buf)) - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

} /* namespace */

int main(int argc, char **argv)
{
	if (argc != 5) {
		std::fprintf(stderr, "usage: gatefs BACKING MOUNTPOINT GATE_OFFSET GATE_FILE\n");
		return 2;
	}
	backing_fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (backing_fd < 0) {
		std::perror(argv[1]);
		return 1;
	}
	gate_offset = std::strtoull(argv[3], nullptr, 0);
	gate_file = argv[4];

	fuse_lowlevel_ops ops{};
	ops.lookup = g_lookup;
	ops.getattr = g_getattr;
	ops.setattr = g_setattr;
	ops.open = g_open;
	ops.read = g_read;
	ops.write = g_write;
	ops.fsync = g_fsync;
	ops.fallocate = g_fallocate;
	ops.readdir = g_readdir;

	char arg0[] = "gatefs";
	char arg1[] = "-o";
	char arg2[] = "fsname=gatefs,subtype=gatefs";
	char *fargv[] = {arg0, arg1, arg2, nullptr};
	fuse_args args = FUSE_ARGS_INIT(3, fargv);
	fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), nullptr);
	if (!se || fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[2]) != 0) {
		std::fprintf(stderr, "gatefs: cannot mount %s\n", argv[2]);
		return 1;
	}
	fuse_loop_config *cfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(cfg, 64);
	fuse_loop_cfg_set_idle_threads(cfg, 64);
	int r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	return r == 0 ? 0 : 1;
}
