/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopctl's command line: the global options, and the parser and --help
 * for them and the table of verbs (cli/commands.cpp), written once; they
 * drive the parser, --help and the man-page check. Reentrant; values only.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CLI
#error "cli/ is not a layer below this one (see src/meson.build)"
#endif

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace cgloopfs::cli {

enum class ArgKind { none, required, optional };

struct OptSpec {
	std::string_view long_name; /* "offset" */
	char short_name;	    /* 'o', or 0 */
	ArgKind arg;
	std::string_view metavar; /* "BYTES" */
	std::string_view help;
};

struct Invocation;

/*
 * One verb of cgloopctl, as systemd's struct Verb: its name, operands (for
 * --help, and their count), options and handler.
 */
struct CommandSpec {
	std::string_view name;	   /* "attach" */
	std::string_view operands; /* "IMAGE" */
	std::string_view help;
	size_t min_operands, max_operands; /* max SIZE_MAX: any number */
	std::vector<OptSpec> options;
	/* Do it, talking to the daemon at `socket`: an exit status, or throws. */
	int (*run)(const Invocation &inv, const std::string &socket);
};

extern const std::vector<OptSpec> global_options;
/* The table of verbs (cli/commands.cpp, with their handlers). */
extern const std::vector<CommandSpec> commands;

/* A command line, parsed. Options by long name; flags map to "". */
struct Invocation {
	const CommandSpec *command = nullptr;
	std::map<std::string, std::string> options;
	std::vector<std::string> operands;
	bool help = false;
	bool version = false;

	bool has(const std::string &name) const { return options.count(name) != 0; }
	std::string get(const std::string &name, const std::string &fallback = "") const
	{
		auto it = options.find(name);
		return it == options.end() ? fallback : it->second;
	}
};

class UsageError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/* Parse argv; throws UsageError with one line. */
Invocation parse_command_line(int argc, char **argv);

/* --help: all commands (command == nullptr) or one command's options. Fits 80 columns. */
std::string help_text(const CommandSpec *command);

} /* namespace cgloopfs::cli */
