/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mountinfo.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

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

} /* namespace cgloopfs */
