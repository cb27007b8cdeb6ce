/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config/mount_options: parse_command_line (argv as cgloopfs, mount(8) and
 * mount.fuse3 pass it), -o lists, refusals, help_text.
 */
#include <algorithm>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <sys/socket.h>

#include <doctest/doctest.h>

#include "config/mount_options.hpp"

using namespace cgloopfs::config;

namespace {

/*
 * An argv that stays valid for the whole test binary: getopt keeps pointers
 * into the last argv it scanned, so a freed argv could be read later.
 */
class Argv
{
public:
	Argv(std::initializer_list<const char *> args)
	{
		for (const char *a : args)
			strings_->emplace_back(a);
		for (auto &s : *strings_)
			pointers_.push_back(s.data());
		pointers_.push_back(nullptr);
	}

	int argc() const { return static_cast<int>(pointers_.size() - 1); }
	char **argv() { return pointers_.data(); }

private:
	/* Never freed (reachable from a static): see above. */
	static std::vector<std::unique_ptr<std::vector<std::string>>> &keep()
	{
		static auto *all = new std::vector<std::unique_ptr<std::vector<std::string>>>;
		return *all;
	}
	std::vector<std::string> *strings_ =
		keep().emplace_back(std::make_unique<std::vector<std::string>>()).get();
	std::vector<char *> pointers_;
};

MountOptions parse(std::initializer_list<const char *> args)
{
	Argv a(args);
	return parse_command_line(a.argc(), a.argv());
}

/* The UsageError message for `args`; fails the test when there is none. */
std::string usage_error(std::initializer_list<const char *> args)
{
	try {
		(void)parse(args);
		FAIL_CHECK("accepted");
	} catch (const UsageError &e) {
		return e.what();
	}
	return "";
}

bool contains(const std::string &haystack, const std::string &needle)
{
	return haystack.find(needle) != std::string::npos;
}

bool has(const std::vector<std::string> &v, const std::string &s)
{
	return std::find(v.begin(), v.end(), s) != v.end();
}

/* `-o option` must be refused with a message naming `named`. */
void check_bad_option(const char *option, const std::string &named)
{
	CAPTURE(option);
	std::string msg = usage_error({"cgloopfs", "-o", option, "src", "mnt"});
	CAPTURE(msg);
	CHECK(contains(msg, named));
	CHECK(msg.find('\n') == std::string::npos);
}

} /* namespace */

TEST_CASE("parse_command_line: defaults")
{
	MountOptions o = parse({"cgloopfs", "/srv/images.toml", "/mnt/img"});
	CHECK(o.source == "/srv/images.toml");
	CHECK(o.mountpoint == "/mnt/img");
	CHECK_FALSE(o.foreground);
	CHECK_FALSE(o.debug);
	CHECK_FALSE(o.show_help);
	CHECK_FALSE(o.show_version);
	CHECK(o.idle_timeout == 60);
	CHECK(o.max_workers == 64);
	CHECK(o.worker_depth == 4);
	CHECK(o.dispatch == DispatchMode::cgroup);
	CHECK(o.cache == CacheMode::direct);
	CHECK(o.control.empty());
	CHECK_FALSE(o.read_only);
	CHECK_FALSE(o.allow_other);
	CHECK_FALSE(o.default_permissions);
	CHECK(o.fuse_options.empty());
}

TEST_CASE("parse_command_line: -f -d -h -V and their long forms")
{
	MountOptions o = parse({"cgloopfs", "-f", "a", "b"});
	CHECK(o.foreground);
	CHECK_FALSE(o.debug);

	o = parse({"cgloopfs", "-d", "a", "b"});
	CHECK(o.debug);
	CHECK(o.foreground); /* -d implies -f */

	o = parse({"cgloopfs", "--foreground", "--debug", "a", "b"});
	CHECK(o.foreground);
	CHECK(o.debug);

	o = parse({"cgloopfs", "-fd", "a", "b"});
	CHECK(o.foreground);
	CHECK(o.debug);

	/* -h and -V need no operands. */
	o = parse({"cgloopfs", "-h"});
	CHECK(o.show_help);
	o = parse({"cgloopfs", "--help"});
	CHECK(o.show_help);
	o = parse({"cgloopfs", "-V"});
	CHECK(o.show_version);
	o = parse({"cgloopfs", "--version"});
	CHECK(o.show_version);
	o = parse({"cgloopfs", "a", "b", "-h"});
	CHECK(o.show_help);
}

TEST_CASE("parse_command_line: our -o options")
{
	MountOptions o = parse({"cgloopfs", "-o",
				"idle_timeout=5,max_workers=8,worker_depth=2,dispatch=single,"
				"cache=kernel,control=/run/x.sock",
				"src", "mnt"});
	CHECK(o.idle_timeout == 5);
	CHECK(o.max_workers == 8);
	CHECK(o.worker_depth == 2);
	CHECK(o.dispatch == DispatchMode::single);
	CHECK(o.cache == CacheMode::kernel);
	CHECK(o.control == "/run/x.sock");
	/* Ours are not passed to libfuse. */
	CHECK(o.fuse_options.empty());

	o = parse({"cgloopfs", "-o", "dispatch=single", "-o", "dispatch=cgroup,cache=direct", "s",
		   "m"});
	CHECK(o.dispatch == DispatchMode::cgroup);
	CHECK(o.cache == CacheMode::direct);

	/* The bounds themselves are accepted. */
	o = parse({"cgloopfs", "-o", "idle_timeout=1,max_workers=1,worker_depth=1", "s", "m"});
	CHECK(o.idle_timeout == 1);
	CHECK(o.max_workers == 1);
	CHECK(o.worker_depth == 1);
	o = parse({"cgloopfs", "-o", "idle_timeout=86400,max_workers=4096,worker_depth=64", "s",
		   "m"});
	CHECK(o.idle_timeout == 86400);
	CHECK(o.max_workers == 4096);
	CHECK(o.worker_depth == 64);
}

TEST_CASE("parse_command_line: -o forms: attached, repeated, empty items")
{
	MountOptions o = parse({"cgloopfs", "-oidle_timeout=7", "s", "m"});
	CHECK(o.idle_timeout == 7);
	/* -o has no long form (as in libfuse and mount(8)): --options is unknown. */
	CHECK(contains(usage_error({"cgloopfs", "--options=max_workers=3", "s", "m"}),
		       "--options"));
	o = parse({"cgloopfs", "-o", ",,idle_timeout=2,,", "-o", "", "s", "m"});
	CHECK(o.idle_timeout == 2);
	CHECK(o.fuse_options.empty());
	/* The last value wins. */
	o = parse({"cgloopfs", "-o", "idle_timeout=2,idle_timeout=3", "s", "m"});
	CHECK(o.idle_timeout == 3);
}

TEST_CASE("parse_command_line: escaped commas stay in the value")
{
	MountOptions o =
		parse({"cgloopfs", "-o", "control=/run/a\\,b.sock,idle_timeout=9", "s", "m"});
	CHECK(o.control == "/run/a,b.sock");
	CHECK(o.idle_timeout == 9);

	o = parse({"cgloopfs", "-o", "control=/x\\\\y", "s", "m"});
	CHECK(o.control == "/x\\y");
}

TEST_CASE("parse_command_line: options after the operands, as mount.fuse3 passes them")
{
	MountOptions o = parse({"cgloopfs", "SRC", "MNT", "-o", "rw,idle_timeout=5"});
	CHECK(o.source == "SRC");
	CHECK(o.mountpoint == "MNT");
	CHECK(o.idle_timeout == 5);
	CHECK_FALSE(o.read_only);

	o = parse({"cgloopfs", "SRC", "MNT", "-o", "ro,dev,suid,noatime", "-f"});
	CHECK(o.read_only);
	CHECK(o.foreground);
	CHECK(o.source == "SRC");
	CHECK(o.mountpoint == "MNT");

	o = parse({"cgloopfs", "SRC", "-o", "max_workers=2", "MNT"});
	CHECK(o.source == "SRC");
	CHECK(o.mountpoint == "MNT");
	CHECK(o.max_workers == 2);
}

TEST_CASE("parse_command_line: ro, rw and pass-through options")
{
	/* ro is kept as read_only (the last of ro/rw wins); the session passes it on. */
	MountOptions o = parse({"cgloopfs", "-o", "ro", "s", "m"});
	CHECK(o.read_only);
	CHECK_FALSE(has(o.fuse_options, "ro"));

	o = parse({"cgloopfs", "-o", "rw", "s", "m"});
	CHECK_FALSE(o.read_only);
	CHECK_FALSE(has(o.fuse_options, "ro"));

	o = parse({"cgloopfs", "-o", "noatime,noexec,fsname=pool,auto_unmount", "s", "m"});
	CHECK(has(o.fuse_options, "noatime"));
	CHECK(has(o.fuse_options, "noexec"));
	CHECK(has(o.fuse_options, "fsname=pool"));
	CHECK(has(o.fuse_options, "auto_unmount"));

	/* fstab and mount(8) words are accepted and dropped. */
	o = parse({"cgloopfs", "-o",
		   "defaults,nofail,_netdev,auto,noauto,user,nouser,users,"
		   "suid,dev,nosuid,nodev",
		   "s", "m"});
	CHECK(o.fuse_options.empty());
}

TEST_CASE("parse_command_line: allow_other implies default_permissions")
{
	MountOptions o = parse({"cgloopfs", "-o", "allow_other", "s", "m"});
	CHECK(o.allow_other);
	CHECK(o.default_permissions);
	/* The session adds both itself: not duplicated in fuse_options. */
	CHECK_FALSE(has(o.fuse_options, "allow_other"));

	o = parse({"cgloopfs", "s", "m", "-o", "allow_other"});
	CHECK(o.default_permissions);

	o = parse({"cgloopfs", "-o", "default_permissions", "s", "m"});
	CHECK(o.default_permissions);
	CHECK_FALSE(o.allow_other);
}

TEST_CASE("parse_command_line: unknown options and missing or extra values")
{
	check_bad_option("bogus", "bogus");
	check_bad_option("idle_timeout=5,bogus=1", "bogus");
	check_bad_option("IDLE_TIMEOUT=5", "IDLE_TIMEOUT");
	check_bad_option("idle_timeout", "idle_timeout");
	check_bad_option("idle_timeout=", "idle_timeout");
	check_bad_option("control", "control");
	check_bad_option("control=", "control");
	check_bad_option("dispatch", "dispatch");
	check_bad_option("ro=1", "ro");
	check_bad_option("allow_other=yes", "allow_other");
	check_bad_option("default_permissions=", "default_permissions");

	std::string msg = usage_error({"cgloopfs", "-x", "s", "m"});
	CHECK(contains(msg, "-x"));
	msg = usage_error({"cgloopfs", "--bogus", "s", "m"});
	CHECK(contains(msg, "--bogus"));
	msg = usage_error({"cgloopfs", "s", "m", "-o"});
	CHECK(contains(msg, "-o"));
	CHECK_FALSE(usage_error({"cgloopfs", "--foreground=yes", "s", "m"}).empty());
}

/*
 * Regression (fixed; was: src/config/mount_options.cpp, parse_command_line, case '?'): a
 * value given to a long flag ("--foreground=yes") makes getopt_long return
 * '?' with optopt set to the flag's short letter, so the message says
 * 'unknown option "-f"', naming an option that exists and one the user did
 * not type. It should name "--foreground" and say it takes no value.
 */
TEST_CASE("parse_command_line: a value on a long flag names that flag")
{
	std::string msg = usage_error({"cgloopfs", "--foreground=yes", "s", "m"});
	CHECK(contains(msg, "--foreground"));
	msg = usage_error({"cgloopfs", "--debug=1", "s", "m"});
	CHECK(contains(msg, "--debug"));
}

TEST_CASE("parse_command_line: out-of-range and malformed values")
{
	check_bad_option("idle_timeout=0", "idle_timeout");
	check_bad_option("idle_timeout=86401", "idle_timeout");
	check_bad_option("idle_timeout=-1", "idle_timeout");
	check_bad_option("idle_timeout=5s", "idle_timeout");
	check_bad_option("idle_timeout=abc", "idle_timeout");
	check_bad_option("idle_timeout=99999999999999999999999", "idle_timeout");
	check_bad_option("max_workers=0", "max_workers");
	check_bad_option("max_workers=5000", "max_workers");
	check_bad_option("max_workers=4097", "max_workers");
	check_bad_option("max_workers=many", "max_workers");
	check_bad_option("worker_depth=0", "worker_depth");
	check_bad_option("worker_depth=65", "worker_depth");
	check_bad_option("worker_depth=1.5", "worker_depth");
	check_bad_option("dispatch=foo", "dispatch");
	check_bad_option("dispatch=Cgroup", "dispatch");
	check_bad_option("cache=foo", "cache");
	check_bad_option("cache=none", "cache");
	check_bad_option("control=relative", "control");
	check_bad_option("control=./x.sock", "control");

	/* The message says what is allowed. */
	std::string msg = usage_error({"cgloopfs", "-o", "max_workers=5000", "s", "m"});
	CHECK(contains(msg, "4096"));
	msg = usage_error({"cgloopfs", "-o", "dispatch=foo", "s", "m"});
	CHECK(contains(msg, "cgroup"));
	CHECK(contains(msg, "single"));
	msg = usage_error({"cgloopfs", "-o", "control=relative", "s", "m"});
	CHECK(contains(msg, "absolute"));
}

TEST_CASE("parse_command_line: operands")
{
	CHECK(contains(usage_error({"cgloopfs"}), "MOUNTPOINT"));
	CHECK(contains(usage_error({"cgloopfs", "src"}), "MOUNTPOINT"));
	CHECK(contains(usage_error({"cgloopfs", "-f", "src"}), "MOUNTPOINT"));
	CHECK(contains(usage_error({"cgloopfs", "src", "mnt", "extra"}), "extra"));
	CHECK(contains(usage_error({"cgloopfs", "src", "mnt", "-o", "ro", "third"}), "third"));
	CHECK_FALSE(usage_error({"cgloopfs", "", "mnt"}).empty());
	CHECK_FALSE(usage_error({"cgloopfs", "src", ""}).empty());
}

TEST_CASE("parse_command_line: repeated calls do not leak state")
{
	MountOptions a = parse({"cgloopfs", "-f", "-o", "ro", "a1", "b1"});
	CHECK(a.foreground);
	MountOptions b = parse({"cgloopfs", "a2", "b2"});
	CHECK_FALSE(b.foreground);
	CHECK_FALSE(b.read_only);
	CHECK(b.source == "a2");
	CHECK(b.mountpoint == "b2");
	/* A longer argv, then a shorter one. */
	MountOptions c = parse({"cgloopfs", "-f", "-d", "-o", "idle_timeout=3", "x", "y"});
	CHECK(c.idle_timeout == 3);
	MountOptions d = parse({"cgloopfs", "x", "y"});
	CHECK(d.idle_timeout == 60);
	CHECK_FALSE(d.debug);
	/* After a usage error, too. */
	CHECK_FALSE(usage_error({"cgloopfs", "-o", "bogus", "x", "y"}).empty());
	MountOptions e = parse({"cgloopfs", "x", "y"});
	CHECK(e.fuse_options.empty());
}

/*
 * Regression (fixed; was: src/config/mount_options.cpp, parse_command_line: "optind = 1").
 * glibc's getopt only starts afresh when optind is 0; with optind = 1 it keeps
 * its private position inside the previous argv. When a parse stops in the
 * middle of a cluster of short options ("-xf": -x is refused, "f" is left),
 * the next parse_command_line continues with that stale "f" from the old argv
 * (a dangling pointer if that argv was freed), takes it as -f, and skips
 * argv[1]: "cgloopfs s m" is then refused with "expected SOURCE and
 * MOUNTPOINT". Fix: optind = 0.
 */
TEST_CASE("parse_command_line: no stale getopt state after an error inside -xf")
{
	CHECK(contains(usage_error({"cgloopfs", "-xf", "s", "m"}), "-x"));
	MountOptions o;
	CHECK_NOTHROW(o = parse({"cgloopfs", "s", "m"}));
	CHECK_FALSE(o.foreground);
	CHECK(o.source == "s");
	CHECK(o.mountpoint == "m");
}

/*
 * Regression (fixed; was: src/config/mount_options.cpp, apply_one): "rw" after "ro" (as
 * in "-o ro,rw", or an fstab "ro" overridden by "mount -o rw") clears
 * read_only but leaves the "ro" already pushed to fuse_options, so the FUSE
 * mount is still read-only while the images are opened read-write. The last
 * of ro/rw should win everywhere.
 */
TEST_CASE("parse_command_line: rw after ro undoes ro")
{
	MountOptions o = parse({"cgloopfs", "-o", "ro,rw", "s", "m"});
	CHECK_FALSE(o.read_only);
	CHECK_FALSE(has(o.fuse_options, "ro"));
}

/*
 * A pass-through value with an escaped comma is kept whole, unescaped; the
 * session escapes it again when it builds libfuse's -o list (a regression
 * test: it was once split into "fsname=a" and an unknown option "b").
 */
TEST_CASE("parse_command_line: escaped commas survive into fuse_options")
{
	MountOptions o = parse({"cgloopfs", "-o", "fsname=a\\,b", "s", "m"});
	CHECK(has(o.fuse_options, "fsname=a,b"));
	CHECK_FALSE(has(o.fuse_options, "b"));
}

TEST_CASE("apply_option_string works on its own")
{
	MountOptions o;
	apply_option_string(o, "idle_timeout=11,cache=kernel");
	CHECK(o.idle_timeout == 11);
	CHECK(o.cache == CacheMode::kernel);
	CHECK_THROWS_AS(apply_option_string(o, "nope"), UsageError);
	/* A trailing backslash is kept as it is. */
	apply_option_string(o, "control=/a\\");
	CHECK(o.control == "/a\\");
}

TEST_CASE("mount_option_table: unique names, ours documented")
{
	for (size_t i = 0; i < mount_option_table.size(); i++) {
		const OptionSpec &a = mount_option_table[i];
		CAPTURE(a.name);
		CHECK_FALSE(a.name.empty());
		CHECK(a.name.find_first_of(",= ") == std::string_view::npos);
		if (a.ours)
			CHECK_FALSE(a.help.empty());
		for (size_t j = i + 1; j < mount_option_table.size(); j++)
			CHECK(a.name != mount_option_table[j].name);
	}
	for (const char *name :
	     {"idle_timeout", "max_workers", "worker_depth", "dispatch", "cache", "control"}) {
		CAPTURE(name);
		auto it = std::find_if(mount_option_table.begin(), mount_option_table.end(),
				       [&](const OptionSpec &o) { return o.name == name; });
		REQUIRE(it != mount_option_table.end());
		CHECK(it->ours);
		CHECK_FALSE(it->metavar.empty());
	}
}

TEST_CASE("mount_option_table: every option in it is accepted")
{
	for (const OptionSpec &spec : mount_option_table) {
		std::string item(spec.name);
		if (!spec.metavar.empty()) {
			if (spec.name == "idle_timeout" || spec.name == "max_workers" ||
			    spec.name == "worker_depth" || spec.name == "request_timeout")
				item += "=3";
			else if (spec.name == "max_queued")
				item += "=64M";
			else if (spec.name == "dispatch")
				item += "=single";
			else if (spec.name == "cache")
				item += "=kernel";
			else if (spec.name == "control")
				item += "=/run/c.sock";
			else if (spec.name == "lock")
				item += "=off";
			else if (spec.name == "charge")
				item += "=none";
			else if (spec.name == "metrics")
				item += "=127.0.0.1:9477";
			else
				item += "=value";
		}
		CAPTURE(item);
		Argv a({"cgloopfs", "-o", item.c_str(), "s", "m"});
		CHECK_NOTHROW((void)parse_command_line(a.argc(), a.argv()));
	}
}

TEST_CASE("help_text: fits 80 columns and shows every documented option")
{
	std::string help = help_text("cgloopfs");
	CHECK(contains(help, "cgloopfs"));
	CHECK(contains(help, "SOURCE"));
	CHECK(contains(help, "MOUNTPOINT"));
	for (const char *flag :
	     {"-f", "--foreground", "-d", "--debug", "-h", "--help", "-V", "--version", "-o"})
		CHECK(contains(help, flag));

	std::istringstream in(help);
	std::string line;
	int lines = 0;
	while (std::getline(in, line)) {
		CAPTURE(line);
		CHECK(line.size() <= 80);
		CHECK(line.find('\t') == std::string::npos);
		lines++;
	}
	CHECK(lines > 10);
	CHECK(help.back() == '\n');

	for (const OptionSpec &spec : mount_option_table) {
		if (spec.help.empty())
			continue;
		CAPTURE(spec.name);
		std::string shown(spec.name);
		if (!spec.metavar.empty())
			shown += "=" + std::string(spec.metavar);
		/* A long one stands on a line of its own, its help below it. */
		CHECK((contains(help, "  " + shown + " ") || contains(help, "  " + shown + "\n")));
		CHECK(contains(help, std::string(spec.help)));
	}
}

TEST_CASE("help_text: a long program name still fits")
{
	std::string help = help_text("/usr/local/sbin/cgloopfs");
	std::istringstream in(help);
	std::string line;
	while (std::getline(in, line)) {
		CAPTURE(line);
		CHECK(line.size() <= 80);
	}
}

TEST_CASE("request_timeout and max_queued: defaults, values and refusals")
{
	Argv d({"cgloopfs", "s", "m"});
	auto def = parse_command_line(d.argc(), d.argv());
	CHECK(def.request_timeout == 30);
	CHECK(def.max_queued == (256ULL << 20));

	Argv a({"cgloopfs", "-o", "request_timeout=5,max_queued=1G", "s", "m"});
	auto o = parse_command_line(a.argc(), a.argv());
	CHECK(o.request_timeout == 5);
	CHECK(o.max_queued == (1ULL << 30));

	for (const char *bad : {"request_timeout=0", "request_timeout=3601", "request_timeout=x",
				"max_queued=15M", "max_queued=65G", "max_queued=lots"}) {
		CAPTURE(bad);
		Argv b({"cgloopfs", "-o", bad, "s", "m"});
		std::string key = std::string(bad).substr(0, std::string(bad).find('='));
		try {
			(void)parse_command_line(b.argc(), b.argv());
			FAIL("accepted");
		} catch (const UsageError &e) {
			CHECK(contains(e.what(), key));
		}
	}
}

/*
 * Regression (fixed; found by tests/fuzz/fuzz_mount_options): after "--",
 * glibc's getopt moved optind back to the first operand at every call, so
 * "cgloopfs -- SOURCE MOUNTPOINT" collected operands until memory ran out.
 */
TEST_CASE("parse_command_line: -- ends the options")
{
	MountOptions o = parse({"cgloopfs", "--", "s", "m"});
	CHECK(o.source == "s");
	CHECK(o.mountpoint == "m");
	o = parse({"cgloopfs", "-f", "-o", "ro", "s", "--", "-m"});
	CHECK(o.foreground);
	CHECK(o.read_only);
	CHECK(o.source == "s");
	CHECK(o.mountpoint == "-m");
	/* "--" as -o's value is an option, not the end of them. */
	CHECK(contains(usage_error({"cgloopfs", "-o", "--", "s", "m"}), "unknown option \"--\""));
	CHECK(contains(usage_error({"cgloopfs", "--", "-o", "ro", "s"}),
		       "unexpected argument \"s\""));
	CHECK(contains(usage_error({"cgloopfs", "--", "", "", "", "x", "y"}),
		       "unexpected argument"));
	CHECK(contains(usage_error({"cgloopfs", "s", "--"}), "expected SOURCE and MOUNTPOINT"));
}

/* Found by tests/fuzz/fuzz_mount_options: messages quote what they were given, escaped. */
TEST_CASE("parse_command_line: messages are one line")
{
	for (auto args : {std::initializer_list<const char *>{"cgloopfs", "-o", "a\nb", "s", "m"},
			  {"cgloopfs", "-o", "max_workers=1\n", "s", "m"},
			  {"cgloopfs", "-o", "dispatch=\r", "s", "m"},
			  {"cgloopfs", "-o", "control=\n/x", "s", "m"},
			  {"cgloopfs", "--fore\nground", "s", "m"},
			  {"cgloopfs", "-\n", "s", "m"},
			  {"cgloopfs", "s", "m", "x\ny"}}) {
		std::string msg = usage_error(args);
		CAPTURE(msg);
		CHECK(!msg.empty());
		CHECK(msg.find('\n') == std::string::npos);
		CHECK(msg.find('\r') == std::string::npos);
	}
	CHECK(contains(usage_error({"cgloopfs", "-o", "a\nb", "s", "m"}), "a\\x0ab"));
}

TEST_CASE("mount_option_table: the rows hold the defaults, ranges and choices")
{
	MountOptions o;
	for (const OptionSpec &spec : mount_option_table) {
		CAPTURE(spec.name);
		if (spec.kind == OptionKind::number || spec.kind == OptionKind::size) {
			CHECK(spec.ours);
			CHECK(spec.min <= spec.def);
			CHECK(spec.def <= spec.max);
			/* The default is what a MountOptions starts with, and min and max are accepted. */
			MountOptions fresh;
			spec.set(fresh, {spec.def, ""});
			std::string bound = spec.kind == OptionKind::size
						    ? std::to_string(spec.max >> 20) + "M"
						    : std::to_string(spec.max);
			CHECK_NOTHROW(apply_option(fresh, std::string(spec.name) + "=" + bound));
			CHECK_THROWS_AS(apply_option(fresh, std::string(spec.name) + "=0"),
					UsageError);
		}
		if (spec.kind == OptionKind::choice)
			CHECK_FALSE(choice_name(spec, spec.def).empty());
		if (spec.ours)
			CHECK(static_cast<bool>(spec.set));
		CHECK_FALSE((spec.dropped && spec.set));
	}
	CHECK(o.idle_timeout == find_mount_option("idle_timeout")->def);
	CHECK(o.max_workers == find_mount_option("max_workers")->def);
	CHECK(o.worker_depth == find_mount_option("worker_depth")->def);
	CHECK(o.request_timeout == find_mount_option("request_timeout")->def);
	CHECK(o.max_queued == find_mount_option("max_queued")->def);
	CHECK(choice_name(*find_mount_option("dispatch"), static_cast<size_t>(o.dispatch)) ==
	      "cgroup");
	CHECK(choice_name(*find_mount_option("cache"), static_cast<size_t>(o.cache)) == "direct");
	CHECK(choice_name(*find_mount_option("cache"), 1) == "kernel");
	CHECK(choice_name(*find_mount_option("cache"), 2).empty());
}

TEST_CASE("default_and_range and runtime_option_names: what --help and set show")
{
	CHECK(default_and_range(*find_mount_option("idle_timeout")) == "60; 1..86400");
	CHECK(default_and_range(*find_mount_option("max_queued")) == "256M; 16M..64G");
	CHECK(default_and_range(*find_mount_option("dispatch")) == "cgroup");
	CHECK(default_and_range(*find_mount_option("control")) == "/run/cgloopfs/MOUNT.sock");
	CHECK(default_and_range(*find_mount_option("ro")).empty());
	CHECK(runtime_option_names() == "idle_timeout, max_workers, worker_depth, charge, lock");
	CHECK(find_mount_option("nope") == nullptr);
}

TEST_CASE("apply_option: one option, commas and all")
{
	MountOptions o;
	apply_option(o, "control=/a,b");
	CHECK(o.control == "/a,b");
	CHECK_THROWS_AS(apply_option(o, "idle_timeout=5,max_workers=1"), UsageError);
	CHECK(o.max_workers == 64);
}

TEST_CASE("metrics=ADDRESS:PORT: off by default; literal IPv4 or [IPv6] and a port")
{
	MountOptions o;
	CHECK(o.metrics.empty());
	CHECK(default_and_range(*find_mount_option("metrics")) == "off");
	apply_option(o, "metrics=127.0.0.1:9477");
	CHECK(o.metrics == "127.0.0.1:9477");
	apply_option(o, "metrics=[::1]:1");
	CHECK(o.metrics == "[::1]:1");
	o = parse({"cgloopfs", "-o", "metrics=0.0.0.0:65535", "s", "m"});
	CHECK(o.metrics == "0.0.0.0:65535");
	CHECK(o.fuse_options.empty());

	std::string why;
	auto a = parse_listen_address("[fe80::1]:80", &why);
	REQUIRE(a);
	CHECK(a->family == AF_INET6);
	CHECK(a->host == "fe80::1");
	CHECK(a->port == 80);
	a = parse_listen_address("10.1.2.3:9100", &why);
	REQUIRE(a);
	CHECK(a->family == AF_INET);
	CHECK(a->host == "10.1.2.3");
	CHECK(a->port == 9100);

	for (const char *bad :
	     {"metrics=localhost:9477", "metrics=127.0.0.1", "metrics=127.0.0.1:",
	      "metrics=127.0.0.1:0", "metrics=127.0.0.1:65536", "metrics=:9477", "metrics=::1:9477",
	      "metrics=[::1]", "metrics=[::1]9477", "metrics=[127.0.0.1]:9477", "metrics=1.2.3:9",
	      "metrics=127.0.0.1:+9", "metrics=[::1:9477", "metrics=a\nb:1"}) {
		CAPTURE(bad);
		MountOptions fresh;
		try {
			apply_option(fresh, bad);
			FAIL("accepted");
		} catch (const UsageError &e) {
			/* One line naming the option and its value. */
			std::string msg = e.what();
			CHECK(msg.rfind("option \"metrics=", 0) == 0);
			CHECK(msg.find('\n') == std::string::npos);
		}
		CHECK(fresh.metrics.empty());
	}
	CHECK_THROWS_AS(apply_option(o, "metrics"), UsageError);
	CHECK_THROWS_AS(apply_option(o, "metrics="), UsageError);
}
