/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mount_options.hpp"

#include <cstring>
#include <utility>

#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/core.h>

#include "units.hpp"

namespace cgloopfs::config {

namespace {

void set_idle_timeout(MountOptions &o, const OptionValue &v)
{
	o.idle_timeout = static_cast<uint32_t>(v.number);
}
void set_max_workers(MountOptions &o, const OptionValue &v)
{
	o.max_workers = static_cast<uint32_t>(v.number);
}
void set_worker_depth(MountOptions &o, const OptionValue &v)
{
	o.worker_depth = static_cast<uint32_t>(v.number);
}
void set_request_timeout(MountOptions &o, const OptionValue &v)
{
	o.request_timeout = static_cast<uint32_t>(v.number);
}
void set_max_queued(MountOptions &o, const OptionValue &v)
{
	o.max_queued = v.number;
}
void set_dispatch(MountOptions &o, const OptionValue &v)
{
	o.dispatch = static_cast<DispatchMode>(v.number);
}
void set_cache(MountOptions &o, const OptionValue &v)
{
	o.cache = static_cast<CacheMode>(v.number);
}
void set_charge(MountOptions &o, const OptionValue &v)
{
	o.charge = static_cast<ChargeMode>(v.number);
}

void set_lock(MountOptions &o, const OptionValue &v)
{
	o.lock = static_cast<LockMode>(v.number);
}
void set_control(MountOptions &o, const OptionValue &v)
{
	o.control = v.text;
}
void set_metrics(MountOptions &o, const OptionValue &v)
{
	o.metrics = v.text;
}
void set_ro(MountOptions &o, const OptionValue &)
{
	o.read_only = true; /* the session passes "ro" on when it is set at the end */
}
void set_rw(MountOptions &o, const OptionValue &)
{
	o.read_only = false;
}
void set_allow_other(MountOptions &o, const OptionValue &)
{
	o.allow_other = true;
}
void set_default_permissions(MountOptions &o, const OptionValue &)
{
	o.default_permissions = true;
}

constexpr uint64_t MiB = 1ULL << 20;
constexpr uint64_t GiB = 1ULL << 30;

/*
 * The numbers here are the only place of these defaults and ranges (the
 * man page repeats them, checked by check-man-options.py). Unsigned 32-bit
 * fields: max fits in uint32_t.
 */
constinit const OptionSpec mount_option_rows[] = {
	{.name = "idle_timeout",
	 .metavar = "SECONDS",
	 .help = "reap an idle cgroup worker after this",
	 .ours = true,
	 .kind = OptionKind::number,
	 .def = 60,
	 .min = 1,
	 .max = 86400,
	 .runtime = true,
	 .set = set_idle_timeout},
	{.name = "max_workers",
	 .metavar = "N",
	 .help = "cap on per-cgroup workers",
	 .ours = true,
	 .kind = OptionKind::number,
	 .def = 64,
	 .min = 1,
	 .max = 4096,
	 .runtime = true,
	 .set = set_max_workers},
	{.name = "worker_depth",
	 .metavar = "N",
	 .help = "parallel requests per worker",
	 .ours = true,
	 .kind = OptionKind::number,
	 .def = 4,
	 .min = 1,
	 .max = 64,
	 .runtime = true,
	 .set = set_worker_depth},
	{.name = "request_timeout",
	 .metavar = "SECONDS",
	 .help = "answer EIO to a request stuck this long",
	 .ours = true,
	 .kind = OptionKind::number,
	 .def = 30,
	 .min = 1,
	 .max = 3600,
	 .set = set_request_timeout},
	{.name = "max_queued",
	 .metavar = "SIZE",
	 .help = "cap on queued write payloads",
	 .ours = true,
	 .kind = OptionKind::size,
	 .def = 256 * MiB,
	 .min = 16 * MiB,
	 .max = 64 * GiB,
	 .set = set_max_queued},
	{.name = "dispatch",
	 .metavar = "cgroup|single",
	 .help = "worker per caller cgroup, or one queue",
	 .ours = true,
	 .kind = OptionKind::choice,
	 .def = 0,
	 .set = set_dispatch},
	{.name = "charge",
	 .metavar = "cgroup|none",
	 .help = "charge cgroups their I/O (a process in each)",
	 .ours = true,
	 .kind = OptionKind::choice,
	 .def = 0,
	 .runtime = true,
	 .set = set_charge},
	{.name = "cache",
	 .metavar = "direct|kernel",
	 .help = "bypass or use the kernel page cache",
	 .ours = true,
	 .kind = OptionKind::choice,
	 .def = 0,
	 .set = set_cache},
	{.name = "lock",
	 .metavar = "auto|on|off",
	 .help = "QEMU-style locks on the backing files",
	 .ours = true,
	 .kind = OptionKind::choice,
	 .def = 0,
	 .runtime = true,
	 .set = set_lock},
	{.name = "control",
	 .metavar = "PATH",
	 .help = "control socket",
	 .ours = true,
	 .kind = OptionKind::path,
	 .shown_default = "/run/cgloopfs/MOUNT.sock",
	 .set = set_control},
	{.name = "metrics",
	 .metavar = "ADDRESS:PORT",
	 .help = "serve Prometheus metrics (/metrics) there",
	 .ours = true,
	 .kind = OptionKind::address,
	 .shown_default = "off",
	 .set = set_metrics},
	{.name = "ro", .help = "mount read-only: every image is read-only", .set = set_ro},
	{.name = "rw", .help = "mount read-write (the default)", .set = set_rw},
	{.name = "allow_other",
	 .help = "let other users in (adds default_permissions)",
	 .set = set_allow_other},
	{.name = "default_permissions",
	 .help = "let the kernel check file modes",
	 .set = set_default_permissions},
	{"auto_unmount", "", "unmount when the daemon dies", false},
	{"fsname", "NAME", "the source shown in /proc/mounts (SOURCE)", false},
	/* FUSE mounts are always nosuid,nodev: these are accepted and dropped. */
	{.name = "nosuid", .help = "ignore setuid bits (always on for FUSE)", .dropped = true},
	{.name = "suid", .help = "accepted; FUSE mounts stay nosuid", .dropped = true},
	{.name = "nodev", .help = "ignore device files (always on for FUSE)", .dropped = true},
	{.name = "dev", .help = "accepted; FUSE mounts stay nodev", .dropped = true},
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
	/* For mount(8) and fstab only: accepted and dropped. */
	{.name = "defaults", .dropped = true},
	{.name = "nofail", .dropped = true},
	{.name = "_netdev", .dropped = true},
	{.name = "auto", .dropped = true},
	{.name = "noauto", .dropped = true},
	{.name = "user", .dropped = true},
	{.name = "nouser", .dropped = true},
	{.name = "users", .dropped = true},
};

/* "256M", "64G": the largest of K, M, G, T that divides `bytes`. */
std::string short_size(uint64_t bytes)
{
	static constexpr std::pair<uint64_t, char> units[] = {
		{1ULL << 40, 'T'}, {1ULL << 30, 'G'}, {1ULL << 20, 'M'}, {1ULL << 10, 'K'}};
	for (const auto &[mult, letter] : units)
		if (bytes >= mult && bytes % mult == 0)
			return fmt::format("{}{}", bytes / mult, letter);
	return fmt::format("{}", bytes);
}

/* The index of `word` among the words of a choice's metavar, or -1. */
int choice_index(const OptionSpec &spec, std::string_view word)
{
	std::string_view rest = spec.metavar;
	for (int i = 0;; i++) {
		auto bar = rest.find('|');
		if (rest.substr(0, bar) == word)
			return i;
		if (bar == std::string_view::npos)
			return -1;
		rest.remove_prefix(bar + 1);
	}
}

/* "\"cgroup\" or \"single\"": the words of a choice, for messages. */
std::string choice_list(const OptionSpec &spec)
{
	std::string out;
	std::string_view rest = spec.metavar;
	while (true) {
		auto bar = rest.find('|');
		bool last = bar == std::string_view::npos;
		if (!out.empty())
			out += last ? " or " : ", ";
		out += fmt::format("\"{}\"", rest.substr(0, bar));
		if (last)
			return out;
		rest.remove_prefix(bar + 1);
	}
}

/* Read and check `value` for `spec` (which takes one), or throw UsageError. */
OptionValue read_value(const OptionSpec &spec, std::string_view value)
{
	auto refused = [&](const std::string &why) {
		return UsageError(
			fmt::format("option \"{}={}\": {}", spec.name, printable(value), why));
	};
	std::string why;
	switch (spec.kind) {
	case OptionKind::number:
		if (auto v = parse_uint(value, spec.min, spec.max, &why))
			return {*v, value};
		throw refused(why);
	case OptionKind::size:
		if (auto v = parse_size(value, &why)) {
			if (*v < spec.min || *v > spec.max)
				throw refused(fmt::format("must be between {} and {}",
							  short_size(spec.min),
							  short_size(spec.max)));
			return {*v, value};
		}
		throw refused(why);
	case OptionKind::choice:
		if (int i = choice_index(spec, value); i >= 0)
			return {static_cast<uint64_t>(i), value};
		throw refused(fmt::format("must be {}", choice_list(spec)));
	case OptionKind::path:
		if (value.front() != '/')
			throw refused("must be an absolute path");
		return {0, value};
	case OptionKind::address:
		if (!parse_listen_address(value, &why))
			throw refused(why);
		return {0, value};
	case OptionKind::flag:
		break;
	}
	return {0, value};
}

} /* namespace */

constinit const std::span<const OptionSpec> mount_option_table{mount_option_rows};

MountOptions::MountOptions()
{
	for (const auto &spec : mount_option_table)
		if (spec.ours && spec.kind != OptionKind::path && spec.kind != OptionKind::address)
			spec.set(*this, {spec.def, ""});
}

const OptionSpec *find_mount_option(std::string_view name)
{
	for (const auto &o : mount_option_table)
		if (o.name == name)
			return &o;
	return nullptr;
}

std::string_view choice_name(const OptionSpec &spec, size_t i)
{
	std::string_view rest = spec.metavar;
	for (; i > 0 && rest.find('|') != std::string_view::npos; i--)
		rest.remove_prefix(rest.find('|') + 1);
	return i == 0 ? rest.substr(0, rest.find('|')) : std::string_view();
}

std::string default_and_range(const OptionSpec &spec)
{
	switch (spec.kind) {
	case OptionKind::number:
		return fmt::format("{}; {}..{}", spec.def, spec.min, spec.max);
	case OptionKind::size:
		return fmt::format("{}; {}..{}", short_size(spec.def), short_size(spec.min),
				   short_size(spec.max));
	case OptionKind::choice:
		return std::string(choice_name(spec, spec.def));
	case OptionKind::path:
	case OptionKind::address:
		return std::string(spec.shown_default);
	case OptionKind::flag:
		break;
	}
	return "";
}

std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string *ret_why)
{
	auto fail = [&](std::string why) -> std::optional<ListenAddress> {
		*ret_why = std::move(why);
		return std::nullopt;
	};
	ListenAddress a;
	std::string_view port;
	if (!text.empty() && text.front() == '[') {
		auto close = text.find(']');
		if (close == std::string_view::npos || text.substr(close + 1, 1) != ":")
			return fail("must be [IPv6 address]:PORT");
		a.family = AF_INET6;
		a.host = text.substr(1, close - 1);
		port = text.substr(close + 2);
	} else {
		auto colon = text.rfind(':');
		if (colon == std::string_view::npos)
			return fail("must be ADDRESS:PORT (e.g. 127.0.0.1:9477 or [::1]:9477)");
		if (text.substr(0, colon).find(':') != std::string_view::npos)
			return fail("an IPv6 address goes in brackets: [ADDRESS]:PORT");
		a.family = AF_INET;
		a.host = text.substr(0, colon);
		port = text.substr(colon + 1);
	}
	unsigned char buf[sizeof(struct in6_addr)];
	if (a.host.empty() || inet_pton(a.family, a.host.c_str(), buf) != 1)
		return fail(fmt::format("\"{}\" is not an {} address (give one, not a host name)",
					printable(a.host), a.family == AF_INET ? "IPv4" : "IPv6"));
	std::string why;
	auto p = parse_uint(port, 1, 65535, &why);
	if (!p)
		return fail(fmt::format("port: {}", why));
	a.port = static_cast<uint16_t>(*p);
	return a;
}

std::string runtime_option_names()
{
	std::string out;
	for (const auto &o : mount_option_table)
		if (o.runtime)
			out += (out.empty() ? "" : ", ") + std::string(o.name);
	return out;
}

void apply_option(MountOptions &opts, std::string_view item)
{
	auto eq = item.find('=');
	std::string_view key = item.substr(0, eq);
	std::string_view value = eq == std::string_view::npos ? "" : item.substr(eq + 1);
	bool has_value = eq != std::string_view::npos;

	const OptionSpec *spec = find_mount_option(key);
	if (!spec)
		throw UsageError(fmt::format("unknown option \"{}\" (see cgloopfs --help)",
					     printable(item)));
	bool wants_value = !spec->metavar.empty();
	if (wants_value && (!has_value || value.empty()))
		throw UsageError(fmt::format("option \"{}\" needs a value ({}={})", key, key,
					     spec->metavar));
	if (!wants_value && has_value)
		throw UsageError(fmt::format("option \"{}\" takes no value", key));

	if (spec->set)
		spec->set(opts, spec->ours ? read_value(*spec, value) : OptionValue{0, value});
	else if (!spec->dropped)
		opts.fuse_options.emplace_back(item);
}

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

int next_option(int argc, char **argv, const char *shortopts, const struct option *longopts,
		bool stop_at_operand, std::vector<std::string> &operands)
{
	for (;;) {
		/*
		 * "--" ends the options: the rest are operands. Handled here, not
		 * by getopt: after a "--" glibc's getopt moves optind back to the
		 * first operand at every call, so a scan that steps over operands
		 * itself never ended (found by tests/fuzz/fuzz_mount_options).
		 * argv[next] is what getopt reads next, or the cluster it is in
		 * (-fd, never "--").
		 */
		int next = optind == 0 ? 1 : optind;
		if (next < argc && std::strcmp(argv[next], "--") == 0) {
			for (int i = next + 1; i < argc; i++)
				operands.emplace_back(argv[i]);
			optind = argc;
			return -1;
		}
		/*
		 * shortopts starts with "+": getopt stops at each operand and we
		 * step over it ourselves (mount.fuse3 puts -o after the operands);
		 * letting it permute instead would make it rewind optind when
		 * called after its -1.
		 */
		int c = getopt_long(argc, argv, shortopts, longopts, nullptr);
		if (c != -1)
			return c;
		if (optind >= argc)
			return -1;
		if (stop_at_operand) {
			for (int i = optind; i < argc; i++)
				operands.emplace_back(argv[i]);
			optind = argc;
			return -1;
		}
		operands.emplace_back(argv[optind++]);
	}
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
				apply_option(opts, item);
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
	int c;
	while ((c = next_option(argc, argv, "+fdhVo:", long_options, false, positional)) != -1) {
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
		std::string help(o.help);
		if (std::string d = default_and_range(o); !d.empty())
			help += fmt::format(" ({})", d);
		if (left.size() > 22)
			s += fmt::format("  {}\n  {:22} {}\n", left, "", help);
		else
			s += fmt::format("  {:22} {}\n", left, help);
	}
	s += "\nAlso accepted for mount(8) and fstab: the other generic mount flags (sync,\n"
	     "async, dirsync, lazytime, nofail, _netdev, auto, noauto, user, defaults, ...).\n";
	return s;
}

} /* namespace cgloopfs::config */
