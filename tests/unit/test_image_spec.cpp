/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config/image_spec: check_name, valid_block_size, make_spec,
 * check_unique_names, ImageSettings::inherit, the image_settings table and
 * read_image_settings.
 */
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
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
	for (uint64_t v :
	     {uint64_t{0}, uint64_t{1}, uint64_t{256}, uint64_t{511}, uint64_t{513}, uint64_t{768},
	      uint64_t{1000}, uint64_t{3072}, uint64_t{4095}, uint64_t{4097}, uint64_t{8192},
	      uint64_t{65536}, uint64_t{1} << 40, uint64_t{1} << 63, UINT64_MAX}) {
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
	std::vector<std::string> expect = {"name",	"path",	     "offset",	   "size_limit",
					   "read_only", "direct_io", "block_size", "discard",
					   "mode",	"uid",	     "gid",	   "lock"};
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
		check_unique_names(
			{spec("a", "m.toml:3"), spec("b", "m.toml:6"), spec("a", "m.toml:9")});
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

namespace {

/* The ConfigError read_image_settings throws for `written`; "" when it does not. */
std::string read_error(const std::vector<WrittenSetting> &written, bool is_defaults = false)
{
	try {
		(void)read_image_settings(written, is_defaults);
	} catch (const ConfigError &e) {
		return e.what();
	}
	return "";
}

} /* namespace */

TEST_CASE("image_settings: one row per field, each attach option once")
{
	for (size_t i = 0; i < std::size(image_settings); i++) {
		const ImageSetting &a = image_settings[i];
		CAPTURE(a.name);
		CHECK(find_image_setting(a.name) == &a);
		for (size_t j = i + 1; j < std::size(image_settings); j++) {
			CHECK(a.name != image_settings[j].name);
			CHECK(a.field != image_settings[j].field);
			if (!a.option.empty())
				CHECK(a.option != image_settings[j].option);
			if (a.short_option)
				CHECK(a.short_option != image_settings[j].short_option);
		}
		/* Every setting but the path (attach's operand) has an attach option. */
		CHECK(a.option.empty() == (a.name == "path"));
		if (!a.option.empty())
			CHECK_FALSE(a.help.empty());
		if (a.kind != SettingKind::flag && !a.option.empty())
			CHECK_FALSE(a.metavar.empty());
	}
	CHECK(find_image_setting("sizelimit") == nullptr);
}

TEST_CASE("read_image_settings: values of every type, as a manifest or attach writes them")
{
	ImageSettings s =
		read_image_settings({{"path", SettingValue::of(std::string("/x/y.img")), "attach"},
				     {"offset", SettingValue::of(std::string("1MiB")), "attach"},
				     {"size_limit", SettingValue::of(int64_t{4096}), "attach"},
				     {"read_only", SettingValue::of(true), "attach"},
				     {"direct_io", SettingValue::of(false), "attach"},
				     {"block_size", SettingValue::of(std::string("4K")), "attach"},
				     {"mode", SettingValue::of(std::string("0640")), "attach"},
				     {"uid", SettingValue::of(std::string("1000")), "attach"},
				     {"gid", SettingValue::of(int64_t{100}), "attach"}},
				    false);
	CHECK(s.path == "/x/y.img");
	CHECK(s.offset == 1048576u);
	CHECK(s.size_limit == 4096u);
	CHECK(s.read_only == true);
	CHECK(s.direct_io == false);
	CHECK(s.block_size == 4096u);
	CHECK_FALSE(s.discard.has_value());
	CHECK(s.mode == 0640u);
	CHECK(s.uid == 1000u);
	CHECK(s.gid == 100u);
}

TEST_CASE("read_image_settings: refusals name the place, the image and the setting")
{
	auto name = WrittenSetting{"name", SettingValue::of(std::string("a")), "attach"};
	auto w = [](const char *key, SettingValue v) { return WrittenSetting{key, v, "attach"}; };

	/* The name is read first, so a setting before it is still named with it. */
	CHECK(read_error({w("offset", SettingValue::of(std::string("1Q"))), name}) ==
	      "attach: image \"a\": offset: \"1Q\": unknown size suffix \"Q\" (use K, M, G, T, "
	      "P, KiB, MiB, GiB, TiB, PiB, KB, MB, GB, TB or PB)");
	CHECK(read_error({w("offset", SettingValue::of(std::string("8192PiB")))}) ==
	      "attach: offset: 9223372036854775808 is larger than 2^63 - 1");
	CHECK(read_error({name, w("block_size", SettingValue::of(int64_t{1000}))}) ==
	      "attach: image \"a\": block_size: 1000 is not a power of two in 512..4096");
	CHECK(contains(
		read_error({name, w("mode", SettingValue::of(std::string("0755")))}),
		"attach: image \"a\": mode: \"0755\": 0755 has bits other than read and write"));
	CHECK(read_error({name, w("uid", SettingValue::of(std::string("4294967295")))}) ==
	      "attach: image \"a\": uid: 4294967295 is out of range (0..4294967294)");
	CHECK(read_error({name, w("gid", SettingValue::of(int64_t{-1}))}) ==
	      "attach: image \"a\": gid: -1 is out of range (0..4294967294)");
	CHECK(read_error({name, w("read_only", SettingValue::of(std::string("yes")))}) ==
	      "attach: image \"a\": read_only: must be true or false");
	CHECK(read_error({name, w("path", SettingValue{})}) ==
	      "attach: image \"a\": path: must be a string");
	CHECK(read_error({name, w("path", SettingValue::of(std::string()))}) ==
	      "attach: image \"a\": path: empty path");
	CHECK(read_error({name, w("sizelimit", SettingValue::of(int64_t{1}))}) ==
	      "attach: image \"a\": sizelimit: unknown setting");
	CHECK(read_error({w("name", SettingValue::of(std::string("d")))}, true) ==
	      "attach: name: only an [[image]] can have a name");
}

TEST_CASE("set_image_setting: the checks of make_spec, on the value as read")
{
	/* Every value make_spec refuses is refused when read, and the other way round. */
	for (uint64_t bs :
	     {uint64_t{256}, uint64_t{512}, uint64_t{3000}, uint64_t{4096}, uint64_t{1} << 40}) {
		CAPTURE(bs);
		ImageSettings read = with_path("/x");
		bool refused = set_image_setting(read, *find_image_setting("block_size"),
						 SettingValue::of(static_cast<int64_t>(bs)))
				       .has_value();
		CHECK(refused == !valid_block_size(bs));
		if (refused)
			CHECK_FALSE(read.block_size.has_value());
	}
	ImageSettings s = with_path("/x");
	CHECK(set_image_setting(s, *find_image_setting("mode"), SettingValue::of(int64_t{0640})) ==
	      std::nullopt);
	CHECK(s.mode == 0640u);
	/* Decimal 660 is not octal 0660. */
	CHECK(contains(
		set_image_setting(s, *find_image_setting("mode"), SettingValue::of(int64_t{660}))
			.value_or(""),
		"write the mode as a string"));
}
