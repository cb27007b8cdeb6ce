/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mount_point.hpp"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <signal.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fmt/core.h>

#include "common/log.hpp"
#include "common/mountinfo.hpp"

namespace cgloopfs::daemon {

namespace {

/* A stacked mount more than this deep is not a crash leftover. */
constexpr int max_dead_mounts = 8;

/*
 * statfs(2) of `path` in a child process, which always asks the FUSE daemon
 * (a stat may be answered from the attribute cache): 0 when it answers,
 * -errno when it fails, -ETIMEDOUT when it does not answer in time (a FUSE
 * wait is killable: the child is killed and reaped).
 */
int probe_statfs(const std::string &path, int timeout_ms)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		struct statfs sfs;
		_exit(statfs(path.c_str(), &sfs) == 0 ? 0 : (errno & 0xff));
	}
	int status = 0;
	for (int waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			return -ETIMEDOUT;
		}
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, nullptr);
	}
	if (!WIFEXITED(status))
		return -EIO;
	return -WEXITSTATUS(status);
}

/* realpath(3), also of a dead mount: its parent resolved, its name appended. */
std::optional<std::string> resolve(const std::string &given, int *ret_err)
{
	char real[PATH_MAX];
	if (realpath(given.c_str(), real))
		return std::string(real);
	int err = errno;
	*ret_err = err;
	if (err != ENOTCONN)
		return std::nullopt;
	std::string path = given;
	while (path.size() > 1 && path.back() == '/')
		path.pop_back();
	auto slash = path.find_last_of('/');
	std::string parent = slash == std::string::npos ? std::string(".")
			     : slash == 0		? std::string("/")
							: path.substr(0, slash);
	std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
	if (name.empty() || name == "." || name == ".." || !realpath(parent.c_str(), real))
		return std::nullopt;
	std::string out = real;
	if (out != "/")
		out += '/';
	out += name;
	return out;
}

} /* namespace */

std::optional<std::string> prepare_mount_point(const std::string &given, std::string *ret_why)
{
	int err = 0;
	auto path = resolve(given, &err);
	if (!path) {
		*ret_why = fmt::format("mount point \"{}\": {}", given, std::strerror(err));
		return std::nullopt;
	}
	for (int round = 0; round <= max_dead_mounts; round++) {
		auto entries = parse_mountinfo(read_mountinfo());
		const MountEntry *top = top_mount_at(entries, *path);
		if (!top || top->fstype.rfind("fuse", 0) != 0)
			return path;
		bool ours = top->fstype == "fuse.cgloopfs";
		int r = probe_statfs(*path, probe_timeout_ms);
		if (r == 0) {
			if (!ours)
				return path; /* a live mount of another kind: mount over it */
			*ret_why =
				fmt::format("mount point \"{}\": a running cgloopfs already serves "
					    "it (unmount it first)",
					    *path);
			return std::nullopt;
		}
		if (r == -ETIMEDOUT) {
			*ret_why = fmt::format("mount point \"{}\": the {} mount there does not "
					       "answer (its daemon is stuck?)",
					       *path, top->fstype);
			return std::nullopt;
		}
		if (r != -ENOTCONN && r != -ECONNABORTED) {
			*ret_why = fmt::format("mount point \"{}\": {}", *path, std::strerror(-r));
			return std::nullopt;
		}
		if (!ours) {
			*ret_why = fmt::format("mount point \"{}\": a dead {} mount is there ({}); "
					       "unmount it with: umount -l {}",
					       *path, top->fstype, std::strerror(-r), *path);
			return std::nullopt;
		}
		if (int u = unmount_dead_mount(*path, makedev(top->major, top->minor)); u < 0) {
			*ret_why =
				fmt::format("mount point \"{}\": the cgloopfs daemon of the mount "
					    "there is gone, and unmounting it failed: {}",
					    *path, std::strerror(-u));
			return std::nullopt;
		}
		log::warning("mount point \"{}\": the cgloopfs daemon of the mount there is gone "
			     "({}); lazily unmounted its dead mount",
			     *path, std::strerror(-r));
	}
	*ret_why = fmt::format("mount point \"{}\": more than {} dead cgloopfs mounts are "
			       "stacked there",
			       *path, max_dead_mounts);
	return std::nullopt;
}

} /* namespace cgloopfs::daemon */
