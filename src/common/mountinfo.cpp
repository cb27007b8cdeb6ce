/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mountinfo.hpp"

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <spawn.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "strings.hpp"

namespace cgloopfs {

namespace {

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
std::string unescape(std::string_view s)
{
	std::string out;
	for (size_t i = 0; i < s.size(); i++) {
		if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' &&
		    s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
			out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 +
						 (s[i + 3] - '0'));
			i += 3;
		} else {
			out += s[i];
		}
	}
	return out;
}

} /* namespace */

std::vector<MountEntry> parse_mountinfo(std::string_view text)
{
	std::vector<MountEntry> out;
	for (std::string_view line : split(text, '\n')) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		auto f = split(line, ' ');
		size_t dash = 0;
		for (size_t i = 6; i < f.size(); i++) {
			if (f[i] == "-") {
				dash = i;
				break;
			}
		}
		if (dash == 0 || dash + 2 >= f.size())
			continue;
		MountEntry e{unescape(f[4]), unescape(f[dash + 1]), unescape(f[dash + 2])};
		if (std::sscanf(std::string(f[2]).c_str(), "%u:%u", &e.major, &e.minor) != 2)
			continue;
		e.root = unescape(f[3]);
		if (dash + 3 < f.size())
			e.super_options = unescape(f[dash + 3]);
		out.push_back(std::move(e));
	}
	return out;
}

std::string read_mountinfo()
{
	std::ifstream in("/proc/self/mountinfo");
	std::ostringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

const MountEntry *top_mount_at(const std::vector<MountEntry> &entries, std::string_view path)
{
	const MountEntry *found = nullptr;
	for (const auto &e : entries)
		if (e.mountpoint == path)
			found = &e;
	return found;
}

bool has_device(const std::vector<MountEntry> &entries, unsigned major, unsigned minor)
{
	for (const auto &e : entries)
		if (e.major == major && e.minor == minor)
			return true;
	return false;
}

int unmount_lazily(const std::string &path)
{
	if (umount2(path.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		return 0;
	if (errno != EPERM)
		return -errno;
	std::string prog = "fusermount3";
	std::string u = "-u", z = "-z", dashes = "--", p = path;
	char *argv[] = {prog.data(), u.data(), z.data(), dashes.data(), p.data(), nullptr};
	pid_t pid;
	int r = posix_spawnp(&pid, "fusermount3", nullptr, nullptr, argv, environ);
	if (r != 0)
		return -r;
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EPERM;
}

int unmount_dead_mount(const std::string &path, dev_t dev)
{
	auto entries = parse_mountinfo(read_mountinfo());
	const MountEntry *top = top_mount_at(entries, path);
	if (!top || makedev(top->major, top->minor) != dev)
		return -EBUSY;
	return unmount_lazily(path);
}

} /* namespace cgloopfs */
