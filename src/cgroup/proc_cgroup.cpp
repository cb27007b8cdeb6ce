/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "proc_cgroup.hpp"

#include <vector>

namespace cgloopfs::cgroup {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep)
{
	std::vector<std::string_view> out;
	size_t start = 0;
	for (;;) {
		size_t end = s.find(sep, start);
		out.push_back(s.substr(start, end - start));
		if (end == std::string_view::npos)
			break;
		start = end + 1;
	}
	return out;
}

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

std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo)
{
	for (std::string_view line : split(mountinfo, '\n')) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		auto fields = split(line, ' ');
		size_t dash = 0;
		for (size_t i = 6; i < fields.size(); i++) {
			if (fields[i] == "-") {
				dash = i;
				break;
			}
		}
		if (dash == 0 || dash + 1 >= fields.size() || fields.size() < 5)
			continue;
		if (fields[dash + 1] != "cgroup2")
			continue;
		return unescape(fields[4]);
	}
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
