/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "placement.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "common/mountinfo.hpp"
#include "common/strings.hpp"
#include "proc_cgroup.hpp"

namespace cgloopfs::cgroup {

namespace {

/* The comma-separated words of `s`. */
std::vector<std::string_view> words(std::string_view s)
{
	std::vector<std::string_view> out;
	for (std::string_view w : split(s, ','))
		if (!w.empty())
			out.push_back(w);
	return out;
}

/*
 * Does a v1 mount with super options `opts` hold exactly the hierarchy
 * whose /proc/PID/cgroup controller list is `controllers`? Every controller
 * of the line is among the options, and no controller of another
 * hierarchy is (the options also hold rw, relatime and the like, which
 * the line never names).
 */
bool mount_holds(std::string_view opts, std::string_view controllers)
{
	auto want = words(controllers);
	auto have = words(opts);
	if (want.empty())
		return false;
	for (std::string_view c : want)
		if (std::find(have.begin(), have.end(), c) == have.end())
			return false;
	return true;
}

/* `path` below a mount of `root` at `mountpoint`; nullopt when outside the root. */
std::optional<std::string> below(const MountEntry &m, std::string_view path)
{
	std::string_view root = m.root;
	if (root == "/")
		return m.mountpoint + (path == "/" ? "" : std::string(path));
	if (path.substr(0, root.size()) != root ||
	    (path.size() > root.size() && path[root.size()] != '/'))
		return std::nullopt;
	return m.mountpoint + std::string(path.substr(root.size()));
}

} /* namespace */

Placement parse_placement(std::string_view mountinfo, std::string_view proc_cgroup)
{
	Placement out;
	auto mounts = parse_mountinfo(mountinfo);
	if (auto v2 = parse_v2_path(proc_cgroup); v2 && path_is_reachable(*v2)) {
		for (const auto &m : mounts) {
			if (m.fstype != "cgroup2")
				continue;
			if (auto dir = below(m, *v2)) {
				out.v2_dir = *dir;
				break;
			}
		}
	}
	for (std::string_view line : split(proc_cgroup, '\n')) {
		/* "ID:CONTROLLERS:PATH"; the path may itself hold colons. */
		size_t c1 = line.find(':');
		if (c1 == std::string_view::npos)
			continue;
		size_t c2 = line.find(':', c1 + 1);
		if (c2 == std::string_view::npos)
			continue;
		std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
		std::string_view path = line.substr(c2 + 1);
		if (controllers.empty() || !path_is_reachable(path))
			continue; /* the v2 line, or a path from another namespace */
		for (const auto &m : mounts) {
			if (m.fstype != "cgroup" || !mount_holds(m.super_options, controllers))
				continue;
			if (auto dir = below(m, path)) {
				if (std::find(out.v1_dirs.begin(), out.v1_dirs.end(), *dir) ==
				    out.v1_dirs.end())
					out.v1_dirs.push_back(*dir);
				break;
			}
		}
	}
	return out;
}

std::optional<Placement> placement_of(pid_t pid)
{
	std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
	if (!f)
		return std::nullopt;
	std::stringstream ss;
	ss << f.rdbuf();
	std::string text = ss.str();
	if (text.empty())
		return std::nullopt;
	return parse_placement(read_mountinfo(), text);
}

namespace {

/* Does the cgroup at `dir` hold `other` (it, or a cgroup below it)? */
bool holds(const std::string &dir, const std::string &other)
{
	return other.size() >= dir.size() && other.compare(0, dir.size(), dir) == 0 &&
	       (other.size() == dir.size() || other[dir.size()] == '/');
}

/* The number in the cgroup file at `path`; false when unreadable or "max". */
bool read_count(const std::string &path, unsigned long long &value)
{
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[32];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || buf[0] < '0' || buf[0] > '9')
		return false;
	buf[n] = '\0';
	value = std::strtoull(buf, nullptr, 10);
	return true;
}

} /* namespace */

std::vector<std::string> pids_limits(std::string dir, const std::vector<std::string> &from)
{
	std::vector<std::string> out;
	/* A cgroup tree is not deeper than this in practice; a bound all the same. */
	for (int depth = 0; depth < 64 && dir.size() > 1; depth++) {
		if (access((dir + "/cgroup.procs").c_str(), F_OK) != 0)
			break; /* above the hierarchy's root */
		bool shared = std::any_of(from.begin(), from.end(),
					  [&](const std::string &f) { return holds(dir, f); });
		if (!shared && access((dir + "/pids.max").c_str(), F_OK) == 0)
			out.push_back(dir);
		size_t slash = dir.rfind('/');
		if (slash == std::string::npos)
			break;
		dir.resize(slash);
	}
	return out;
}

std::string cpu_group(const Placement &place)
{
	for (const auto &d : place.v1_dirs)
		if (access((d + "/cpu.shares").c_str(), F_OK) == 0)
			return d;
	std::string dir = place.v2_dir;
	for (int depth = 0; depth < 64 && dir.size() > 1; depth++) {
		if (access((dir + "/cgroup.procs").c_str(), F_OK) != 0)
			break; /* above the hierarchy's root */
		if (access((dir + "/cpu.weight").c_str(), F_OK) == 0)
			return dir;
		size_t slash = dir.rfind('/');
		if (slash == std::string::npos)
			break;
		dir.resize(slash);
	}
	return "";
}

bool pids_room(const std::vector<std::string> &dirs, unsigned more)
{
	for (const auto &d : dirs) {
		unsigned long long max = 0, current = 0;
		if (read_count(d + "/pids.max", max) && read_count(d + "/pids.current", current) &&
		    current + more > max)
			return false;
	}
	return true;
}

} /* namespace cgloopfs::cgroup */
