/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config/image_spec: check_name, valid_block_size, make_spec,
 * check_unique_names, ImageSettings::inherit.
 */
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "config/image_spec.hpp"

using namespace cgloopfs::config;

namespace {

/* The message of the ConfigError that make_spec throws; "" when it does not. */
std::string spec_error(const ImageSettings &s, const std::string &origin = "m.toml:7")
{
	try {
		(void)make_spec(s, origin);
	} catch (const ConfigError &e) {
		return e.what();
	}
	return "";
}

bool contains(const std::string &haystack, const std::string &needle)
{
	return haystack.find(needle) != std::string::npos;
}

ImageSettings with_path(const std::string &path)
{
	ImageSettings s;
	s.path = path;
	return s;
}

} /* namespace */

TEST_CASE("check_name: refused names")
{
	CHECK(check_name("").has_value());
	CHECK(check_name(".").has_value());
	CHECK(check_name("..").has_value());
	CHECK(check_name("a/b").has_value());
	CHECK(check_name("/").has_value());
	CHECK(check_name("/abs").has_value());
	CHECK(check_name("trailing/").has_value());
	CHECK(check_name(std::string("a\0b", 3)).has_value());
	CHECK(check_name(std::string(1, '\0')).has_value());
	CHECK(check_name("a\nb").has_value());
	CHECK(check_name("a\tb").has_value());
	CHECK(check_name("\x01").has_value());
	CHECK(check_name("\x1f").has_value());
	CHECK(check_name("del\x7f").has_value());
	CHECK(check_name(std::string(256, 'x')).has_value());
	CHECK(check_name(std::string(4096, 'x')).has_value());
}

TEST_CASE("check_name: the reason says what is wrong")
{
	CHECK(contains(check_name("").value_or(""), "empty"));
	CHECK(contains(check_name("a/b").value_or(""), "/"));
	CHECK(contains(check_name(std::string("a\0b", 3)).value_or(""), "NUL"));
	CHECK(contains(check_name("a\x02").value_or(""), "control"));
	CHECK(contains(check_name(std::string(256, 'x')).value_or(""), "255"));
	CHECK(contains(check_name("..").value_or(""), ".."));
}

TEST_CASE("check_name: good names")
{
	CHECK_FALSE(check_name("rootfs.img").has_value());
	CHECK_FALSE(check_name("a").has_value());
	CHECK_FALSE(check_name("...").has_value());
	CHECK_FALSE(check_name(".hidden").has_value());
	CHECK_FALSE(check_name("..x").has_value());
	CHECK_FALSE(check_name("-leading-dash").has_value());
	CHECK_FALSE(check_name("with space").has_value());
	CHECK_FALSE(check_name("back\\slash").has_value());
	CHECK_FALSE(check_name("disk\xc3\xa9.img").has_value()); /* UTF-8 é */
	CHECK_FALSE(check_name(std::string(255, 'x')).has_value());
	/* 255 bytes of UTF-8 (85 three-byte characters) is fine too: the limit is bytes. */
	std::string utf8;
	for (int i = 0; i < 85; i++)
		utf8 += "\xe2\x82\xac";
	CHECK(utf8.size() == 255);
	CHECK_FALSE(check_name(utf8).has_value());
	CHECK(check_name(utf8 + "x").has_value());
}

TEST_CASE("valid_block_size: powers of two in 512..4096")
{
	for (uint64_t v : {512u, 1024u, 2048u, 4096u})
		CHECK(valid_block_size(v));
	for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{256}, uint64_t{511}, uint64_t{513},
			   uint64_t{768}, uint64_t{1000}, uint64_t{3072}, uint64_t{4095},
			   uint64_t{4097}, uint64_t{8192}, uint64_t{65536}, uint64_t{1} << 40,
			   uint64_t{1} << 63, UINT64_MAX}) {
		CAPTURE(v);
		CHECK_FALSE(valid_block_size(v));
	}
}

TEST_CASE("make_spec: defaults")
{
	ImageSpec spec = make_spec(with_path("/var/lib/images/rootfs.img"), "m.toml:3");
	CHECK(spec.name == "rootfs.img");
	CHECK(spec.path == "/var/lib/images/rootfs.img");
	CHECK(spec.offset == 0);
	CHECK(spec.size_limit == 0);
	CHECK_FALSE(spec.read_only);
	CHECK_FALSE(spec.direct_io);
	CHECK(spec.block_size == 512);
	CHECK_FALSE(spec.discard);
	CHECK_FALSE(spec.mode.has_value());
	CHECK_FALSE(spec.uid.has_value());
	CHECK_FALSE(spec.gid.has_value());
	CHECK(spec.origin == "m.toml:3");
}

TEST_CASE("make_spec: every setting is taken")
{
	ImageSettings s;
	s.name = "scratch.img";
	s.path = "/srv/scratch";
	s.offset = 1048576;
	s.size_limit = 536870912;
	s.read_only = true;
	s.direct_io = true;
	s.block_size = 4096;
	s.discard = true;
	s.mode = 0640;
	s.uid = 1000;
	s.gid = 100;
	ImageSpec spec = make_spec(s, "");
	CHECK(spec.name == "scratch.img");
	CHECK(spec.path == "/srv/scratch");
	CHECK(spec.offset == 1048576);
	CHECK(spec.size_limit == 536870912);
	CHECK(spec.read_only);
	CHECK(spec.direct_io);
	CHECK(spec.block_size == 4096);
	CHECK(spec.discard);
	CHECK(spec.mode == 0640u);
	CHECK(spec.uid == 1000u);
	CHECK(spec.gid == 100u);
	CHECK(spec.origin.empty());
}

TEST_CASE("make_spec: the default name is the basename of the path")
{
	CHECK(make_spec(with_path("/a/b/c.img"), "").name == "c.img");
	CHECK(make_spec(with_path("relative/d.img"), "").name == "d.img");
	CHECK(make_spec(with_path("plain.img"), "").name == "plain.img");
	CHECK(make_spec(with_path("/top"), "").name == "top");
	/* A path whose basename is not a file name needs an explicit name. */
	CHECK(contains(spec_error(with_path("/a/b/")), "name"));
	CHECK(contains(spec_error(with_path("/")), "name"));
	CHECK(contains(spec_error(with_path("/a/..")), "name"));
	ImageSettings named = with_path("/a/b/");
	named.name = "explicit";
	CHECK(make_spec(named, "").name == "explicit");
}

TEST_CASE("make_spec: a missing path is refused, naming the setting and the image")
{
	ImageSettings s;
	s.name = "lost.img";
	std::string msg = spec_error(s);
	CHECK(contains(msg, "m.toml:7"));
	CHECK(contains(msg, "image \"lost.img\""));
	CHECK(contains(msg, "path"));
	CHECK(contains(msg, "missing"));

	s.path = "";
	CHECK(contains(spec_error(s), "path"));

	/* Without a name, the message still names the setting. */
	CHECK(contains(spec_error(ImageSettings{}), "path"));
}

TEST_CASE("make_spec: bad names are refused")
{
	for (const char *bad : {".", "..", "a/b", ""}) {
		CAPTURE(bad);
		ImageSettings s = with_path("/x/y.img");
		s.name = bad;
		std::string msg = spec_error(s);
		CHECK(contains(msg, "name"));
		CHECK(contains(msg, "m.toml:7"));
	}
	ImageSettings s = with_path("/x/y.img");
	s.name = std::string(256, 'n');
	CHECK(contains(spec_error(s), "name"));
	s.name = "bell\abell";
	CHECK(contains(spec_error(s), "control"));
}

/*
 * Regression (fixed; was: src/config/image_spec.cpp, describe() and make_spec()): the
 * refused name is put into the message unescaped. A name with a NUL byte
 * (a manifest can write "a\u0000b") cuts what() short before the reason, and
 * control characters reach the terminal raw. Names in messages should be
 * escaped (e.g. "nul\x00byte").
 */
TEST_CASE("make_spec: a name with a NUL byte gets a whole message")
{
	ImageSettings s = with_path("/x/y.img");
	s.name = std::string("nul\0byte", 8);
	std::string msg = spec_error(s);
	CHECK(contains(msg, "NUL"));
	s.name = "esc\x1b[2J";
	msg = spec_error(s);
	CHECK(msg.find('\x1b') == std::string::npos);
}

TEST_CASE("make_spec: a path with a NUL byte is refused")
{
	ImageSettings s = with_path(std::string("/x/a\0b", 6));
	s.name = "ok.img";
	std::string msg = spec_error(s);
	CHECK(contains(msg, "path"));
	CHECK(contains(msg, "NUL"));
}

TEST_CASE("make_spec: offset and size_limit above INT64_MAX are refused")
{
	const uint64_t max = static_cast<uint64_t>(INT64_MAX);
	ImageSettings s = with_path("/x/big.img");

	s.offset = max;
	s.size_limit = max;
	ImageSpec spec = make_spec(s, "");
	CHECK(spec.offset == max);
	CHECK(spec.size_limit == max);

	s.offset = max + 1;
	std::string msg = spec_error(s);
	CHECK(contains(msg, "offset"));
	CHECK(contains(msg, "image \"big.img\""));
	CHECK(contains(msg, "9223372036854775808"));

	s.offset = UINT64_MAX;
	CHECK(contains(spec_error(s), "offset"));

	s.offset = 0;
	s.size_limit = max + 1;
	msg = spec_error(s);
	CHECK(contains(msg, "size_limit"));
	CHECK(contains(msg, "image \"big.img\""));

	s.size_limit = UINT64_MAX;
	CHECK(contains(spec_error(s), "size_limit"));
}

TEST_CASE("make_spec: bad block_size and mode are refused")
{
	ImageSettings s = with_path("/x/b.img");
	for (uint32_t bs : {0u, 256u, 1000u, 8192u}) {
		CAPTURE(bs);
		s.block_size = bs;
		std::string msg = spec_error(s);
		CHECK(contains(msg, "block_size"));
		CHECK(contains(msg, "image \"b.img\""));
	}
	s.block_size = 2048;
	CHECK(make_spec(s, "").block_size == 2048);

	for (uint32_t mode : {0755u, 0700u, 04660u, 01666u, 0100644u}) {
		CAPTURE(mode);
		s.mode = mode;
		std::string msg = spec_error(s);
		CHECK(contains(msg, "mode"));
		CHECK(contains(msg, "image \"b.img\""));
	}
	s.mode = 0;
	CHECK(make_spec(s, "").mode == 0u);
	s.mode = 0666;
	CHECK(make_spec(s, "").mode == 0666u);
}

TEST_CASE("ImageSettings::inherit fills only what is missing")
{
	ImageSettings d;
	d.direct_io = true;
	d.read_only = true;
	d.block_size = 4096;
	d.mode = 0600;
	d.uid = 5;

	ImageSettings s = with_path("/p");
	s.read_only = false;
	s.uid = 7;
	s.inherit(d);
	CHECK(s.path == "/p");
	CHECK(s.direct_io == true);
	CHECK(s.read_only == false); /* explicit false is kept */
	CHECK(s.block_size == 4096u);
	CHECK(s.mode == 0600u);
	CHECK(s.uid == 7u);
	CHECK_FALSE(s.gid.has_value());
	CHECK_FALSE(s.offset.has_value());
}

TEST_CASE("image_setting_names lists every setting once")
{
	std::vector<std::string> expect = {"name",	 "path",    "offset", "size_limit",
					   "read_only",	 "direct_io", "block_size",
					   "discard",	 "mode",    "uid",    "gid",
					   "lock"};
	REQUIRE(image_setting_names.size() == expect.size());
	for (size_t i = 0; i < expect.size(); i++)
		CHECK(image_setting_names[i] == expect[i]);
}

TEST_CASE("check_unique_names")
{
	auto spec = [](const std::string &name, const std::string &origin) {
		ImageSpec s;
		s.name = name;
		s.path = "/x/" + name;
		s.origin = origin;
		return s;
	};
	CHECK_NOTHROW(check_unique_names({}));
	CHECK_NOTHROW(check_unique_names({spec("a", "m.toml:2"), spec("b", "m.toml:6")}));
	/* Names are compared exactly (case matters on Linux file systems). */
	CHECK_NOTHROW(check_unique_names({spec("a", ""), spec("A", "")}));

	std::string msg;
	try {
		check_unique_names({spec("a", "m.toml:3"), spec("b", "m.toml:6"),
				    spec("a", "m.toml:9")});
	} catch (const ConfigError &e) {
		msg = e.what();
	}
	CHECK(contains(msg, "m.toml:3"));
	CHECK(contains(msg, "m.toml:9"));
	CHECK(contains(msg, "\"a\""));
	CHECK(contains(msg, "name"));

	/* Without origins (command line, attach) the name is still given. */
	msg.clear();
	try {
		check_unique_names({spec("dup", ""), spec("dup", "")});
	} catch (const ConfigError &e) {
		msg = e.what();
	}
	CHECK(contains(msg, "\"dup\""));
}

TEST_CASE("describe: prefix of messages")
{
	CHECK(describe("m.toml:7", "a") == "m.toml:7: image \"a\": ");
	CHECK(describe("", "a") == "image \"a\": ");
	CHECK(describe("m.toml:7", "") == "m.toml:7: ");
	CHECK(describe("", "").empty());
}
