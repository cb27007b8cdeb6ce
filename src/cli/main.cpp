/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopctl: look at and control a running cgloopfs, as losetup does loop
 * devices.
 *
 *   cgloopctl [--json] [--mount DIR | --socket PATH] COMMAND [OPTIONS] [ARGS]
 *
 * It finds the daemon from a mount point alone (the mount's root names its
 * control socket in the user.cgloopfs.control xattr); with no mount point
 * and exactly one cgloopfs mounted, it uses that one. Commands and options
 * are in cli/options.cpp, written once.
 * Exit status: 0 success, 1 refused or failed, 2 usage error.
 */
#include <config.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include <fmt/core.h>

#include "cli/options.hpp"
#include "cli/table.hpp"
#include "control/client.hpp"

using namespace cgloopfs;
using nlohmann::json;

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

/* losetup's --raw escapes blanks and control characters as \xNN. */
std::string raw_escape(const std::string &s)
{
	std::string out;
	for (unsigned char c : s) {
		if (c <= 0x20 || c == 0x7f || c == '\\')
			out += fmt::format("\\x{:02x}", c);
		else
			out += static_cast<char>(c);
	}
	return out;
}

struct Column {
	const char *header;
	const char *key; /* in the daemon's list JSON */
	bool right;
};

const Column list_columns[] = {
	{"NAME", "name", false},	   {"BACK-FILE", "back-file", false},
	{"OFFSET", "offset", true},	   {"SIZELIMIT", "sizelimit", true},
	{"SIZE", "size", true},		   {"RO", "ro", true},
	{"DIO", "dio", true},		   {"LOG-SEC", "log-sec", true},
	{"DISCARD", "discard", true},	   {"OPEN", "open", true},
	{"LOCK", "locked", true},	   {"MODE", "mode", false},
	{"UID", "uid", true},		   {"GID", "gid", true},
};
/* NAME .. OPEN, as losetup --list, and whether the image holds its locks */
constexpr size_t default_columns = 11;

std::vector<const Column *> chosen_columns(const cli::Invocation &inv)
{
	std::vector<const Column *> out;
	if (!inv.has("output")) {
		for (size_t i = 0; i < default_columns; i++)
			out.push_back(&list_columns[i]);
		return out;
	}
	std::string spec = inv.get("output");
	size_t start = 0;
	while (start <= spec.size()) {
		size_t end = spec.find(',', start);
		std::string name = spec.substr(start, end - start);
		std::transform(name.begin(), name.end(), name.begin(),
			       [](unsigned char c) { return std::toupper(c); });
		const Column *found = nullptr;
		for (const auto &c : list_columns)
			if (name == c.header)
				found = &c;
		if (!found)
			throw cli::UsageError(fmt::format("list: unknown column \"{}\"", name));
		out.push_back(found);
		if (end == std::string::npos)
			break;
		start = end + 1;
	}
	return out;
}

std::string cell(const json &v)
{
	if (v.is_boolean())
		return v.get<bool>() ? "1" : "0";
	if (v.is_string())
		return v.get<std::string>();
	return v.dump();
}

int do_list(const cli::Invocation &inv, const std::string &socket)
{
	if (inv.has("manifest")) {
		json r = control::call(socket, {"manifest", json::object()});
		std::fputs(r.value("text", "").c_str(), stdout);
		return EXIT_SUCCESS;
	}
	auto cols = chosen_columns(inv);
	json r = control::call(socket, {"list", json::object()});
	const json &images = r["images"];
	if (inv.has("json")) {
		json out = json::array();
		for (const auto &img : images) {
			json o = json::object();
			for (const auto *c : cols)
				o[c->key] = img[c->key];
			out.push_back(o);
		}
		std::printf("%s\n", json{{"images", out}}.dump(2).c_str());
		return EXIT_SUCCESS;
	}
	bool headings = !inv.has("noheadings");
	if (inv.has("raw")) {
		std::string s;
		auto line = [&](auto &&cell_of) {
			for (size_t i = 0; i < cols.size(); i++)
				s += (i ? " " : "") + raw_escape(cell_of(*cols[i]));
			s += "\n";
		};
		if (headings)
			line([](const Column &c) { return std::string(c.header); });
		for (const auto &img : images)
			line([&](const Column &c) { return cell(img[c.key]); });
		std::fputs(s.c_str(), stdout);
		return EXIT_SUCCESS;
	}
	std::vector<cli::Table::Column> tcols;
	for (const auto *c : cols)
		tcols.push_back({c->header, c->right});
	cli::Table t(tcols);
	for (const auto &img : images) {
		std::vector<std::string> row;
		for (const auto *c : cols)
			row.push_back(cell(img[c->key]));
		t.add_row(row);
	}
	std::fputs(t.render(headings).c_str(), stdout);
	return EXIT_SUCCESS;
}

int do_attach(const cli::Invocation &inv, const std::string &socket)
{
	std::string image = inv.operands[0];
	/* The daemon resolves symlinks; it needs an absolute path to start from. */
	if (image.empty() || image.front() != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			throw control::ClientError(fmt::format("getcwd: {}", std::strerror(errno)));
		image = std::string(cwd) + "/" + image;
	}
	json args = {{"path", image}};
	for (const char *key : {"name", "offset", "sizelimit", "mode", "uid", "gid", "lock"})
		if (inv.has(key))
			args[key] = inv.get(key);
	if (inv.has("sector-size"))
		args["sector_size"] = inv.get("sector-size");
	if (inv.has("read-only"))
		args["read_only"] = true;
	if (inv.has("discard"))
		args["discard"] = true;
	if (inv.has("direct-io")) {
		std::string v = inv.get("direct-io", "on");
		if (v.empty() || v == "on")
			args["direct_io"] = true;
		else if (v == "off")
			args["direct_io"] = false;
		else
			throw cli::UsageError(
				fmt::format("attach: --direct-io takes on or off, not \"{}\"", v));
	}
	json r = control::call(socket, {"attach", args});
	if (inv.has("json"))
		std::printf("%s\n", r.dump(2).c_str());
	else if (inv.has("show"))
		std::printf("%s\n", r.value("path", "").c_str());
	return EXIT_SUCCESS;
}

int do_detach(const cli::Invocation &inv, const std::string &socket)
{
	bool all = inv.has("all");
	if (all == !inv.operands.empty())
		throw cli::UsageError("detach: give one NAME, or --all");
	json args = {{"lazy", inv.has("lazy")}, {"all", all}};
	if (!all)
		args["name"] = inv.operands[0];
	json r = control::call(socket, {"detach", args});
	if (inv.has("json"))
		std::printf("%s\n", r.dump(2).c_str());
	return EXIT_SUCCESS;
}

int do_set(const cli::Invocation &inv, const std::string &socket)
{
	json settings = json::object();
	for (const auto &kv : inv.operands) {
		auto eq = kv.find('=');
		if (eq == std::string::npos || eq == 0)
			throw cli::UsageError(fmt::format("set: \"{}\" is not KEY=VALUE", kv));
		settings[kv.substr(0, eq)] = kv.substr(eq + 1);
	}
	json r = control::call(socket, {"set", {{"settings", settings}}});
	if (inv.has("json"))
		std::printf("%s\n", r.dump(2).c_str());
	return EXIT_SUCCESS;
}

void print_keys(const json &r)
{
	for (auto it = r.begin(); it != r.end(); ++it) {
		std::string v = it->is_string() ? it->get<std::string>() : it->dump();
		std::printf("%-14s %s\n", (it.key() + ":").c_str(), v.c_str());
	}
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

int run(const cli::Invocation &inv)
{
	std::string socket = resolve_socket(inv);
	const std::string name(inv.command->name);
	if (name == "list")
		return do_list(inv, socket);
	if (name == "attach")
		return do_attach(inv, socket);
	if (name == "detach")
		return do_detach(inv, socket);
	if (name == "set")
		return do_set(inv, socket);
	json args = json::object();
	if (name == "set-capacity")
		args["name"] = inv.operands[0];
	json r = control::call(socket, {name, args});
	if (inv.has("json"))
		std::printf("%s\n", r.dump(2).c_str());
	else if (name == "workers")
		print_workers(r);
	else if (name == "stats")
		print_stats(r);
	else if (name == "set-capacity")
		; /* quiet on success, as losetup -c */
	else
		print_keys(r);
	return EXIT_SUCCESS;
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
		std::fprintf(stderr, "cgloopctl: %s\nTry 'cgloopctl --help' for more information.\n",
			     e.what());
		return 2;
	} catch (const control::ClientError &e) {
		std::fprintf(stderr, "cgloopctl: %s\n", e.what());
		return EXIT_FAILURE;
	} catch (const std::exception &e) {
		std::fprintf(stderr, "cgloopctl: %s\n", e.what());
		return EXIT_FAILURE;
	}
}
