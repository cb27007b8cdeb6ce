/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "escape.hpp"

#include <cstdint>

namespace cgloopfs {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

void append_hex_byte(std::string &out, const char *prefix, unsigned char c)
{
	out += prefix;
	out += hex_digits[c >> 4];
	out += hex_digits[c & 15];
}

bool in(unsigned char c, unsigned char lo, unsigned char hi)
{
	return c >= lo && c <= hi;
}

/* The code point of the valid UTF-8 character of `len` bytes at s[i]. */
uint32_t code_point(std::string_view s, size_t i, size_t len)
{
	auto b = [&](size_t k) {
		return static_cast<uint32_t>(static_cast<unsigned char>(s[i + k]));
	};
	switch (len) {
	case 1:
		return b(0);
	case 2:
		return ((b(0) & 0x1f) << 6) | (b(1) & 0x3f);
	case 3:
		return ((b(0) & 0x0f) << 12) | ((b(1) & 0x3f) << 6) | (b(2) & 0x3f);
	default:
		return ((b(0) & 0x07) << 18) | ((b(1) & 0x3f) << 12) | ((b(2) & 0x3f) << 6) |
		       (b(3) & 0x3f);
	}
}

/* Characters that reorder, hide or break lines of text around them. */
bool hides_text(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

void append_utf8(std::string &out, uint32_t cp)
{
	if (cp < 0x80) {
		out += static_cast<char>(cp);
	} else if (cp < 0x800) {
		out += static_cast<char>(0xc0 | (cp >> 6));
		out += static_cast<char>(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out += static_cast<char>(0xe0 | (cp >> 12));
		out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
		out += static_cast<char>(0x80 | (cp & 0x3f));
	} else {
		out += static_cast<char>(0xf0 | (cp >> 18));
		out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
		out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
		out += static_cast<char>(0x80 | (cp & 0x3f));
	}
}

int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at text[pos], or -1. */
long hex4(std::string_view text, size_t pos)
{
	if (pos + 4 > text.size())
		return -1;
	long v = 0;
	for (size_t k = 0; k < 4; k++) {
		int d = hex_value(text[pos + k]);
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

} /* namespace */

size_t utf8_char_length(std::string_view s, size_t i)
{
	auto at = [&](size_t k) -> unsigned char {
		return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0;
	};
	unsigned char c = at(0);
	if (i >= s.size())
		return 0;
	if (c < 0x80)
		return 1;
	if (in(c, 0xc2, 0xdf))
		return in(at(1), 0x80, 0xbf) ? 2 : 0;
	if (in(c, 0xe0, 0xef)) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
		unsigned char hi = c == 0xed ? 0x9f : 0xbf; /* no UTF-16 surrogates */
		return in(at(1), lo, hi) && in(at(2), 0x80, 0xbf) ? 3 : 0;
	}
	if (in(c, 0xf0, 0xf4)) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xf4 ? 0x8f : 0xbf; /* up to U+10FFFF */
		return in(at(1), lo, hi) && in(at(2), 0x80, 0xbf) && in(at(3), 0x80, 0xbf) ? 4 : 0;
	}
	return 0;
}

namespace {

std::string escape(std::string_view text, bool backslash)
{
	std::string out;
	out.reserve(text.size());
	for (size_t i = 0; i < text.size();) {
		auto c = static_cast<unsigned char>(text[i]);
		size_t len = utf8_char_length(text, i);
		if (len == 1) {
			switch (c) {
			case '\\':
				out += backslash ? "\\\\" : "\\";
				break;
			case '\a':
				out += "\\a";
				break;
			case '\b':
				out += "\\b";
				break;
			case '\t':
				out += "\\t";
				break;
			case '\n':
				out += "\\n";
				break;
			case '\v':
				out += "\\v";
				break;
			case '\f':
				out += "\\f";
				break;
			case '\r':
				out += "\\r";
				break;
			default:
				if (c < 0x20 || c == 0x7f)
					append_hex_byte(out, "\\x", c);
				else
					out += static_cast<char>(c);
			}
			i++;
		} else if (len == 0) {
			append_hex_byte(out, "\\x", c); /* a byte of invalid UTF-8 */
			i++;
		} else if (hides_text(code_point(text, i, len))) {
			for (size_t k = 0; k < len; k++)
				append_hex_byte(out, "\\x",
						static_cast<unsigned char>(text[i + k]));
			i += len;
		} else {
			out.append(text, i, len);
			i += len;
		}
	}
	return out;
}

} /* namespace */

std::string escape_for_terminal(std::string_view text)
{
	return escape(text, true);
}

std::string escape_controls(std::string_view text)
{
	return escape(text, false);
}

std::string unescape_terminal(std::string_view escaped)
{
	std::string out;
	for (size_t i = 0; i < escaped.size(); i++) {
		if (escaped[i] != '\\' || i + 1 >= escaped.size()) {
			out += escaped[i];
			continue;
		}
		char e = escaped[++i];
		switch (e) {
		case 'a':
			out += '\a';
			break;
		case 'b':
			out += '\b';
			break;
		case 't':
			out += '\t';
			break;
		case 'n':
			out += '\n';
			break;
		case 'v':
			out += '\v';
			break;
		case 'f':
			out += '\f';
			break;
		case 'r':
			out += '\r';
			break;
		case 'x':
			if (i + 2 < escaped.size() && hex_value(escaped[i + 1]) >= 0 &&
			    hex_value(escaped[i + 2]) >= 0) {
				out += static_cast<char>(hex_value(escaped[i + 1]) * 16 +
							 hex_value(escaped[i + 2]));
				i += 2;
				break;
			}
			out += "\\x";
			break;
		default:
			out += e; /* "\\" and anything unknown: the character itself */
		}
	}
	return out;
}

std::string json_quote(std::string_view bytes)
{
	std::string out;
	out.reserve(bytes.size() + 2);
	out += '"';
	for (size_t i = 0; i < bytes.size();) {
		auto c = static_cast<unsigned char>(bytes[i]);
		size_t len = utf8_char_length(bytes, i);
		if (len == 1) {
			switch (c) {
			case '"':
				out += "\\\"";
				break;
			case '\\':
				out += "\\\\";
				break;
			case '\b':
				out += "\\b";
				break;
			case '\f':
				out += "\\f";
				break;
			case '\n':
				out += "\\n";
				break;
			case '\r':
				out += "\\r";
				break;
			case '\t':
				out += "\\t";
				break;
			default:
				if (c < 0x20 || c == 0x7f)
					append_hex_byte(out, "\\u00", c);
				else
					out += static_cast<char>(c);
			}
			i++;
		} else if (len == 0) {
			append_hex_byte(out, "\\udc", c); /* PEP 383: byte NN is U+DCNN */
			i++;
		} else if (len == 2 && code_point(bytes, i, len) <= 0x9f) {
			append_hex_byte(out, "\\u00",
					static_cast<unsigned char>(code_point(bytes, i, len)));
			i += len;
		} else {
			out.append(bytes, i, len);
			i += len;
		}
	}
	out += '"';
	return out;
}

size_t json_unquote(std::string_view text, size_t pos, std::string &out)
{
	if (pos >= text.size() || text[pos] != '"')
		return std::string_view::npos;
	for (size_t i = pos + 1; i < text.size();) {
		auto c = static_cast<unsigned char>(text[i]);
		if (c == '"')
			return i + 1;
		if (c < 0x20)
			return std::string_view::npos; /* JSON has no raw control characters */
		if (c != '\\') {
			out += static_cast<char>(c);
			i++;
			continue;
		}
		if (i + 1 >= text.size())
			return std::string_view::npos;
		char e = text[i + 1];
		i += 2;
		switch (e) {
		case '"':
		case '\\':
		case '/':
			out += e;
			continue;
		case 'b':
			out += '\b';
			continue;
		case 'f':
			out += '\f';
			continue;
		case 'n':
			out += '\n';
			continue;
		case 'r':
			out += '\r';
			continue;
		case 't':
			out += '\t';
			continue;
		case 'u':
			break;
		default:
			return std::string_view::npos;
		}
		long u = hex4(text, i);
		if (u < 0)
			return std::string_view::npos;
		i += 4;
		if (u >= 0xd800 && u <= 0xdbff) {
			/* A high surrogate: a low one must follow. */
			long low = i + 1 < text.size() && text[i] == '\\' && text[i + 1] == 'u'
					   ? hex4(text, i + 2)
					   : -1;
			if (low < 0xdc00 || low > 0xdfff)
				return std::string_view::npos;
			i += 6;
			append_utf8(out, 0x10000 + ((static_cast<uint32_t>(u) - 0xd800) << 10) +
						 (static_cast<uint32_t>(low) - 0xdc00));
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			/* A lone low surrogate: a byte of invalid UTF-8 (PEP 383). */
			if (u < 0xdc80 || u > 0xdcff)
				return std::string_view::npos;
			out += static_cast<char>(u - 0xdc00);
		} else {
			append_utf8(out, static_cast<uint32_t>(u));
		}
	}
	return std::string_view::npos;
}

} /* namespace cgloopfs */
