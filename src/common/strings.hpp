/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small string helpers. Pure, reentrant. */
#pragma once

#include <string_view>
#include <vector>

namespace cgloopfs {

/* Split on `sep`, keeping empty fields ("a,,b" -> "a", "", "b"). */
inline std::vector<std::string_view> split(std::string_view s, char sep)
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

} /* namespace cgloopfs */
