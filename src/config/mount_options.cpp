/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mount_options.hpp"

#include <cstring>

#include <getopt.h>

#include <fmt/core.h>

#include "units.hpp"

namespace cgloopfs::config {

const std::vector<OptionSpec> mount_option_table = {
	{"idle_timeout", "SECONDS", "reap an idle cgroup worker after this (60; 1..86400)", true},
	{"max_workers", "N", "cap on per-cgroup workers (64; 1..4096)", true},
	{"worker_depth", "N", "parallel requests per worker (4; 1..64)", true},
	{"request_timeout", "SECONDS", "answer EIO to a request stuck this long (30; 1..3600)", true},
	{"max_queued", "SIZE", "cap on queued write payloads (256M; 16M..64G)", true},
	{"dispatch", "cgroup|single", "worker per caller cgroup, or one queue (cgroup)", true},
	{"cache", "direct|kernel", "bypass or use the kernel page cache (direct)", true},
	{"control", "PATH", "control socket (/run/cgloopfs/MOUNT.sock)", true},
	{"lock", "auto|on|off", "QEMU-style locks on the backing files (auto)", true},
	{"ro", "", "mount read-only: every image is read-only", false},
	{"rw", "", "mount read-write (the default)", false},
	{"allow_other", "", "let other users in (adds default_permissions)", false},
	{"default_permissions", "", "let the kernel check file modes", false},
	{"auto_unmount", "", "unmount when the daemon dies", false},
	{"fsname", "NAME", "the source shown in /proc/mounts (SOURCE)", false},
	{"nosuid", "", "ignore setuid bits (always on for FUSE)", false},
	{"suid", "", "accepted; FUSE mounts stay nosuid", false},
	{"nodev", "", "ignore device files (always on for FUSE)", false},
	{"dev", "", "accepted; FUSE mounts stay nodev", false},
	{"noexec", "", "forbid execution", false},
	{"exec", "", "allow execution", false},
	{"noatime", "", "do not update access times", false},
	{"atime", "", "update access times", false},
	{"relatime", "", "update access times lazily", false},
	{"norelatime", "", "", false},
	{"strictatime", "", "", false},
	{"nostrictatime", "", "", false},
	{"nodiratime", "", "", false},
	{"diratime", "", "", false},
	{"lazytime", "", "", false},
	{"nolazytime", "", "", false},
	{"sync", "", "", false},
	{"async", "", "", false},
	{"dirsync", "", "", false},
	{"defaults", "", "", false},
	{"nofail", "", "", false},
	{"_netdev", "", "", false},
	{"auto", "", "", false},
	{"noauto", "", "", false},
	{"user", "", "", false},
	{"nouser", "", "", false},
	{"users", "", "", false},
};

namespace {

const OptionSpec *find_option(std::string_view name)
{
	for (const auto &o : mount_option_table)
		if (o.name == name)
			return &o;
	return nullptr;
}

uint32_t parse_bounded(std::string_view key, std::string_view value, uint64_t min, uint64_t max)
{
	std::string why;
	auto v = parse_uint(value, min, max, &why);
	if (!v)
		throw UsageError(fmt::format("option \"{}={}\": {}", key, printable(value), why));
	return static_cast<uint32_t>(*v);
}

void apply_one(MountOptions &opts, std::string_view item)
{
	auto eq = item.find('=');
	std::string_view key = item.substr(0, eq);
	std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
	bool has_value = eq != std::string_view::npos;

	const OptionSpec *spec = find_option(key);
	if (!spec)
		throw UsageError(
			fmt::format("unknown option \"{}\" (see cgloopfs --help)", printable(item)));
	bool wants_value = !spec->metavar.empty();
	if (wants_value && (!has_value || value.empty()))
		throw UsageError(fmt::format("option \"{}\" needs a value ({}={})", key, key,
					     spec->metavar));
	if (!wants_value && has_value)
		throw UsageError(fmt::format("option \"{}\" takes no value", key));

	if (key == "idle_timeout") {
		opts.idle_timeout = parse_bounded(key, value, 1, 86400);
	} else if (key == "max_workers") {
		opts.max_workers = parse_bounded(key, value, 1, 4096);
	} else if (key == "worker_depth") {
		opts.worker_depth = parse_bounded(key, value, 1, 64);
	} else if (key == "request_timeout") {
		opts.request_timeout = parse_bounded(key, value, 1, 3600);
	} else if (key == "max_queued") {
		std::string why;
		auto v = parse_size(value, &why);
		if (!v)
			throw UsageError(fmt::format("option \"{}={}\": {}", key, value, why));
		if (*v < (16ULL << 20) || *v > (64ULL << 30))
			throw UsageError(fmt::format(
				"option \"{}={}\": must be between 16M and 64G", key, value));
		opts.max_queued = *v;
	} else if (key == "dispatch") {
		if (value == "cgroup")
			opts.dispatch = DispatchMode::cgroup;
		else if (value == "single")
			opts.dispatch = DispatchMode::single;
		else
			throw UsageError(fmt::format(
				"option \"dispatch={}\": must be \"cgroup\" or \"single\"",
				printable(value)));
	} else if (key == "cache") {
		if (value == "direct")
			opts.cache = CacheMode::direct;
		else if (value == "kernel")
			opts.cache = CacheMode::kernel;
		else
			throw UsageError(fmt::format(
				"option \"cache={}\": must be \"direct\" or \"kernel\"",
				printable(value)));
	} else if (key == "control") {
		if (value.front() != '/')
			throw UsageError(fmt::format(
				"option \"control={}\": must be an absolute path", printable(value)));
		opts.control = value;
	} else if (key == "lock") {
		auto mode = parse_lock_mode(value);
		if (!mode)
			throw UsageError(fmt::format(
				"option \"lock={}\": must be \"auto\", \"on\" or \"off\"",
				printable(value)));
		opts.lock = *mode;
	} else if (key == "ro") {
		opts.read_only = true; /* the session passes "ro" on when it is set at the end */
	} else if (key == "rw") {
		opts.read_only = false;
	} else if (key == "allow_other") {
		opts.allow_other = true;
	} else if (key == "default_permissions") {
		opts.default_permissions = true;
	} else if (key == "suid" || key == "dev" || key == "nosuid" || key == "nodev" ||
		   key == "defaults" || key == "nofail" || key == "_netdev" || key == "auto" ||
		   key == "noauto" || key == "user" || key == "nouser" || key == "users") {
		/* Accepted for mount(8) and fstab; FUSE mounts are always nosuid,nodev. */
	} else {
		opts.fuse_options.emplace_back(item);
	}
}

} /* namespace */

std::string describe_getopt_error(std::string_view arg, int optopt_value)
{
	if (arg.substr(0, 2) == "--") {
		std::string_view name = arg.substr(0, arg.find('='));
		if (arg.find('=') != std::string_view::npos)
			return fmt::format("option \"{}\" takes no value", printable(name));
		return fmt::format("unknown option \"{}\" (or it needs a value)", printable(name));
	}
	if (optopt_value == 'o')
		return "option \"-o\" needs a value";
	if (optopt_value > 0 && optopt_value < 128)
		return fmt::format("unknown option \"-{}\"",
				   printable(std::string(1, static_cast<char>(optopt_value))));
	return fmt::format("unknown option \"{}\"", printable(arg));
}

void apply_option_string(MountOptions &opts, std::string_view list)
{
	std::string item;
	for (size_t i = 0; i <= list.size(); i++) {
		if (i < list.size() && list[i] == '\\' && i + 1 < list.size()) {
			item += list[++i];
			continue;
		}
		if (i == list.size() || list[i] == ',') {
			if (!item.empty())
				apply_one(opts, item);
			item.clear();
			continue;
		}
		item += list[i];
	}
}

MountOptions parse_command_line(int argc, char **argv)
{
	MountOptions opts;
	static const struct option long_options[] = {
		{"foreground", no_argument, nullptr, 'f'},
		{"debug", no_argument, nullptr, 'd'},
		{"help", no_argument, nullptr, 'h'},
		{"version", no_argument, nullptr, 'V'},
		{nullptr, 0, nullptr, 0},
	};
	std::vector<std::string> positional;
	optind = 0; /* 0, not 1: a full reset of getopt's state */
	opterr = 0;
	for (;;) {
		/*
		 * "--" ends the options: the rest are operands. Handled here, not
		 * by getopt: after a "--" glibc's getopt moves optind back to the
		 * first operand at every call, so the scan below never ended
		 * (found by tests/fuzz/fuzz_mount_options). argv[next] is what
		 * getopt reads next, or the cluster it is in (-fd, never "--").
		 */
		int next = optind == 0 ? 1 : optind;
		if (next < argc && std::strcmp(argv[next], "--") == 0) {
			for (int i = next + 1; i < argc; i++)
				positional.emplace_back(argv[i]);
			break;
		}
		int c = getopt_long(argc, argv, "+fdhVo:", long_options, nullptr);
		if (c == -1) {
			if (optind >= argc)
				break;
			/* mount.fuse3 puts -o after the operands: keep scanning. */
			positional.emplace_back(argv[optind++]);
			continue;
		}
		switch (c) {
		case 'f':
			opts.foreground = true;
			break;
		case 'd':
			opts.debug = true;
			opts.foreground = true;
			break;
		case 'h':
			opts.show_help = true;
			break;
		case 'V':
			opts.show_version = true;
			break;
		case 'o':
			apply_option_string(opts, optarg);
			break;
		case '?':
		default:
			throw UsageError(describe_getopt_error(argv[optind - 1], optopt));
		}
	}
	if (opts.show_help || opts.show_version)
		return opts;
	if (positional.size() != 2)
		throw UsageError(positional.size() < 2
					 ? "expected SOURCE and MOUNTPOINT (see cgloopfs --help)"
					 : fmt::format("unexpected argument \"{}\" (expected only "
						       "SOURCE and MOUNTPOINT)",
						       printable(positional[2])));
	opts.source = positional[0];
	opts.mountpoint = positional[1];
	if (opts.source.empty() || opts.mountpoint.empty())
		throw UsageError("SOURCE and MOUNTPOINT must not be empty");
	if (opts.allow_other)
		opts.default_permissions = true;
	return opts;
}

std::string help_text(std::string_view program)
{
	std::string s = fmt::format(
		"Usage: {} [OPTIONS] SOURCE MOUNTPOINT\n"
		"\n"
		"Serve loop-style images (a backing file or a window of it) as files under\n"
		"MOUNTPOINT, each request served by a worker of the caller's cgroup.\n"
		"SOURCE is an image file, a directory of images, or a manifest (*.toml).\n"
		"\n"
		"Options:\n"
		"  -f, --foreground       stay in the foreground\n"
		"  -d, --debug            log every request (implies -f)\n"
		"  -h, --help             show this help and exit\n"
		"  -V, --version          show the version and exit\n"
		"  -o OPT[,OPT...]        mount options, below\n"
		"\n"
		"Mount options (-o):\n",
		program);
	for (const auto &o : mount_option_table) {
		if (o.help.empty())
			continue;
		std::string left = o.metavar.empty() ? std::string(o.name)
						     : fmt::format("{}={}", o.name, o.metavar);
		if (left.size() > 22)
			s += fmt::format("  {}\n  {:22} {}\n", left, "", o.help);
		else
			s += fmt::format("  {:22} {}\n", left, o.help);
	}
	s += "\nAlso accepted for mount(8) and fstab: the other generic mount flags (sync,\n"
	     "async, dirsync, lazytime, nofail, _netdev, auto, noauto, user, defaults, ...).\n";
	return s;
}

} /* namespace cgloopfs::config */
