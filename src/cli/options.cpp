/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "options.hpp"

#include <cctype>
#include <cstdint>
#include <cstring>

#include <getopt.h>

#include <fmt/core.h>

#include "config/image_spec.hpp"
#include "config/mount_options.hpp"

namespace cgloopfs::cli {

const std::vector<OptSpec> global_options = {
	{"mount", 'm', ArgKind::required, "DIR", "the cgloopfs mount point (default: the only one)"},
	{"socket", 's', ArgKind::required, "PATH", "talk to this control socket instead"},
	{"json", 'J', ArgKind::none, "", "print JSON instead of a table"},
	{"help", 'h', ArgKind::none, "", "show this help and exit"},
	{"version", 'V', ArgKind::none, "", "show the version and exit"},
};

const std::vector<CommandSpec> commands = {
	{"list", "[MOUNTPOINT]", "the images, as losetup --list shows loop devices", 0, 1,
	 {
		 {"output", 'O', ArgKind::required, "COLS", "the columns to show (comma-separated)"},
		 {"noheadings", 'n', ArgKind::none, "", "no header line"},
		 {"raw", 0, ArgKind::none, "", "raw output: single spaces, no alignment"},
		 {"manifest", 0, ArgKind::none, "", "print a manifest that makes these images"},
	 }},
	{"attach", "IMAGE", "serve IMAGE (a file or block device) as a new file", 1, 1,
	 {
		 {"name", 0, ArgKind::required, "NAME", "its file name (default: IMAGE's name)"},
		 {"offset", 'o', ArgKind::required, "SIZE", "where the window starts in IMAGE"},
		 {"sizelimit", 0, ArgKind::required, "SIZE", "the most bytes the window may have"},
		 {"read-only", 'r', ArgKind::none, "", "refuse writes, discards and truncation"},
		 {"direct-io", 0, ArgKind::optional, "on|off", "O_DIRECT on IMAGE (on)"},
		 {"sector-size", 'b', ArgKind::required, "SIZE", "block size shown (512..4096)"},
		 {"discard", 0, ArgKind::none, "", "pass punch-hole and zero-range to IMAGE"},
		 {"mode", 0, ArgKind::required, "MODE", "permission bits, octal (IMAGE's)"},
		 {"uid", 0, ArgKind::required, "UID", "owner (IMAGE's)"},
		 {"gid", 0, ArgKind::required, "GID", "group (IMAGE's)"},
		 {"lock", 0, ArgKind::required, "auto|on|off", "QEMU-style locks on IMAGE (auto)"},
		 {"show", 0, ArgKind::none, "", "print the path of the new file"},
	 }},
	{"detach", "[NAME]", "stop serving an image", 0, 1,
	 {
		 {"all", 'a', ArgKind::none, "", "detach every image"},
		 {"lazy", 'l', ArgKind::none, "", "hide it now, free it on its last close"},
	 }},
	{"set-capacity", "NAME", "re-read the size of an image's backing file", 1, 1, {}},
	{"get", "[MOUNTPOINT]", "show the runtime settings", 0, 1, {}},
	{"set", "KEY=VALUE...", "change idle_timeout, max_workers, worker_depth", 1, SIZE_MAX,
	 {}},
	{"workers", "[MOUNTPOINT]", "live workers: cgroup, state, queued, in flight", 0, 1, {}},
	{"stats", "[MOUNTPOINT]", "per-cgroup requests, bytes, errors and latency", 0, 1, {}},
	{"status", "[MOUNTPOINT]", "the mount: source, images, dispatch settings", 0, 1, {}},
};

namespace {

const CommandSpec *find_command(std::string_view name)
{
	for (const auto &c : commands)
		if (c.name == name)
			return &c;
	return nullptr;
}

/* getopt_long over `specs`; options go to inv.options, operands to `rest`. */
void run_getopt(int argc, char **argv, const std::vector<const OptSpec *> &specs, bool stop_at_operand,
		Invocation &inv, std::vector<std::string> &rest)
{
	std::vector<struct option> longopts;
	/* "+": getopt stops at each operand and we step over it ourselves; letting it
	 * permute instead would make it rewind optind when called after its -1. */
	std::string shortopts = "+";
	for (size_t i = 0; i < specs.size(); i++) {
		const OptSpec &o = *specs[i];
		int has = o.arg == ArgKind::none ? no_argument
			  : o.arg == ArgKind::required ? required_argument
						       : optional_argument;
		longopts.push_back({o.long_name.data(), has, nullptr, 1000 + static_cast<int>(i)});
		if (o.short_name) {
			shortopts += o.short_name;
			if (o.arg == ArgKind::required)
				shortopts += ':';
			else if (o.arg == ArgKind::optional)
				shortopts += "::";
		}
	}
	longopts.push_back({nullptr, 0, nullptr, 0});
	optind = 0;
	opterr = 0;
	for (;;) {
		/*
		 * "--" ends the options, handled before getopt sees it: after a
		 * "--" glibc's getopt moves optind back to the first operand at
		 * every call, and the scan below stepped over the same operands
		 * forever ("cgloopctl detach -- NAME" ran out of memory; see
		 * config/mount_options.cpp). argv[next] is what getopt reads
		 * next, or the cluster it is in (-rn, never "--").
		 */
		int next = optind == 0 ? 1 : optind;
		if (next < argc && std::strcmp(argv[next], "--") == 0) {
			for (int i = next + 1; i < argc; i++)
				rest.emplace_back(argv[i]);
			return;
		}
		int c = getopt_long(argc, argv, shortopts.c_str(), longopts.data(), nullptr);
		if (c == -1) {
			if (optind >= argc || stop_at_operand)
				break;
			rest.emplace_back(argv[optind++]);
			continue;
		}
		const OptSpec *o = nullptr;
		if (c >= 1000)
			o = specs[static_cast<size_t>(c - 1000)];
		else
			for (const auto *s : specs)
				if (s->short_name == c)
					o = s;
		if (!o)
			throw UsageError(config::describe_getopt_error(argv[optind - 1], optopt));
		inv.options[std::string(o->long_name)] = optarg ? optarg : "";
	}
	for (int i = optind; i < argc; i++)
		rest.emplace_back(argv[i]);
}

} /* namespace */

Invocation parse_command_line(int argc, char **argv)
{
	Invocation inv;
	std::vector<const OptSpec *> specs;
	for (const auto &o : global_options)
		specs.push_back(&o);
	std::vector<std::string> rest;
	run_getopt(argc, argv, specs, true, inv, rest);
	inv.help = inv.has("help");
	inv.version = inv.has("version");
	if (rest.empty()) {
		if (inv.help || inv.version)
			return inv;
		throw UsageError("no command given");
	}
	inv.command = find_command(rest[0]);
	if (!inv.command)
		throw UsageError(fmt::format("unknown command \"{}\"", config::printable(rest[0])));

	/* The command's own options, and the global ones again, anywhere after it. */
	for (const auto &o : inv.command->options)
		specs.push_back(&o);
	std::vector<char *> sub;
	sub.push_back(argv[0]);
	for (size_t i = 1; i < rest.size(); i++)
		sub.push_back(rest[i].data());
	sub.push_back(nullptr);
	run_getopt(static_cast<int>(sub.size() - 1), sub.data(), specs, false, inv,
		   inv.operands);
	inv.help = inv.has("help");
	inv.version = inv.has("version");
	if (inv.help || inv.version)
		return inv;

	const auto &c = *inv.command;
	if (inv.operands.size() < c.min_operands)
		throw UsageError(fmt::format("{}: expected {}", c.name, c.operands));
	if (inv.operands.size() > c.max_operands)
		throw UsageError(fmt::format("{}: unexpected argument \"{}\"", c.name,
					     config::printable(inv.operands[c.max_operands])));
	return inv;
}

std::string help_text(const CommandSpec *command)
{
	auto options = [](const std::vector<OptSpec> &list) {
		std::string s;
		for (const auto &o : list) {
			std::string left = o.short_name ? fmt::format("-{}, ", o.short_name) : "    ";
			left += fmt::format("--{}", o.long_name);
			if (o.arg == ArgKind::required)
				left += fmt::format(" {}", o.metavar);
			else if (o.arg == ArgKind::optional)
				left += fmt::format("[={}]", o.metavar);
			if (left.size() > 24)
				s += fmt::format("  {}\n  {:24} {}\n", left, "", o.help);
			else
				s += fmt::format("  {:24} {}\n", left, o.help);
		}
		return s;
	};
	if (command) {
		std::string what(command->help);
		what[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(what[0])));
		std::string s = fmt::format("Usage: cgloopctl {} [OPTIONS] {}\n\n{}.\n", command->name,
					    command->operands, what);
		if (!command->options.empty())
			s += "\nOptions:\n" + options(command->options);
		s += "\nGlobal options:\n" + options(global_options);
		return s;
	}
	std::string s = "Usage: cgloopctl [OPTIONS] COMMAND [ARGS]\n"
			"\n"
			"Look at and control a running cgloopfs mount, as losetup does loop devices.\n"
			"\n"
			"Commands:\n";
	for (const auto &c : commands)
		s += fmt::format("  {:13} {}\n", c.name, c.help);
	s += "\nOptions:\n" + options(global_options);
	s += "\nRun 'cgloopctl COMMAND --help' for the options of a command.\n";
	return s;
}

} /* namespace cgloopfs::cli */
