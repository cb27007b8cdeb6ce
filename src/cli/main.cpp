/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopctl: look at and control a running cgloopfs, losetup-style.
 *
 *   cgloopctl [--json] [--mount MOUNTPOINT | --socket PATH] COMMAND [MOUNTPOINT]
 *
 * It finds the daemon from a mount point alone (the mount's root names its
 * control socket in the user.cgloopfs.control xattr); with no mount point
 * and exactly one cgloopfs mounted, it uses that one.
 * Exit status: 0 success, 1 refused or failed, 2 usage error.
 */
#include <config.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <getopt.h>

#include <fmt/core.h>

#include "cli/table.hpp"
#include "config/mount_options.hpp"
#include "control/client.hpp"

using namespace cgloopfs;
using nlohmann::json;

namespace {

struct UsageError : std::runtime_error {
	using std::runtime_error::runtime_error;
};

struct Command {
	const char *name;
	const char *help;
};

const Command commands[] = {
	{"workers", "live workers: cgroup, state, queued, in flight, served, idle"},
	{"stats", "per-cgroup counts, bytes, errors and latency (also reaped)"},
	{"status", "the mount: source, images, dispatch settings"},
};

struct Options {
	bool json = false;
	std::string mount;
	std::string socket;
	std::string command;
};

void print_help()
{
	std::string s = "Usage: cgloopctl [OPTIONS] COMMAND [MOUNTPOINT]\n"
			"\n"
			"Look at and control a running cgloopfs mount.\n"
			"\n"
			"Commands:\n";
	for (const auto &c : commands)
		s += fmt::format("  {:10} {}\n", c.name, c.help);
	s += "\nOptions:\n"
	     "  -m, --mount DIR      the cgloopfs mount point (default: the only one)\n"
	     "  -s, --socket PATH    talk to this control socket instead\n"
	     "  -J, --json           print JSON instead of a table\n"
	     "  -h, --help           show this help and exit\n"
	     "  -V, --version        show the version and exit\n";
	std::fputs(s.c_str(), stdout);
}

Options parse(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"mount", required_argument, nullptr, 'm'}, {"socket", required_argument, nullptr, 's'},
		{"json", no_argument, nullptr, 'J'},	    {"help", no_argument, nullptr, 'h'},
		{"version", no_argument, nullptr, 'V'},	    {nullptr, 0, nullptr, 0},
	};
	Options o;
	std::vector<std::string> pos;
	optind = 0; /* a full reset of getopt's state */
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "+m:s:JhV", longopts, nullptr);
		if (c == -1) {
			if (optind >= argc)
				break;
			pos.emplace_back(argv[optind++]);
			continue;
		}
		switch (c) {
		case 'm':
			o.mount = optarg;
			break;
		case 's':
			o.socket = optarg;
			break;
		case 'J':
			o.json = true;
			break;
		case 'h':
			print_help();
			std::exit(EXIT_SUCCESS);
		case 'V':
			std::printf("cgloopctl %s\n", CGLOOPFS_VERSION);
			std::exit(EXIT_SUCCESS);
		default:
			throw UsageError(config::describe_getopt_error(argv[optind - 1], optopt));
		}
	}
	if (pos.empty())
		throw UsageError("no command given");
	o.command = pos[0];
	bool known = false;
	for (const auto &c : commands)
		known |= o.command == c.name;
	if (!known)
		throw UsageError(fmt::format("unknown command \"{}\"", o.command));
	if (pos.size() > 2)
		throw UsageError(fmt::format("unexpected argument \"{}\"", pos[2]));
	if (pos.size() == 2) {
		if (!o.mount.empty() && o.mount != pos[1])
			throw UsageError("two different mount points given");
		o.mount = pos[1];
	}
	if (!o.mount.empty() && !o.socket.empty())
		throw UsageError("give --mount or --socket, not both");
	return o;
}

std::string resolve_socket(const Options &o)
{
	if (!o.socket.empty())
		return o.socket;
	std::string mount = o.mount;
	if (mount.empty()) {
		auto mounts = control::cgloopfs_mounts();
		if (mounts.empty())
			throw control::ClientError("no cgloopfs is mounted");
		if (mounts.size() > 1) {
			std::string list;
			for (const auto &m : mounts)
				list += " " + m;
			throw control::ClientError(
				fmt::format("several cgloopfs are mounted; name one:{}", list));
		}
		mount = mounts[0];
	}
	return control::find_socket(mount);
}

void print_workers(const json &r)
{
	cli::Table t({{"CGROUP", false},
		      {"STATE", false},
		      {"QUEUED", true},
		      {"INFLIGHT", true},
		      {"THREADS", true},
		      {"SERVED", true},
		      {"IDLE", true}});
	for (const auto &w : r)
		t.add_row({w.value("cgroup", ""), w.value("state", ""),
			   std::to_string(w.value("queued", 0)), std::to_string(w.value("in_flight", 0)),
			   std::to_string(w.value("threads", 0)), std::to_string(w.value("served", 0)),
			   cli::human_age(w.value("idle_seconds", 0.0))});
	std::fputs(t.render().c_str(), stdout);
}

void print_stats(const json &r)
{
	cli::Table t({{"CGROUP", false},
		      {"WORKER", false},
		      {"READS", true},
		      {"WRITES", true},
		      {"READ", true},
		      {"WRITTEN", true},
		      {"ERRORS", true},
		      {"P50", true},
		      {"P99", true}});
	for (const auto &s : r.value("cgroups", json::array()))
		t.add_row({s.value("cgroup", ""), s.value("worker", false) ? "yes" : "no",
			   std::to_string(s.value("reads", 0ULL)),
			   std::to_string(s.value("writes", 0ULL)),
			   cli::human_bytes(s.value("bytes_read", 0.0)),
			   cli::human_bytes(s.value("bytes_written", 0.0)),
			   std::to_string(s.value("errors", 0ULL)),
			   cli::human_us(s.value("latency_p50_us", 0.0)),
			   cli::human_us(s.value("latency_p99_us", 0.0))});
	std::fputs(t.render().c_str(), stdout);
}

void print_status(const json &r)
{
	for (auto it = r.begin(); it != r.end(); ++it) {
		std::string v = it->is_string() ? it->get<std::string>() : it->dump();
		std::printf("%-14s %s\n", (it.key() + ":").c_str(), v.c_str());
	}
}

} /* namespace */

int main(int argc, char **argv)
{
	Options o;
	try {
		o = parse(argc, argv);
	} catch (const UsageError &e) {
		std::fprintf(stderr, "cgloopctl: %s\nTry 'cgloopctl --help' for more information.\n",
			     e.what());
		return 2;
	}
	try {
		std::string socket = resolve_socket(o);
		json result = control::call(socket, {o.command, json::object()});
		if (o.json) {
			std::printf("%s\n", result.dump(2).c_str());
			return EXIT_SUCCESS;
		}
		if (o.command == "workers")
			print_workers(result);
		else if (o.command == "stats")
			print_stats(result);
		else
			print_status(result);
	} catch (const control::ClientError &e) {
		std::fprintf(stderr, "cgloopctl: %s\n", e.what());
		return EXIT_FAILURE;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "cgloopctl: %s\n", e.what());
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}
