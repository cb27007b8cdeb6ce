/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopctl's verbs: the table of commands (cli/options.hpp's `commands`)
 * with their handlers, each sending one control request and printing the
 * answer. Not thread-safe (stdout).
 */
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include <fmt/core.h>

#include "cli/options.hpp"
#include "cli/table.hpp"
#include "config/image_spec.hpp"
#include "config/mount_options.hpp"
#include "control/client.hpp"
#include "metrics/exposition.hpp"

namespace cgloopfs::cli {

namespace {

using nlohmann::json;

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
	{"NAME", "name", false},      {"BACK-FILE", "back-file", false},
	{"OFFSET", "offset", true},   {"SIZELIMIT", "sizelimit", true},
	{"SIZE", "size", true},	      {"RO", "ro", true},
	{"DIO", "dio", true},	      {"LOG-SEC", "log-sec", true},
	{"DISCARD", "discard", true}, {"OPEN", "open", true},
	{"LOCK", "locked", true},     {"MODE", "mode", false},
	{"UID", "uid", true},	      {"GID", "gid", true},
};
/* NAME .. OPEN, as losetup --list, and whether the image holds its locks */
constexpr size_t default_columns = 11;

std::vector<const Column *> chosen_columns(const Invocation &inv)
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
			throw UsageError(fmt::format("list: unknown column \"{}\"", name));
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

int do_list(const Invocation &inv, const std::string &socket)
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
	std::vector<Table::Column> tcols;
	for (const auto *c : cols)
		tcols.push_back({c->header, c->right});
	Table t(tcols);
	for (const auto &img : images) {
		std::vector<std::string> row;
		for (const auto *c : cols)
			row.push_back(cell(img[c->key]));
		t.add_row(row);
	}
	std::fputs(t.render(headings).c_str(), stdout);
	return EXIT_SUCCESS;
}

int do_attach(const Invocation &inv, const std::string &socket)
{
	std::string image = inv.operands[0];
	/* The daemon resolves symlinks; it needs an absolute path to start from. */
	if (image.empty() || image.front() != '/') {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			throw control::ClientError(fmt::format("getcwd: {}", std::strerror(errno)));
		image = std::string(cwd) + "/" + image;
	}
	/* The settings by their names (config/image_spec.hpp); the daemon reads them. */
	json args = {{"path", image}};
	for (const auto &setting : config::image_settings) {
		std::string option(setting.option);
		if (option.empty() || !inv.has(option))
			continue;
		if (setting.kind != config::SettingKind::flag) {
			args[std::string(setting.name)] = inv.get(option);
			continue;
		}
		std::string v = inv.get(option); /* "" : given without a value */
		if (v != "" && v != "on" && v != "off")
			throw UsageError(fmt::format("attach: --{} takes on or off, not \"{}\"",
						     option, config::printable(v)));
		args[std::string(setting.name)] = v != "off";
	}
	json r = control::call(socket, {"attach", args});
	if (inv.has("json"))
		std::printf("%s\n", r.dump(2).c_str());
	else if (inv.has("show"))
		std::printf("%s\n", r.value("path", "").c_str());
	return EXIT_SUCCESS;
}

int do_detach(const Invocation &inv, const std::string &socket)
{
	bool all = inv.has("all");
	if (all == !inv.operands.empty())
		throw UsageError("detach: give one NAME, or --all");
	json args = {{"lazy", inv.has("lazy")}, {"all", all}};
	if (!all)
		args["name"] = inv.operands[0];
	json r = control::call(socket, {"detach", args});
	if (inv.has("json"))
		std::printf("%s\n", r.dump(2).c_str());
	return EXIT_SUCCESS;
}

int do_set(const Invocation &inv, const std::string &socket)
{
	json settings = json::object();
	for (const auto &kv : inv.operands) {
		auto eq = kv.find('=');
		if (eq == std::string::npos || eq == 0)
			throw UsageError(fmt::format("set: \"{}\" is not KEY=VALUE", kv));
		settings[kv.substr(0, eq)] = kv.substr(eq + 1);
	}
	json r = control::call(socket, {"set", {{"settings", settings}}});
	if (inv.has("json"))
		std::printf("%s\n", r.dump(2).c_str());
	return EXIT_SUCCESS;
}

/* A command that sends its name and prints the answer with `print`. */
int call_and_print(const Invocation &inv, const std::string &socket, const json &args,
		   void (*print)(const json &))
{
	json r = control::call(socket, {std::string(inv.command->name), args});
	if (inv.has("json"))
		std::printf("%s\n", r.dump(2).c_str());
	else if (print)
		print(r);
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
	Table t({{"CGROUP", false},
		 {"STATE", false},
		 {"QUEUED", true},
		 {"INFLIGHT", true},
		 {"THREADS", true},
		 {"SERVED", true},
		 {"IDLE", true}});
	for (const auto &w : r)
		t.add_row({w.value("cgroup", ""), w.value("state", ""),
			   std::to_string(w.value("queued", 0)),
			   std::to_string(w.value("in_flight", 0)),
			   std::to_string(w.value("threads", 0)),
			   std::to_string(w.value("served", 0)),
			   human_age(w.value("idle_seconds", 0.0))});
	std::fputs(t.render().c_str(), stdout);
}

void print_stats(const json &r)
{
	Table t({{"CGROUP", false},
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
			   human_bytes(s.value("bytes_read", 0.0)),
			   human_bytes(s.value("bytes_written", 0.0)),
			   std::to_string(s.value("errors", 0ULL)),
			   human_us(s.value("latency_p50_us", 0.0)),
			   human_us(s.value("latency_p99_us", 0.0))});
	std::fputs(t.render().c_str(), stdout);
}

int do_set_capacity(const Invocation &inv, const std::string &socket)
{
	/* Quiet on success, as losetup -c. */
	return call_and_print(inv, socket, {{"name", inv.operands[0]}}, nullptr);
}

int do_get(const Invocation &inv, const std::string &socket)
{
	return call_and_print(inv, socket, json::object(), print_keys);
}

int do_workers(const Invocation &inv, const std::string &socket)
{
	return call_and_print(inv, socket, json::object(), print_workers);
}

/*
 * stats --format=table|json|prometheus (--json is --format=json): the
 * prometheus text is made by metrics/, as the daemon's /metrics endpoint
 * makes it, for node_exporter's textfile collector.
 */
int do_stats(const Invocation &inv, const std::string &socket)
{
	std::string format = inv.get("format", inv.has("json") ? "json" : "table");
	if (format != "table" && format != "json" && format != "prometheus")
		throw UsageError(fmt::format("stats: --format: \"{}\" is not table, json or "
					     "prometheus",
					     config::printable(format)));
	if (inv.has("json") && format != "json")
		throw UsageError("stats: give --json or --format, not both");
	json r = control::call(socket, {"stats", json::object()});
	if (format == "prometheus")
		std::fputs(metrics::text_format(metrics::families(r)).c_str(), stdout);
	else if (format == "json")
		std::printf("%s\n", r.dump(2).c_str());
	else
		print_stats(r);
	return EXIT_SUCCESS;
}

int do_status(const Invocation &inv, const std::string &socket)
{
	return call_and_print(inv, socket, json::object(), print_keys);
}

/* attach's options: one per image setting (config/image_spec.hpp), then --show. */
std::vector<OptSpec> attach_options()
{
	std::vector<OptSpec> out;
	for (const auto &s : config::image_settings) {
		if (s.option.empty())
			continue;
		ArgKind arg = s.kind != config::SettingKind::flag ? ArgKind::required
			      : s.metavar.empty()		  ? ArgKind::none
								  : ArgKind::optional;
		out.push_back({s.option, s.short_option, arg, s.metavar, s.help});
	}
	out.push_back({"show", 0, ArgKind::none, "", "print the path of the new file"});
	return out;
}

const std::string set_help = "change " + config::runtime_option_names();

} /* namespace */

/* The verbs: parsing, --help and the man-page check read them too. */
const std::vector<CommandSpec> commands = {
	{"list",
	 "[MOUNTPOINT]",
	 "the images, as losetup --list shows loop devices",
	 0,
	 1,
	 {
		 {"output", 'O', ArgKind::required, "COLS",
		  "the columns to show (comma-separated)"},
		 {"noheadings", 'n', ArgKind::none, "", "no header line"},
		 {"raw", 0, ArgKind::none, "", "raw output: single spaces, no alignment"},
		 {"manifest", 0, ArgKind::none, "", "print a manifest that makes these images"},
	 },
	 do_list},
	{"attach", "IMAGE", "serve IMAGE (a file or block device) as a new file", 1, 1,
	 attach_options(), do_attach},
	{"detach",
	 "[NAME]",
	 "stop serving an image",
	 0,
	 1,
	 {
		 {"all", 'a', ArgKind::none, "", "detach every image"},
		 {"lazy", 'l', ArgKind::none, "", "hide it now, free it on its last close"},
	 },
	 do_detach},
	{"set-capacity",
	 "NAME",
	 "re-read the size of an image's backing file",
	 1,
	 1,
	 {},
	 do_set_capacity},
	{"get", "[MOUNTPOINT]", "show the runtime settings", 0, 1, {}, do_get},
	{"set", "KEY=VALUE...", set_help, 1, SIZE_MAX, {}, do_set},
	{"workers",
	 "[MOUNTPOINT]",
	 "live workers: cgroup, state, queued, in flight",
	 0,
	 1,
	 {},
	 do_workers},
	{"stats",
	 "[MOUNTPOINT]",
	 "per-cgroup requests, bytes, errors and latency",
	 0,
	 1,
	 {
		 {"format", 0, ArgKind::required, "FORMAT",
		  "table, json, or prometheus (text format)"},
	 },
	 do_stats},
	{"status",
	 "[MOUNTPOINT]",
	 "the mount: source, images, dispatch settings",
	 0,
	 1,
	 {},
	 do_status},
};

} /* namespace cgloopfs::cli */
