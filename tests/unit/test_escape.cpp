/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/escape: text from outside for a terminal (nothing a terminal acts
 * on gets through, and the escapes cannot be faked) and for JSON (exact,
 * invalid UTF-8 as PEP 383 lone surrogates).
 */
#include <string>

#include <doctest/doctest.h>

#include "common/escape.hpp"

using namespace cgloopfs;

namespace {

/* No byte below 0x20, no DEL, no C1 control, and valid UTF-8. */
bool terminal_safe(const std::string &s)
{
	for (size_t i = 0; i < s.size();) {
		size_t len = utf8_char_length(s, i);
		if (len == 0)
			return false;
		auto c = static_cast<unsigned char>(s[i]);
		if (len == 1 && (c < 0x20 || c == 0x7f))
			return false;
		if (len == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0)
			return false;
		i += len;
	}
	return true;
}

} /* namespace */

TEST_CASE("utf8_char_length: valid characters, and what RFC 3629 refuses")
{
	CHECK(utf8_char_length("a", 0) == 1);
	CHECK(utf8_char_length("\xc3\xa9", 0) == 2);
	CHECK(utf8_char_length("\xe2\x82\xac", 0) == 3);
	CHECK(utf8_char_length("\xf0\x9f\x98\x80", 0) == 4);
	CHECK(utf8_char_length("\xc0\xaf", 0) == 0);	     /* overlong '/' */
	CHECK(utf8_char_length("\xe0\x80\xaf", 0) == 0);     /* overlong */
	CHECK(utf8_char_length("\xed\xa0\x80", 0) == 0);     /* a UTF-16 surrogate */
	CHECK(utf8_char_length("\xf4\x90\x80\x80", 0) == 0); /* past U+10FFFF */
	CHECK(utf8_char_length("\xe2\x82", 0) == 0);	     /* cut short */
	CHECK(utf8_char_length("\x80", 0) == 0);
	CHECK(utf8_char_length("\xff", 0) == 0);
}

TEST_CASE("escape_for_terminal: controls, backslash and invalid UTF-8 escaped; text kept")
{
	CHECK(escape_for_terminal("/system.slice/a b.service") == "/system.slice/a b.service");
	CHECK(escape_for_terminal("a\tb\nc\rd") == "a\\tb\\nc\\rd");
	CHECK(escape_for_terminal("\x1b[2J") == "\\x1b[2J");
	CHECK(escape_for_terminal("del\x7f") == "del\\x7f");
	CHECK(escape_for_terminal("back\\slash") == "back\\\\slash");
	/* A name that spells an escape shows its backslash doubled: no forgery. */
	CHECK(escape_for_terminal("\\x1b") == "\\\\x1b");
	CHECK(escape_for_terminal("bad\xff\xfe") == "bad\\xff\\xfe");
	CHECK(escape_for_terminal("\xe2\x82") == "\\xe2\\x82");
	CHECK(escape_for_terminal("caf\xc3\xa9 \xe2\x82\xac") == "caf\xc3\xa9 \xe2\x82\xac");
	/* C1 controls (CSI U+009B) and bidi overrides (U+202E) as their bytes. */
	CHECK(escape_for_terminal("\xc2\x9b"
				  "2J") == "\\xc2\\x9b2J");
	CHECK(escape_for_terminal("a\xe2\x80\xae"
				  "b") == "a\\xe2\\x80\\xaeb");
	CHECK(escape_for_terminal(std::string("nul\0x", 5)) == "nul\\x00x");
}

TEST_CASE("escape_for_terminal: every byte string comes out safe and decodes back")
{
	/* All pairs of bytes, and some longer runs, round-trip and stay safe. */
	for (int a = 0; a < 256; a++) {
		for (int b = 0; b < 256; b += 5) {
			std::string s = {static_cast<char>(a), static_cast<char>(b), '\\', 'x'};
			std::string e = escape_for_terminal(s);
			CAPTURE(a);
			CAPTURE(b);
			REQUIRE(terminal_safe(e));
			REQUIRE(unescape_terminal(e) == s);
		}
	}
	std::string odd = "\\\\x41\\t\t\xe2\x80\xa8\xef\xbb\xbf\xf0\x9f\x98";
	CHECK(terminal_safe(escape_for_terminal(odd)));
	CHECK(unescape_terminal(escape_for_terminal(odd)) == odd);
}

TEST_CASE("json_quote: valid UTF-8 as is, invalid bytes as lone surrogates")
{
	CHECK(json_quote("plain") == "\"plain\"");
	CHECK(json_quote("q\"b\\") == "\"q\\\"b\\\\\"");
	CHECK(json_quote("a\tb\x1b\x7f") == "\"a\\tb\\u001b\\u007f\"");
	CHECK(json_quote("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
	CHECK(json_quote("\xc2\x9b") == "\"\\u009b\"");
	CHECK(json_quote("x\xff\xc3") == "\"x\\udcff\\udcc3\"");
	CHECK(json_quote(std::string("\0", 1)) == "\"\\u0000\"");
}

TEST_CASE("json_unquote: the inverse of json_quote, for every byte pair")
{
	for (int a = 0; a < 256; a++) {
		for (int b = 0; b < 256; b += 3) {
			std::string s = {static_cast<char>(a), static_cast<char>(b)};
			std::string q = json_quote(s);
			std::string back;
			CAPTURE(a);
			CAPTURE(b);
			REQUIRE(json_unquote(q, 0, back) == q.size());
			REQUIRE(back == s);
			/* What json_quote writes is valid UTF-8 with no raw control. */
			REQUIRE(terminal_safe(q));
		}
	}
	std::string out;
	CHECK(json_unquote(R"("\ud83d\ude00")", 0, out) == 14);
	CHECK(out == "\xf0\x9f\x98\x80");
	for (const char *bad : {R"("\ud83d")", R"("\udc00")", R"("\udd80")", R"("abc)", "\"a\nb\"",
				R"("\x41")", R"("\u00g1")"}) {
		std::string ignored;
		CHECK_MESSAGE(json_unquote(bad, 0, ignored) == std::string::npos, bad);
	}
}

TEST_CASE("escape_controls: as escape_for_terminal, a backslash kept")
{
	CHECK(escape_controls("a\\x22b\tc\n\x1b\xff") == "a\\x22b\\tc\\n\\x1b\\xff");
	CHECK(escape_controls("caf\xc3\xa9") == "caf\xc3\xa9");
}
