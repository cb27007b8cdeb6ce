/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the daemon's command line and -o option lists
 * (config::parse_command_line, config::apply_option_string). The input is
 * NUL-separated arguments; a first byte with the low bit set makes it one
 * -o list instead. Refusals are UsageError with a one-line message; what is
 * accepted stays within the documented bounds, and only libfuse's own
 * options are passed through to it.
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

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

void check_message(const UsageError &e)
{
	std::string_view why = e.what();
	if (why.empty() || why.find('\n') != std::string_view::npos)
		broken("error message is not one line", e.what());
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

	std::vector<std::string> args{"cgloopfs"};
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
