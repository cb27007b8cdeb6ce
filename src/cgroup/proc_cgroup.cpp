/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "proc_cgroup.hpp"

#include <vector>

#include "common/mountinfo.hpp"
#include "common/strings.hpp"

namespace cgloopfs::cgroup {

std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo)
{
	for (auto &m : parse_mountinfo(mountinfo))
		if (m.fstype == "cgroup2")
			return std::move(m.mountpoint);
	return std::nullopt;
}

std::optional<std::string> parse_v2_path(std::string_view proc_cgroup)
{
	for (std::string_view line : split(proc_cgroup, '\n')) {
		if (line.substr(0, 3) != "0::")
			continue;
		std::string_view path = line.substr(3);
		if (path.empty() || path.front() != '/')
			return std::nullopt;
		/* A deleted cgroup shows " (deleted)" after its path. */
		constexpr std::string_view deleted = " (deleted)";
		if (path.size() > deleted.size() &&
		    path.substr(path.size() - deleted.size()) == deleted)
			path.remove_suffix(deleted.size());
		return std::string(path);
	}
	return std::nullopt;
}

bool path_is_reachable(std::string_view path)
{
	if (path.empty() || path.front() != '/')
		return false;
	for (std::string_view part : split(path.substr(1), '/'))
		if (part == ".." || part == ".")
			return false;
	return true;
}

} /* namespace cgloopfs::cgroup */
