/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the command lines and -o option lists
 * (config::parse_command_line, config::apply_option_string, and cgloopctl's
 * cli::parse_command_line, which shares the getopt handling). The input is
 * NUL-separated arguments after a first byte: low bit set, one -o list
 * instead; else high bit set, cgloopctl's arguments; else cgloopfs's.
 * Refusals are UsageError with a one-line message; what is accepted stays
 * within the documented bounds, only libfuse's own options are passed
 * through to it, and cgloopctl's options and operands fit its command.
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "cli/options.hpp"
#include "config/mount_options.hpp"

using namespace cgloopfs::config;

namespace {

[[noreturn]] void broken(const char *what, const std::string &detail)
{
	std::fprintf(stderr, "fuzz_mount_options: invariant broken: %s: %.300s\n", what,
		     detail.c_str());
	std::abort();
}

void check(const MountOptions &o)
{
	if (o.idle_timeout < 1 || o.idle_timeout > 86400)
		broken("idle_timeout out of range", std::to_string(o.idle_timeout));
	if (o.max_workers < 1 || o.max_workers > 4096)
		broken("max_workers out of range", std::to_string(o.max_workers));
	if (o.worker_depth < 1 || o.worker_depth > 64)
		broken("worker_depth out of range", std::to_string(o.worker_depth));
	if (!o.control.empty() && o.control.front() != '/')
		broken("relative control socket", o.control);
	for (const auto &item : o.fuse_options) {
		std::string_view key = std::string_view(item).substr(0, item.find('='));
		const OptionSpec *spec = nullptr;
		for (const auto &s : mount_option_table)
			if (s.name == key)
				spec = &s;
		if (!spec || spec->ours)
			broken("passed to libfuse", item);
		if (item.empty())
			broken("empty option passed to libfuse", item);
	}
}

template <typename Error> void check_message(const Error &e)
{
	std::string_view why = e.what();
	if (why.empty() || why.find('\n') != std::string_view::npos)
		broken("error message is not one line", e.what());
}

/* cgloopctl: every option is one of its command's or a global one, operands in range. */
void check(const cgloopfs::cli::Invocation &inv)
{
	using namespace cgloopfs::cli;
	if (!inv.command) {
		if (!inv.help && !inv.version)
			broken("cgloopctl: no command accepted", "");
		return;
	}
	for (const auto &[name, value] : inv.options) {
		bool known = false;
		for (const auto &o : global_options)
			known |= o.long_name == name;
		for (const auto &o : inv.command->options)
			known |= o.long_name == name;
		if (!known)
			broken("cgloopctl: unknown option accepted", name);
	}
	if (!inv.help && !inv.version &&
	    (inv.operands.size() < inv.command->min_operands ||
	     inv.operands.size() > inv.command->max_operands))
		broken("cgloopctl: operand count", std::string(inv.command->name));
}

} /* namespace */

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	std::string_view in(reinterpret_cast<const char *>(data) + 1, size - 1);

	if (data[0] & 1) {
		MountOptions opts;
		try {
			apply_option_string(opts, in);
		} catch (const UsageError &e) {
			check_message(e);
			return 0;
		}
		check(opts);
		return 0;
	}

	bool ctl = data[0] & 0x80;
	std::vector<std::string> args{ctl ? "cgloopctl" : "cgloopfs"};
	size_t start = 0;
	for (size_t i = 0; i <= in.size(); i++) {
		if (i == in.size() || in[i] == '\0') {
			args.emplace_back(in.substr(start, i - start));
			start = i + 1;
		}
	}
	std::vector<char *> argv;
	for (auto &a : args)
		argv.push_back(a.data());
	argv.push_back(nullptr);
	if (ctl) {
		cgloopfs::cli::Invocation inv;
		try {
			inv = cgloopfs::cli::parse_command_line(static_cast<int>(args.size()),
								argv.data());
		} catch (const cgloopfs::cli::UsageError &e) {
			check_message(e);
			return 0;
		}
		check(inv);
		return 0;
	}
	MountOptions opts;
	try {
		opts = parse_command_line(static_cast<int>(args.size()), argv.data());
	} catch (const UsageError &e) {
		check_message(e);
		return 0;
	}
	check(opts);
	if (!opts.show_help && !opts.show_version) {
		if (opts.source.empty() || opts.mountpoint.empty())
			broken("empty SOURCE or MOUNTPOINT accepted", opts.source);
		if (opts.allow_other && !opts.default_permissions)
			broken("allow_other without default_permissions", opts.mountpoint);
	}
	return 0;
}
