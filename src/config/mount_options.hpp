/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's command line and -o options. One table (mount_option_table)
 * drives parsing, --help and the man-page check. Pure; reentrant.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONFIG
#error "config/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "image_spec.hpp"

namespace cgloopfs::config {

enum class DispatchMode { cgroup, single };
enum class CacheMode { direct, kernel };

struct MountOptions {
	std::string source;
	std::string mountpoint;
	bool foreground = false;
	bool debug = false;
	bool show_help = false;
	bool show_version = false;

	uint32_t idle_timeout = 60; /* seconds */
	uint32_t max_workers = 64;
	uint32_t worker_depth = 4;
	uint32_t request_timeout = 30; /* seconds; a request still unanswered then gets EIO */
	uint64_t max_queued = 256ULL << 20; /* bytes of write payloads waiting in queues */
	DispatchMode dispatch = DispatchMode::cgroup;
	CacheMode cache = CacheMode::direct;
	std::string control; /* "" : the default path for the mount point */
	LockMode lock = LockMode::automatic; /* images that do not say */

	bool read_only = false;	    /* -o ro (the last of ro/rw wins): every image read-only */
	bool allow_other = false;   /* implies default_permissions */
	bool default_permissions = false;
	/* Passed to libfuse's mount as "-o" values, unescaped (the session escapes commas). */
	std::vector<std::string> fuse_options;
};

/* One -o option of ours or a libfuse one we pass through. */
struct OptionSpec {
	std::string_view name;	  /* "idle_timeout" */
	std::string_view metavar; /* "SECONDS", "" for flags */
	std::string_view help;	  /* one line, for --help and the man-page check */
	bool ours;		  /* false: a libfuse/mount option passed through */
};

extern const std::vector<OptionSpec> mount_option_table;

/* A usage error: bad or unknown option. what() is one line. */
class UsageError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/* Apply one "-o" argument (comma-separated list, "\," escapes a comma). */
void apply_option_string(MountOptions &opts, std::string_view list);

/* Parse argv (cgloopfs [-f] [-d] [-h] [-V] [-o OPTS]... SOURCE MOUNTPOINT). */
MountOptions parse_command_line(int argc, char **argv);

/* One line for a getopt error: the argument getopt stopped at and its optopt. */
std::string describe_getopt_error(std::string_view arg, int optopt_value);

/* The --help text (fits 80 columns). */
std::string help_text(std::string_view program);

} /* namespace cgloopfs::config */
