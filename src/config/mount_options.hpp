/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's command line and -o options. One table (mount_option_table)
 * drives parsing, the defaults, --help, `cgloopctl set` and the man-page
 * check. Pure; reentrant.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONFIG
#error "config/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "image_spec.hpp"

struct option; /* <getopt.h> */

namespace cgloopfs::config {

/* In the order of their -o choices (OptionSpec::metavar "cgroup|single"). */
enum class DispatchMode { cgroup, single };
/* Who a cgroup's I/O is charged to: the cgroup (a host process in it), or the daemon. */
enum class ChargeMode { cgroup, none };
enum class CacheMode { direct, kernel };

/*
 * The daemon's settings. Those of -o start at the defaults of their rows in
 * mount_option_table (the constructor sets them): written nowhere else.
 */
struct MountOptions {
	MountOptions();

	std::string source;
	std::string mountpoint;
	bool foreground = false;
	bool debug = false;
	bool show_help = false;
	bool show_version = false;

	uint32_t idle_timeout; /* seconds */
	uint32_t max_workers;
	uint32_t worker_depth;
	uint32_t request_timeout; /* seconds; a request still unanswered then gets EIO */
	uint64_t max_queued;	  /* bytes of write payloads waiting in queues */
	DispatchMode dispatch;
	CacheMode cache;
	std::string control; /* "" : the default path for the mount point */
	/* "" (off), or where to serve Prometheus metrics: "127.0.0.1:9477", "[::1]:9477" */
	std::string metrics;
	LockMode lock;	   /* images that do not say */
	ChargeMode charge; /* for workers made from now on */

	bool read_only = false;	  /* -o ro (the last of ro/rw wins): every image read-only */
	bool allow_other = false; /* implies default_permissions */
	bool default_permissions = false;
	/* Passed to libfuse's mount as "-o" values, unescaped (the session escapes commas). */
	std::vector<std::string> fuse_options;
};

enum class OptionKind {
	flag,	 /* no value */
	number,	 /* a decimal number in min..max */
	size,	 /* bytes with a suffix ("256M") in min..max */
	choice,	 /* one of the words of metavar ("cgroup|single"); def: its index */
	path,	 /* an absolute path */
	address, /* a listening address: IPv4:PORT or [IPv6]:PORT, literal, port 1..65535 */
};

/* A value of an -o option, read and checked: the number (or choice) and the text. */
struct OptionValue {
	uint64_t number;
	std::string_view text;
};

/*
 * One -o option of ours, or a libfuse or mount(8) one we take, pass through
 * or drop: its name, value, default, range and where it goes, written once.
 * --help, parsing, the defaults of MountOptions and `cgloopctl set` (on the
 * daemon's side) all read them from here.
 */
struct OptionSpec {
	std::string_view name;	  /* "idle_timeout" */
	std::string_view metavar; /* "SECONDS", "" for flags, the words of a choice */
	std::string_view help;	  /* one line; --help adds the default and range */
	bool ours;		  /* false: a libfuse/mount option (passed through unless `set`) */
	OptionKind kind = OptionKind::flag;
	uint64_t def = 0, min = 0, max = 0;  /* number, size; choice: def */
	std::string_view shown_default = ""; /* path, address: the default --help shows */
	bool runtime = false;		     /* `cgloopctl set` may change it while mounted */
	bool dropped = false;		     /* accepted for mount(8) and fstab, then ignored */
	/* Store the value (ours, and the flags we act on: ro, rw, ...). */
	void (*set)(MountOptions &, const OptionValue &) = nullptr;
};

extern const std::span<const OptionSpec> mount_option_table;

/* The row of option `name`, or nullptr. */
const OptionSpec *find_mount_option(std::string_view name);

/* The word of a choice option for index `i` ("cgroup" for dispatch 0). */
std::string_view choice_name(const OptionSpec &spec, size_t i);

/* What --help shows after an option's help: "60; 1..86400", "cgroup"; "" for none. */
std::string default_and_range(const OptionSpec &spec);

/* The names of the options `cgloopctl set` may change, comma-separated. */
std::string runtime_option_names();

/*
 * A listening address "IPv4:PORT" or "[IPv6]:PORT" (a literal address, no
 * host name; port 1..65535), or nullopt with *ret_why set.
 */
struct ListenAddress {
	int family;	  /* AF_INET, AF_INET6 */
	std::string host; /* without brackets */
	uint16_t port;
};
std::optional<ListenAddress> parse_listen_address(std::string_view text, std::string *ret_why);

/* A usage error: bad or unknown option. what() is one line. */
class UsageError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/* Apply one "-o" argument (comma-separated list, "\," escapes a comma). */
void apply_option_string(MountOptions &opts, std::string_view list);

/* Apply one option, "key" or "key=value" (no list, no escapes). */
void apply_option(MountOptions &opts, std::string_view item);

/* Parse argv (cgloopfs [-f] [-d] [-h] [-V] [-o OPTS]... SOURCE MOUNTPOINT). */
MountOptions parse_command_line(int argc, char **argv);

/* One line for a getopt error: the argument getopt stopped at and its optopt. */
std::string describe_getopt_error(std::string_view arg, int optopt_value);

/*
 * getopt_long, for a scan that collects the operands itself: the next
 * option's code, or -1 when the scan is over. Operands (anywhere, or from
 * the first one on when `stop_at_operand`) and everything after a "--" are
 * appended to `operands`. Starts afresh when optind is 0; opterr is the
 * caller's.
 */
int next_option(int argc, char **argv, const char *shortopts, const struct option *longopts,
		bool stop_at_operand, std::vector<std::string> &operands);

/* The --help text (fits 80 columns). */
std::string help_text(std::string_view program);

} /* namespace cgloopfs::config */
