/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cli/options: cgloopctl's command line, where tests/fuzz/fuzz_mount_options
 * found problems ("--", messages). The commands themselves are tested
 * through cgloopctl in tests/integration/cases/test_control.py.
 */
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "cli/options.hpp"
#include "config/image_spec.hpp"

using namespace cgloopfs::cli;

namespace {

/* Arguments that outlive the parse: getopt keeps pointers into the last argv. */
char **argv_of(std::initializer_list<const char *> args)
{
	struct Args {
		std::vector<std::string> strings;
		std::vector<char *> pointers;
	};
	static std::vector<std::unique_ptr<Args>> keep; /* reachable: no leak reported */
	auto &a = *keep.emplace_back(std::make_unique<Args>());
	for (const char *arg : args)
		a.strings.emplace_back(arg);
	for (auto &s : a.strings)
		a.pointers.push_back(s.data());
	a.pointers.push_back(nullptr);
	return a.pointers.data();
}

Invocation parse(std::initializer_list<const char *> args)
{
	return parse_command_line(static_cast<int>(args.size()), argv_of(args));
}

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

} /* namespace */

/*
 * Regression (fixed): after "--" glibc's getopt moved optind back to the first
 * operand at every call, so "cgloopctl detach -- NAME" collected operands
 * until memory ran out.
 */
TEST_CASE("cgloopctl: -- ends the options")
{
	Invocation inv = parse({"cgloopctl", "detach", "--", "-a"});
	REQUIRE(inv.command);
	CHECK(inv.command->name == "detach");
	CHECK(inv.operands == std::vector<std::string>{"-a"});
	CHECK_FALSE(inv.has("all"));
	inv = parse({"cgloopctl", "-J", "--", "status"});
	REQUIRE(inv.command);
	CHECK(inv.command->name == "status");
	CHECK(inv.has("json"));
	inv = parse({"cgloopctl", "attach", "-r", "--", "--name"});
	CHECK(inv.has("read-only"));
	CHECK(inv.operands == std::vector<std::string>{"--name"});
	CHECK(usage_error({"cgloopctl", "detach", "--", "a", "b"}).find("unexpected argument") !=
	      std::string::npos);
}

TEST_CASE("cgloopctl: messages are one line")
{
	for (auto args : {std::initializer_list<const char *>{"cgloopctl", "li\nst"},
			  {"cgloopctl", "detach", "a", "b\nc"},
			  {"cgloopctl", "detach", "--bo\ngus"}}) {
		std::string msg = usage_error(args);
		CAPTURE(msg);
		CHECK(!msg.empty());
		CHECK(msg.find('\n') == std::string::npos);
	}
}

TEST_CASE("cgloopctl: the verbs have handlers, attach has an option per image setting")
{
	for (const auto &c : commands) {
		CAPTURE(c.name);
		CHECK(static_cast<bool>(c.run));
		CHECK(c.min_operands <= c.max_operands);
	}
	const CommandSpec *attach = nullptr;
	for (const auto &c : commands)
		if (c.name == "attach")
			attach = &c;
	REQUIRE(attach);
	for (const auto &s : cgloopfs::config::image_settings) {
		if (s.option.empty())
			continue;
		CAPTURE(s.name);
		bool found = false;
		for (const auto &o : attach->options)
			found |= o.long_name == s.option && o.short_name == s.short_option;
		CHECK(found);
	}
	Invocation inv = parse({"cgloopctl", "attach", "--direct-io", "-b", "4096", "--sizelimit",
				"1M", "-r", "img"});
	CHECK(inv.get("direct-io", "x").empty());
	CHECK(inv.get("sector-size") == "4096");
	CHECK(inv.get("sizelimit") == "1M");
	CHECK(inv.has("read-only"));
	inv = parse({"cgloopctl", "attach", "--direct-io=off", "img"});
	CHECK(inv.get("direct-io") == "off");
	CHECK(help_text(nullptr).find("change idle_timeout, max_workers, worker_depth") !=
	      std::string::npos);
}
