/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config/manifest: parse_manifest (good manifests, [defaults], every kind of
 * refusal with its line) and format_manifest round trips.
 */
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include <doctest/doctest.h>

#include "config/image_spec.hpp"
#include "config/manifest.hpp"
#include "temp_dir.hpp"

using namespace cgloopfs::config;

namespace {

std::vector<ImageSpec> parse(const std::string &text, const std::string &base = "/base")
{
	return parse_manifest(text, "m.toml", base);
}

/* The message parse_manifest refuses `text` with; fails the test if it does not. */
std::string refusal(const std::string &text)
{
	try {
		auto specs = parse(text);
		FAIL_CHECK("accepted: " << text);
	} catch (const ConfigError &e) {
		return e.what();
	}
	return "";
}

bool contains(const std::string &haystack, const std::string &needle)
{
	return haystack.find(needle) != std::string::npos;
}

/* Every field but origin (where it was written). */
bool same_settings(const ImageSpec &a, const ImageSpec &b)
{
	return a.name == b.name && a.path == b.path && a.offset == b.offset &&
	       a.size_limit == b.size_limit && a.read_only == b.read_only &&
	       a.direct_io == b.direct_io && a.block_size == b.block_size &&
	       a.discard == b.discard && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid;
}

/* A refusal must name the place (m.toml:LINE), the image when known, and the setting. */
void check_refusal(const std::string &text, int line, const std::string &image,
		   const std::string &setting, const std::string &why = "")
{
	CAPTURE(text);
	std::string msg = refusal(text);
	CAPTURE(msg);
	CHECK(contains(msg, "m.toml:" + std::to_string(line) + ":"));
	if (!image.empty())
		CHECK(contains(msg, "image \"" + image + "\""));
	CHECK(contains(msg, setting));
	if (!why.empty())
		CHECK(contains(msg, why));
}

const char *const good_manifest = R"(# A manifest with everything.
[defaults]
direct_io = true
block_size = "4KiB"
mode = "0640"
uid = 1000

[[image]]
name = "rootfs.img"
path = "/var/lib/images/rootfs.img"
offset = "1MiB"
size_limit = "512MiB"
read_only = true

[[image]]
name = "scratch.img"
path = "scratch.img"
offset = 4096
size_limit = 1073741824
direct_io = false
discard = true
block_size = 512
mode = "0660"
uid = 0
gid = 100

[[image]]
path = "sub/dir/data.raw"
size_limit = "2G"
)";

} /* namespace */

TEST_CASE("parse_manifest: a good manifest with [defaults]")
{
	auto specs = parse(good_manifest);
	REQUIRE(specs.size() == 3);

	const ImageSpec &a = specs[0];
	CHECK(a.name == "rootfs.img");
	CHECK(a.path == "/var/lib/images/rootfs.img"); /* absolute: kept */
	CHECK(a.offset == 1024 * 1024);
	CHECK(a.size_limit == 512ull * 1024 * 1024);
	CHECK(a.read_only);
	CHECK(a.direct_io);	     /* inherited */
	CHECK(a.block_size == 4096); /* inherited, a suffix string */
	CHECK_FALSE(a.discard);
	CHECK(a.mode == 0640u); /* inherited */
	CHECK(a.uid == 1000u);	/* inherited */
	CHECK_FALSE(a.gid.has_value());
	CHECK(a.origin == "m.toml:8");

	const ImageSpec &b = specs[1];
	CHECK(b.name == "scratch.img");
	CHECK(b.path == "/base/scratch.img"); /* relative: joined onto the base */
	CHECK(b.offset == 4096);
	CHECK(b.size_limit == 1073741824);
	CHECK_FALSE(b.read_only);
	CHECK_FALSE(b.direct_io); /* its own false beats the default true */
	CHECK(b.discard);
	CHECK(b.block_size == 512);
	CHECK(b.mode == 0660u);
	CHECK(b.uid == 0u); /* its own 0 beats the default 1000 */
	CHECK(b.gid == 100u);
	CHECK(b.origin == "m.toml:15");

	const ImageSpec &c = specs[2];
	CHECK(c.name == "data.raw"); /* the default name: the basename */
	CHECK(c.path == "/base/sub/dir/data.raw");
	CHECK(c.offset == 0);
	CHECK(c.size_limit == 2ull * 1024 * 1024 * 1024);
	CHECK(c.direct_io);
	CHECK(c.origin == "m.toml:27");
}

TEST_CASE("parse_manifest: relative paths and the base directory")
{
	const char *text = "[[image]]\npath = \"x.img\"\n";
	CHECK(parse_manifest(text, "m.toml", "/base")[0].path == "/base/x.img");
	CHECK(parse_manifest(text, "m.toml", "/base/")[0].path == "/base/x.img");
	CHECK(parse_manifest(text, "m.toml", "/")[0].path == "/x.img");
	CHECK(parse_manifest(text, "m.toml", "")[0].path == "x.img");
	CHECK(parse_manifest("[[image]]\npath = \"/abs/x.img\"\n", "m.toml", "/base")[0].path ==
	      "/abs/x.img");
}

TEST_CASE("parse_manifest: empty manifests and other shapes of [[image]]")
{
	CHECK(parse("").empty());
	CHECK(parse("# nothing\n").empty());
	CHECK(parse("[defaults]\nread_only = true\n").empty());

	/* An inline array of tables is an array of tables too. */
	auto specs =
		parse("image = [{name = \"a\", path = \"/x\"}, {name = \"b\", path = \"/y\"}]\n");
	REQUIRE(specs.size() == 2);
	CHECK(specs[0].name == "a");
	CHECK(specs[1].path == "/y");
}

TEST_CASE("parse_manifest: sizes as integers and suffix strings")
{
	auto specs = parse("[[image]]\npath = \"/x\"\noffset = \"512B\"\nsize_limit = \"3KB\"\n"
			   "[[image]]\npath = \"/y\"\noffset = 9223372036854775807\n"
			   "[[image]]\npath = \"/z\"\noffset = \"1TiB\"\nsize_limit = \"1PB\"\n");
	REQUIRE(specs.size() == 3);
	CHECK(specs[0].offset == 512);
	CHECK(specs[0].size_limit == 3000);
	CHECK(specs[1].offset == static_cast<uint64_t>(INT64_MAX));
	CHECK(specs[2].offset == 1ull << 40);
	CHECK(specs[2].size_limit == 1000ull * 1000 * 1000 * 1000 * 1000);
}

TEST_CASE("parse_manifest: mode as an octal integer, ids as strings")
{
	auto specs = parse("[[image]]\npath = \"/x\"\nmode = 0o640\nuid = \"4294967294\"\n"
			   "gid = 4294967294\n");
	REQUIRE(specs.size() == 1);
	CHECK(specs[0].mode == 0640u);
	CHECK(specs[0].uid == 4294967294u);
	CHECK(specs[0].gid == 4294967294u);
}

TEST_CASE("parse_manifest: malformed TOML names the file and the line")
{
	std::string msg = refusal("[[image]]\nname = \"a\"\npath = \n");
	CHECK(contains(msg, "m.toml:3"));
	CHECK(contains(msg, "malformed"));

	msg = refusal("\n\n\n\n[[image]\n");
	CHECK(contains(msg, "m.toml:5"));

	msg = refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nname = \"b\"\n");
	CHECK(contains(msg, "m.toml:4"));

	msg = refusal("[[image]]\nname = \"unterminated\npath = \"/x\"\n");
	CHECK(contains(msg, "m.toml:2"));

	msg = refusal(std::string("[[image]]\npath = \"/x\"\0\n", 22));
	CHECK(contains(msg, "m.toml"));
}

TEST_CASE("parse_manifest: unknown keys")
{
	std::string msg = refusal("\nfoo = 1\n");
	CHECK(contains(msg, "m.toml:2:"));
	CHECK(contains(msg, "foo"));
	CHECK(contains(msg, "unknown"));

	msg = refusal("[images]\npath = \"/x\"\n");
	CHECK(contains(msg, "m.toml:1:"));
	CHECK(contains(msg, "images"));

	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\ncolour = \"red\"\n", 4, "a",
		      "colour", "unknown setting");
	/* A misspelt setting before the name: the name is still given. */
	check_refusal("[[image]]\nreadonly = true\nname = \"b\"\npath = \"/x\"\n", 2, "b",
		      "readonly", "unknown setting");
	check_refusal("[defaults]\n\nsizelimit = 5\n", 3, "", "sizelimit", "unknown setting");
	check_refusal("[[image]]\nname = \"c\"\npath = \"/x\"\n[image.sub]\nk = 1\n", 4, "c",
		      "sub");
}

TEST_CASE("parse_manifest: wrong types")
{
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nread_only = \"yes\"\n", 4, "a",
		      "read_only", "true or false");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\ndirect_io = 1\n", 4, "a",
		      "direct_io");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\ndiscard = \"true\"\n", 4, "a",
		      "discard");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\noffset = 1.5\n", 4, "a", "offset",
		      "integer");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nsize_limit = 4096.0\n", 4, "a",
		      "size_limit");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\noffset = true\n", 4, "a", "offset");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\noffset = -1\n", 4, "a", "offset",
		      "negative");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nsize_limit = -4096\n", 4, "a",
		      "size_limit", "negative");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\noffset = \"-1\"\n", 4, "a",
		      "offset");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\noffset = \"1XB\"\n", 4, "a",
		      "offset", "XB");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nsize_limit = \"16384PiB\"\n", 4, "a",
		      "size_limit", "large");
	check_refusal("[[image]]\nname = \"a\"\npath = 42\n", 3, "a", "path", "string");
	check_refusal("[[image]]\nname = 5\npath = \"/x\"\n", 2, "", "name", "string");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nuid = \"root\"\n", 4, "a", "uid");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\ngid = 1.0\n", 4, "a", "gid");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nmode = true\n", 4, "a", "mode");
	check_refusal("defaults = 1\n", 1, "", "defaults", "table");
	check_refusal("image = 1\n", 1, "", "image", "array of tables");
	check_refusal("[image]\nname = \"a\"\npath = \"/x\"\n", 1, "", "image", "array of tables");
	check_refusal("image = [1, 2]\n", 1, "", "image", "array of tables");
}

TEST_CASE("parse_manifest: name and path belong to images, not [defaults]")
{
	check_refusal("[defaults]\nname = \"a\"\n", 2, "", "name", "[[image]]");
	check_refusal("[defaults]\nread_only = true\npath = \"/x\"\n", 3, "", "path", "[[image]]");
}

TEST_CASE("parse_manifest: duplicate names name both places")
{
	std::string msg = refusal("[[image]]\nname = \"a\"\npath = \"/x\"\n\n"
				  "[[image]]\nname = \"b\"\npath = \"/y\"\n\n"
				  "[[image]]\nname = \"a\"\npath = \"/z\"\n");
	CHECK(contains(msg, "m.toml:1"));
	CHECK(contains(msg, "m.toml:9"));
	CHECK(contains(msg, "\"a\""));

	/* Default names collide too. */
	msg = refusal("[[image]]\npath = \"/one/disk.img\"\n[[image]]\npath = \"/two/disk.img\"\n");
	CHECK(contains(msg, "disk.img"));
	CHECK(contains(msg, "m.toml:1"));
	CHECK(contains(msg, "m.toml:3"));
}

TEST_CASE("parse_manifest: a missing or empty path")
{
	check_refusal("[defaults]\nread_only = true\n\n[[image]]\nname = \"a\"\n", 4, "a", "path",
		      "missing");
	check_refusal("[[image]]\nname = \"a\"\npath = \"\"\n", 3, "a", "path", "empty");
}

TEST_CASE("parse_manifest: bad names")
{
	check_refusal("[[image]]\nname = \"a/b\"\npath = \"/x\"\n", 1, "a/b", "name", "/");
	check_refusal("[[image]]\nname = \"..\"\npath = \"/x\"\n", 1, "..", "name");
	check_refusal("[[image]]\nname = \"\"\npath = \"/x\"\n", 1, "", "name", "empty");
	check_refusal("[[image]]\nname = \"tab\\there\"\npath = \"/x\"\n", 1, "", "name",
		      "control");
}

TEST_CASE("parse_manifest: bad block_size, mode, uid and gid")
{
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nblock_size = 1000\n", 4, "a",
		      "block_size", "1000");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nblock_size = \"8K\"\n", 4, "a",
		      "block_size");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nblock_size = 256\n", 4, "a",
		      "block_size");
	check_refusal("[defaults]\nblock_size = 3000\n", 2, "", "block_size");

	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nmode = \"0755\"\n", 4, "a", "mode",
		      "0755");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nmode = \"4660\"\n", 4, "a", "mode");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nmode = \"rw-rw----\"\n", 4, "a",
		      "mode");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nmode = 0o755\n", 4, "a", "mode");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nmode = -1\n", 4, "a", "mode");
	/* Decimal 660 is octal 1224: refused, not silently misread. */
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nmode = 660\n", 4, "a", "mode");

	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nuid = 4294967295\n", 4, "a", "uid",
		      "range");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\nuid = -1\n", 4, "a", "uid");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\ngid = 99999999999\n", 4, "a", "gid");
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\ngid = \"4294967295\"\n", 4, "a",
		      "gid");
}

/* Refused at the line of the setting, as every other out-of-range value is. */
TEST_CASE("parse_manifest: offset and size_limit above 2^63 - 1")
{
	check_refusal("[[image]]\nname = \"a\"\npath = \"/x\"\noffset = \"8192PiB\"\n", 4, "a",
		      "offset", "larger than 2^63 - 1");
	check_refusal(
		"[[image]]\nname = \"a\"\npath = \"/x\"\nsize_limit = \"9223372036854775808\"\n", 4,
		"a", "size_limit", "larger than 2^63 - 1");
	check_refusal("[defaults]\noffset = \"8192PiB\"\n", 2, "", "offset",
		      "larger than 2^63 - 1");
}

TEST_CASE("parse_manifest: every per-image setting is known to it")
{
	for (auto name : image_setting_names) {
		std::string key(name);
		CAPTURE(key);
		std::string text = "[[image]]\nname = \"n\"\npath = \"/x\"\n";
		if (key == "name" || key == "path")
			continue;
		if (key == "read_only" || key == "direct_io" || key == "discard")
			text += key + " = true\n";
		else if (key == "lock")
			text += key + " = \"off\"\n";
		else if (key == "mode")
			text += key + " = \"0600\"\n";
		else if (key == "block_size")
			text += key + " = 1024\n";
		else
			text += key + " = 1\n";
		CHECK_NOTHROW(parse(text));
	}
}

TEST_CASE("format_manifest: parse(format(specs)) gives the same specs")
{
	auto specs = parse(good_manifest);
	std::string text = format_manifest(specs);
	CAPTURE(text);
	auto again = parse_manifest(text, "again.toml", "/somewhere/else");
	REQUIRE(again.size() == specs.size());
	for (size_t i = 0; i < specs.size(); i++) {
		CAPTURE(i);
		CHECK(same_settings(specs[i], again[i]));
	}
}

TEST_CASE("format_manifest: extreme and awkward values survive the round trip")
{
	std::vector<ImageSpec> specs(4);
	specs[0].name = "quote\"and\\backslash";
	specs[0].path = "/with space/and \"quotes\"/x.img";
	specs[0].offset = static_cast<uint64_t>(INT64_MAX);
	specs[0].size_limit = static_cast<uint64_t>(INT64_MAX);
	specs[0].mode = 0;
	specs[0].uid = 4294967294u;
	specs[0].gid = 0;

	specs[1].name = "unicod\xc3\xa9 \xe2\x82\xac";
	specs[1].path = "/x/\xc3\xa9";
	specs[1].read_only = true;
	specs[1].direct_io = true;
	specs[1].discard = true;
	specs[1].block_size = 4096;
	specs[1].mode = 0666;

	specs[2].name = "#not-a-comment";
	specs[2].path = "/y/#z";
	specs[2].block_size = 2048;

	specs[3].name = "plain";
	specs[3].path = "/p";

	std::string text = format_manifest(specs);
	CAPTURE(text);
	auto again = parse_manifest(text, "again.toml", "/base");
	REQUIRE(again.size() == specs.size());
	for (size_t i = 0; i < specs.size(); i++) {
		CAPTURE(i);
		CHECK(same_settings(specs[i], again[i]));
	}
}

/*
 * Regression (fixed; was: src/config/manifest.cpp): format_manifest({}) writes
 * "image = []" (line 258 inserts the empty array), and parse_manifest refuses
 * it because toml++'s is_array_of_tables() is false for an empty array
 * (line 198): "e.toml:1: image: must be an array of tables". A daemon with no
 * image attached thus lists a manifest it cannot load again, and a user's
 * "image = []" is refused.
 */
TEST_CASE("format_manifest: no images round-trips")
{
	CHECK(parse_manifest(format_manifest({}), "e.toml", "/").empty());
	CHECK_NOTHROW(parse_manifest("image = []\n", "e.toml", "/"));
}

/* Regression (fixed): see make_spec in test_image_spec.cpp; a manifest can spell a NUL byte. */
TEST_CASE("parse_manifest: a name with an escaped NUL gets a whole message")
{
	std::string msg = refusal("[[image]]\nname = \"a\\u0000b\"\npath = \"/x\"\n");
	CHECK(contains(msg, "NUL"));
}

/* Every refusal is one line, whatever the text quoted in it holds (found by tests/fuzz). */
TEST_CASE("parse_manifest: messages are one line")
{
	const char *texts[] = {
		"\"un\\nknown\" = 1\n",				    /* an unknown key */
		"[[image]]\npath = \"/a\"\n\"x\\ny\" = 1\n",	    /* an unknown setting */
		"[[image]]\npath = \"/a\"\noffset = \"1\\nMiB\"\n", /* a bad size */
		"[[image]]\npath = \"/a\"\nmode = \"06\\n0\"\n",    /* a bad mode */
		"[[image]]\npath = \"/a\"\nuid = \"1\\r\"\n",	    /* a bad id */
	};
	for (const char *text : texts) {
		CAPTURE(text);
		std::string msg = refusal(text);
		CAPTURE(msg);
		CHECK(!msg.empty());
		CHECK(msg.find('\n') == std::string::npos);
		CHECK(msg.find('\r') == std::string::npos);
	}
}

/*
 * toml++ 3.3.0 has undefined behaviour on some non-ASCII characters where
 * TOML allows only ASCII (found by tests/fuzz/fuzz_manifest): they are
 * refused with their line before toml++ reads them as they are. In strings
 * and comments they are fine.
 */
TEST_CASE("parse_manifest: non-ASCII in strings and comments, refused elsewhere")
{
	auto specs = parse("# Gr\xc3\xbc\xc3\x9f"
			   "e \xe2\x82\xac\n[[image]]\n"
			   "name = \"gr\xc3\xb6\xc3\x9f"
			   "e\" # \xc2\xa7\n"
			   "path = '/srv/\xe6\x97\xa5\xe6\x9c\xac.img'\n");
	REQUIRE(specs.size() == 1);
	CHECK(specs[0].name == "gr\xc3\xb6\xc3\x9f"
			       "e");
	CHECK(specs[0].path == "/srv/\xe6\x97\xa5\xe6\x9c\xac.img");
	/* A byte order mark is skipped. */
	CHECK(parse("\xef\xbb\xbf[[image]]\npath = \"/a\"\n").size() == 1);
	/* Multi-line strings: quotes inside, escapes, a line-ending backslash. */
	specs = parse("[[image]]\nname = \"\"\"\xc3\xa9\"\"\"\"\"\n"
		      "path = \"\"\"/a/\\\n    b/\xc3\xa9\\\\.img\"\"\"\n");
	REQUIRE(specs.size() == 1);
	CHECK(specs[0].name == "\xc3\xa9\"\"");
	CHECK(specs[0].path == "/a/b/\xc3\xa9\\.img");
	specs = parse("[[image]]\nname = 'n'\npath = '''\n/x/\xc3\xa9\\\n\xc3\xa9'''\n");
	REQUIRE(specs.size() == 1);
	CHECK(specs[0].path == "/x/\xc3\xa9\\\n\xc3\xa9");

	struct {
		const char *text;
		int line;
		const char *why;
	} refused[] = {
		{"\xef\xb1\xbf", 1, "non-ASCII"},	/* the fuzzer's first: U+FC7F */
		{"\n\n\xc3\xa9 = 1\n", 3, "non-ASCII"}, /* a bare key */
		{"[[image]]\npath = \"/a\" \xc2\xa0\n", 2, "non-ASCII"}, /* after a value */
		{"a = 1\xc2\xa7\n", 1, "non-ASCII"},			 /* in a bare value */
		/* A bare value that toml++ scans over quotes: its own message. */
		{"a = -D[\"\xc2\xa7\"]\n", 1, "malformed manifest"},
		/* First after a line-ending backslash; after an escaping one. */
		{"s = \"\"\"\\\n\n  \xc2\xa7\"\"\"\n", 3, "non-ASCII"},
		{"s = \"\"\"\\\xc2\xa7\"\"\"\n", 1, "non-ASCII"},
	};
	for (const auto &r : refused) {
		CAPTURE(r.text);
		std::string msg = refusal(r.text);
		CAPTURE(msg);
		CHECK(contains(msg, "m.toml:" + std::to_string(r.line) + ":"));
		CHECK(contains(msg, r.why));
	}
}

/* Found by tests/fuzz/fuzz_manifest: toml++ asserted (debug builds) on these. */
TEST_CASE("parse_manifest: malformed table headers are refused cleanly")
{
	for (const char *text : {"\n[\x03", "[[[1]]]", "[&", "[[="}) {
		CAPTURE(text);
		CHECK(contains(refusal(text), "malformed manifest"));
	}
}

/* toml++ quotes what it read in its messages, line breaks too (found by tests/fuzz). */
TEST_CASE("parse_manifest: toml++'s messages are made one line")
{
	std::string msg = refusal("a = tr\nue\n");
	CAPTURE(msg);
	CHECK(contains(msg, "m.toml:1:"));
	CHECK(msg.find('\n') == std::string::npos);
}

/*
 * Found by tests/fuzz/fuzz_manifest: toml++ wrote a path with a line break
 * and three single quotes as a multi-line literal string, which reads back
 * as something else. Basic strings with escapes read back exactly.
 */
TEST_CASE("format_manifest: line breaks, quotes and control characters round-trip")
{
	std::vector<ImageSpec> specs(5);
	specs[0].path = "/a\nb'''c";
	specs[1].path = "/a\r\nb";
	specs[2].path = "/a\tb\x7f\x01";
	specs[3].path = "/'''\n\"\"\"\n\\";
	specs[4].path = "\nrelative";
	for (size_t i = 0; i < specs.size(); i++)
		specs[i].name = "i" + std::to_string(i);
	std::string text = format_manifest(specs);
	CAPTURE(text);
	auto again = parse_manifest(text, "again.toml", "");
	REQUIRE(again.size() == specs.size());
	for (size_t i = 0; i < specs.size(); i++) {
		CAPTURE(i);
		CHECK(same_settings(specs[i], again[i]));
	}
}

TEST_CASE("format_manifest: a name or path that is not UTF-8 is refused, naming the image")
{
	std::vector<ImageSpec> specs(1);
	specs[0].name = "bad\xff.img";
	specs[0].path = "/x/bad\xff.img";
	/* Written as "\u00FF" it would read back as U+00FF (bytes C3 BF): another file. */
	try {
		(void)format_manifest(specs);
		FAIL_CHECK("formatted a name that is not UTF-8");
	} catch (const ConfigError &e) {
		std::string msg = e.what();
		CHECK(contains(msg, "image \"bad\\udcff.img\""));
		CHECK(contains(msg, "name is not valid UTF-8"));
	}
	specs[0].name = "good.img";
	try {
		(void)format_manifest(specs);
		FAIL_CHECK("formatted a path that is not UTF-8");
	} catch (const ConfigError &e) {
		CHECK(contains(e.what(), "image \"good.img\": its path is not valid UTF-8"));
	}
}

TEST_CASE("load_manifest: a file larger than the limit is refused unread")
{
	TempDir dir("manifest");
	std::string path = dir.path + "/big.toml";
	{
		std::FILE *f = std::fopen(path.c_str(), "w");
		REQUIRE(f != nullptr);
		REQUIRE(ftruncate(fileno(f), static_cast<off_t>(max_manifest_bytes) + 1) == 0);
		std::fclose(f);
	}
	try {
		(void)load_manifest(path);
		FAIL_CHECK("loaded a manifest over the limit");
	} catch (const ConfigError &e) {
		CHECK(contains(e.what(), "larger than 16 MiB"));
		CHECK(contains(e.what(), path));
	}
	/* At the limit it is read (and refused for what it holds, not its size). */
	REQUIRE(truncate(path.c_str(), static_cast<off_t>(max_manifest_bytes)) == 0);
	try {
		(void)load_manifest(path);
		FAIL_CHECK("loaded NUL bytes as a manifest");
	} catch (const ConfigError &e) {
		CHECK(contains(e.what(), "NUL byte"));
	}
}

TEST_CASE("parse_manifest: an image without a name is named by its path in errors")
{
	std::string msg = refusal("[[image]]\npath = \"/x/img1.raw\"\nblock_size = 1000\n");
	CHECK(contains(msg,
		       "m.toml:3: image \"img1.raw\": block_size: 1000 is not a power of two"));
	/* A setting written before the path is named too. */
	msg = refusal("[[image]]\nmode = \"9999\"\npath = \"/x/img2.raw\"\n");
	CHECK(contains(msg, "m.toml:2: image \"img2.raw\": mode:"));
}
