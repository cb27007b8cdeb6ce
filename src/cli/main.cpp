/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopctl: look at and control a running cgloopfs, as losetup does loop
 * devices.
 *
 *   cgloopctl [--json] [--mount DIR | --socket PATH] COMMAND [OPTIONS] [ARGS]
 *
 * It finds the daemon from a mount point alone (the mount's root names its
 * control socket in the user.cgloopfs.control xattr); with no mount point
 * and exactly one cgloopfs mounted, it uses that one. The commands, their
 * options and handlers are in cli/commands.cpp (the table of verbs), the
 * global options and the parser in cli/options.cpp, written once.
 * Exit status: 0 success, 1 refused or failed, 2 usage error.
 */
#include <config.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

#include <fmt/core.h>

#include "cli/options.hpp"
#include "cli/top.hpp"
#include "common/escape.hpp"
#include "control/client.hpp"

using namespace cgloopfs;

namespace {

/* The MOUNTPOINT operand of the commands that take one. */
bool takes_mountpoint(const cli::CommandSpec &c)
{
	return c.operands == "[MOUNTPOINT]";
}

std::string resolve_socket(const cli::Invocation &inv)
{
	if (inv.has("socket")) {
		if (inv.has("mount"))
			throw cli::UsageError("give --mount or --socket, not both");
		return inv.get("socket");
	}
	std::string mount = inv.get("mount");
	if (takes_mountpoint(*inv.command) && !inv.operands.empty()) {
		if (!mount.empty() && mount != inv.operands[0])
			throw cli::UsageError("two different mount points given");
		mount = inv.operands[0];
	}
	if (mount.empty()) {
		auto mounts = control::cgloopfs_mounts();
		if (mounts.empty())
			throw control::ClientError("no cgloopfs is mounted");
		if (mounts.size() > 1) {
			std::string list;
			for (const auto &m : mounts)
				list += " " + m;
			throw control::ClientError(fmt::format(
				"several cgloopfs are mounted; name one with --mount:{}", list));
		}
		mount = mounts[0];
	}
	return control::find_socket(mount);
}

int run(const cli::Invocation &inv)
{
	/* Option values are usage errors before any daemon is looked for. */
	if (inv.command->name == "top")
		(void)cli::top::parse_options(inv);
	return inv.command->run(inv, resolve_socket(inv));
}

} /* namespace */

int main(int argc, char **argv)
{
	cli::Invocation inv;
	try {
		inv = cli::parse_command_line(argc, argv);
		if (inv.help) {
			std::fputs(cli::help_text(inv.command).c_str(), stdout);
			return EXIT_SUCCESS;
		}
		if (inv.version) {
			std::printf("cgloopctl %s\n", CGLOOPFS_VERSION);
			return EXIT_SUCCESS;
		}
		return run(inv);
	} catch (const cli::UsageError &e) {
		std::fprintf(stderr,
			     "cgloopctl: %s\nTry 'cgloopctl --help' for more information.\n",
			     e.what());
		return 2;
	} catch (const control::ClientError &e) {
		/*
		 * The daemon's messages may quote paths: their control bytes and
		 * invalid UTF-8 escaped, as in the daemon's log (common/escape.hpp).
		 */
		std::fprintf(stderr, "cgloopctl: %s\n", escape_controls(e.what()).c_str());
		if (dynamic_cast<const control::ClientStuck *>(&e)) {
			std::fflush(nullptr);
			_exit(EXIT_FAILURE); /* a thread still waits in the mount */
		}
		return EXIT_FAILURE;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "cgloopctl: %s\n", escape_controls(e.what()).c_str());
		return EXIT_FAILURE;
	}
}
