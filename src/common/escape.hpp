/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Text from outside (cgroup paths, unit and machine names, file names) made
 * safe to print on a terminal: nothing in it can move the cursor, change
 * colours, set the window title or end a line. Pure, reentrant.
 */
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cgloopfs {

/*
 * `text` with every byte a terminal could act on written as a visible
 * escape, so that distinct inputs stay distinct on screen:
 *
 *   backslash              \\
 *   tab, newline, CR       \t \n \r
 *   other C0 controls, DEL \xNN (ESC is \x1b)
 *   C1 controls U+0080..U+009F (valid UTF-8, but CSI and OSC to some
 *   terminals)             \xc2\xNN, the bytes of their UTF-8
 *   bytes that are not valid UTF-8 (stray continuation bytes, truncated
 *   sequences, overlong forms, surrogates, above U+10FFFF)
 *                          \xNN, one per byte
 *
 * Everything else, valid non-ASCII UTF-8 included, is kept as it is.
 */
inline std::string escape_for_terminal(std::string_view text)
{
	static constexpr char hex[] = "0123456789abcdef";
	std::string out;
	out.reserve(text.size());
	auto escape_byte = [&](unsigned char b) {
		out += "\\x";
		out += hex[b >> 4];
		out += hex[b & 15];
	};
	size_t i = 0;
	while (i < text.size()) {
		auto c = static_cast<unsigned char>(text[i]);
		if (c < 0x80) {
			if (c == '\\')
				out += "\\\\";
			else if (c == '\t')
				out += "\\t";
			else if (c == '\n')
				out += "\\n";
			else if (c == '\r')
				out += "\\r";
			else if (c < 0x20 || c == 0x7f)
				escape_byte(c);
			else
				out += static_cast<char>(c);
			i++;
			continue;
		}
		/* The length of the sequence c starts, and the range of its second byte. */
		size_t len = 0;
		unsigned char lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			len = 2;
		else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			if (c == 0xe0)
				lo = 0xa0; /* not overlong */
			else if (c == 0xed)
				hi = 0x9f; /* not a surrogate */
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			if (c == 0xf0)
				lo = 0x90; /* not overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* not above U+10FFFF */
		}
		bool valid = len != 0 && i + len <= text.size();
		for (size_t k = 1; valid && k < len; k++) {
			auto b = static_cast<unsigned char>(text[i + k]);
			valid = k == 1 ? b >= lo && b <= hi : b >= 0x80 && b <= 0xbf;
		}
		if (!valid) {
			escape_byte(c);
			i++;
			continue;
		}
		if (c == 0xc2 && static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
			escape_byte(c); /* a C1 control */
			escape_byte(static_cast<unsigned char>(text[i + 1]));
		} else {
			out.append(text.substr(i, len));
		}
		i += len;
	}
	return out;
}

} /* namespace cgloopfs */
