/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "resolver.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <linux/ioctl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proc_cgroup.hpp"

namespace cgloopfs::cgroup {

namespace {

/* From linux/pidfd.h (6.13+), which Debian 12's headers predate. */
struct PidfdInfo {
	uint64_t mask;
	uint64_t cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	uint32_t spare0[1];
};
static_assert(sizeof(PidfdInfo) == 64, "PIDFD_INFO_SIZE_VER0");
constexpr unsigned long pidfd_get_info = _IOWR(0xFF, 11, PidfdInfo);
constexpr uint64_t pidfd_info_cgroupid = 1ULL << 2;
constexpr unsigned pidfd_thread = O_EXCL;

std::string read_small_file(const std::string &path)
{
	UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
	if (!fd)
		return {};
	std::string out;
	char buf[4096];
	for (;;) {
		ssize_t n = ::read(fd.get(), buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		out.append(buf, static_cast<size_t>(n));
		if (out.size() > 65536)
			break;
	}
	return out;
}

/*
 * Ask a pidfd for its thread's cgroup id: 0 when the thread is gone (ESRCH,
 * also after its tid was reused) or the answer is not about `tid`.
 */
uint64_t ask_pidfd(int fd, pid_t tid)
{
	PidfdInfo info{};
	info.mask = pidfd_info_cgroupid;
	if (ioctl(fd, pidfd_get_info, &info) < 0)
		return 0;
	if (!(info.mask & pidfd_info_cgroupid) || info.pid != static_cast<uint32_t>(tid))
		return 0;
	return info.cgroupid;
}

/*
 * The per-thread pidfd cache: direct-mapped by tid, closed at thread exit.
 * It holds pidfds of live threads only, give or take the callers that ended
 * since this thread's last miss: a pidfd that answers ESRCH is closed at
 * once, and every miss (which pays a pidfd_open anyway) first closes, in one
 * poll(2), every cached pidfd whose thread has exited. So many short-lived
 * callers leave no trail of pidfds behind; a hit costs what it did.
 */
struct PidfdCache {
	static constexpr size_t slots = 64;
	struct Slot {
		pid_t tid = 0;
		int fd = -1;
	};
	Slot slot[slots];

	~PidfdCache()
	{
		for (auto &s : slot)
			drop(s);
	}

	static void drop(Slot &s) noexcept
	{
		if (s.fd >= 0)
			::close(s.fd);
		s.fd = -1;
		s.tid = 0;
	}

	/*
	 * Close the pidfds of threads that have exited: a pidfd polls readable
	 * (POLLIN) once its thread has exited, and POLLHUP once it is reaped.
	 */
	void sweep() noexcept
	{
		struct pollfd pfd[slots];
		size_t index[slots];
		nfds_t n = 0;
		for (size_t i = 0; i < slots; i++) {
			if (slot[i].fd < 0)
				continue;
			pfd[n] = {slot[i].fd, POLLIN, 0};
			index[n++] = i;
		}
		if (n == 0 || ::poll(pfd, n, 0) <= 0)
			return;
		for (nfds_t k = 0; k < n; k++)
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))
				drop(slot[index[k]]);
	}

	/* Open pidfds, for tests. */
	size_t size() const noexcept
	{
		size_t n = 0;
		for (auto &s : slot)
			n += s.fd >= 0;
		return n;
	}
};

thread_local PidfdCache pidfd_cache;

std::optional<std::string> v2_path_of(pid_t tid)
{
	return parse_v2_path(read_small_file("/proc/" + std::to_string(tid) + "/cgroup"));
}

} /* namespace */

Resolver::Resolver()
{
	auto mount = find_cgroup2_mount(read_small_file("/proc/self/mountinfo"));
	if (!mount)
		return;
	mount_ = *mount;
	root_fd_.reset(::open(mount_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (!root_fd_)
		return;
	struct stat st;
	if (fstat(root_fd_.get(), &st) == 0)
		root_id_ = st.st_ino;
	if (id_by_pidfd(static_cast<pid_t>(syscall(SYS_gettid))) != 0)
		method_ = Method::pidfd_info;
	else if (id_by_proc(static_cast<pid_t>(syscall(SYS_gettid))) != 0)
		method_ = Method::proc_file;
}

uint64_t Resolver::id_by_pidfd(pid_t tid) const noexcept
{
	if (tid <= 0)
		return 0;
	UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_open, tid, pidfd_thread)));
	if (!fd)
		return 0;
	return ask_pidfd(fd.get(), tid);
}

uint64_t Resolver::id_by_cached_pidfd(pid_t tid) const noexcept
{
	if (tid <= 0)
		return 0;
	auto &s = pidfd_cache.slot[static_cast<size_t>(tid) % PidfdCache::slots];
	if (s.tid == tid && s.fd >= 0) {
		if (uint64_t id = ask_pidfd(s.fd, tid))
			return id;
	}
	/*
	 * A miss, or the cached thread is gone (its tid may have been reused):
	 * let go of this slot and of every pidfd whose thread has exited, then
	 * open this tid afresh.
	 */
	PidfdCache::drop(s);
	pidfd_cache.sweep();
	/* pidfds are always close-on-exec; pidfd_open takes no O_CLOEXEC. */
	int fd = static_cast<int>(syscall(SYS_pidfd_open, tid, pidfd_thread));
	if (fd < 0)
		return 0;
	uint64_t id = ask_pidfd(fd, tid);
	if (id == 0) {
		::close(fd); /* gone already, or no answer: nothing worth keeping */
		return 0;
	}
	s.tid = tid;
	s.fd = fd;
	return id;
}

size_t Resolver::cached_pidfds() noexcept
{
	return pidfd_cache.size();
}

uint64_t Resolver::id_by_proc(pid_t tid) const noexcept
{
	if (tid <= 0 || !root_fd_)
		return 0;
	try {
		auto path = v2_path_of(tid);
		if (!path || !path_is_reachable(*path))
			return 0;
		std::string rel = *path == "/" ? "." : path->substr(1);
		struct stat st;
		if (fstatat(root_fd_.get(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			return 0;
		return st.st_ino;
	} catch (...) {
		return 0;
	}
}

uint64_t Resolver::cgroup_id(pid_t tid) const noexcept
{
	uint64_t id = 0;
	switch (method_) {
	case Method::pidfd_info:
		id = id_by_cached_pidfd(tid);
		break;
	case Method::proc_file:
		id = id_by_proc(tid);
		break;
	case Method::none:
		break;
	}
	return id == root_id_ ? 0 : id;
}

std::string Resolver::path(pid_t tid) const
{
	if (tid <= 0)
		return {};
	return v2_path_of(tid).value_or(std::string());
}

} /* namespace cgloopfs::cgroup */
