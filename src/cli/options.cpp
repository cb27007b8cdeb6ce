/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "options.hpp"

#include <cctype>
#include <cstdint>

#include <getopt.h>

#include <fmt/core.h>

#include "config/image_spec.hpp"
#include "config/mount_options.hpp"

namespace cgloopfs::cli {

const std::vector<OptSpec> global_options = {
	{"mount", 'm', ArgKind::required, "DIR",
	 "the cgloopfs mount point (default: the only one)"},
	{"socket", 's', ArgKind::required, "PATH", "talk to this control socket instead"},
	{"json", 'J', ArgKind::none, "", "print JSON instead of a table"},
	{"help", 'h', ArgKind::none, "", "show this help and exit"},
	{"version", 'V', ArgKind::none, "", "show the version and exit"},
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
void run_getopt(int argc, char **argv, const std::vector<const OptSpec *> &specs,
		bool stop_at_operand, Invocation &inv, std::vector<std::string> &rest)
{
	std::vector<struct option> longopts;
	/* "+": see config::next_option; ":": a missing value is told apart from an unknown option. */
	std::string shortopts = "+:";
	for (size_t i = 0; i < specs.size(); i++) {
		const OptSpec &o = *specs[i];
		int has = o.arg == ArgKind::none       ? no_argument
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
	int c;
	while ((c = config::next_option(argc, argv, shortopts.c_str(), longopts.data(),
					stop_at_operand, rest)) != -1) {
		if (c == ':') {
			/* optopt: the val of a long option (1000 + i), or the short option's letter */
			std::string name =
				optopt >= 1000
					? fmt::format("--{}",
						      specs[static_cast<size_t>(optopt - 1000)]
							      ->long_name)
					: fmt::format("-{}", static_cast<char>(optopt));
			throw UsageError(fmt::format("option \"{}\" needs a value", name));
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
	run_getopt(static_cast<int>(sub.size() - 1), sub.data(), specs, false, inv, inv.operands);
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
			std::string left =
				o.short_name ? fmt::format("-{}, ", o.short_name) : "    ";
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
		std::string s = fmt::format("Usage: cgloopctl {} [OPTIONS] {}\n\n{}.\n",
					    command->name, command->operands, what);
		if (!command->options.empty())
			s += "\nOptions:\n" + options(command->options);
		s += "\nGlobal options:\n" + options(global_options);
		return s;
	}
	std::string s =
		"Usage: cgloopctl [OPTIONS] COMMAND [ARGS]\n"
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
