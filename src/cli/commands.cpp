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
#include "cli/top.hpp"
#include "common/escape.hpp"
#include "config/image_spec.hpp"
#include "config/mount_options.hpp"
#include "control/client.hpp"
#include "control/json_text.hpp"
#include "metrics/exposition.hpp"

namespace cgloopfs::cli {

namespace {

using nlohmann::json;

/*
 * A cell of --raw output, from a cell already escaped for a terminal
 * (common/escape.hpp): a space as \x20 too (as losetup --raw writes it), so
 * cells are split on single spaces.
 */
std::string raw_escape(const std::string &cell)
{
	std::string out;
	for (char c : cell) {
		if (c == ' ')
			out += "\\x20";
		else
			out += c;
	}
	return out;
}

/*
 * A unit name as systemd spells it, with its own \xNN escapes
 * ("machine-qemu\x2d1\x2dvm.scope", what systemctl takes), and "-": the
 * daemon sends no other (cgroup/names.hpp), and such a name holds nothing a
 * terminal acts on. Anything else is escaped as any text from outside.
 */
std::string show_unit(const json &v)
{
	std::string s = v.is_string() ? v.get<std::string>() : control::dump_json(v);
	auto hex = [&](size_t i) { return std::isxdigit(static_cast<unsigned char>(s[i])); };
	for (size_t i = 0; i < s.size(); i++) {
		auto c = static_cast<unsigned char>(s[i]);
		if (c == '\\' && i + 3 < s.size() && s[i + 1] == 'x' && hex(i + 2) && hex(i + 3)) {
			i += 3;
			continue;
		}
		bool plain = c < 0x80 && (std::isalnum(c) ||
					  std::string_view(":_.@-/").find(static_cast<char>(c)) !=
						  std::string_view::npos);
		if (!plain)
			return escape_for_terminal(s);
	}
	return s;
}

/* A cell: numbers as they are, booleans 1 and 0, text escaped for a terminal. */
std::string cell(const json &v)
{
	if (v.is_boolean())
		return v.get<bool>() ? "1" : "0";
	if (v.is_string())
		return escape_for_terminal(v.get<std::string>());
	if (v.is_null())
		return "-";
	return control::dump_json(v);
}

struct Column {
	const char *header;
	const char *key; /* in the daemon's JSON */
	bool right;
	/* The cell (already escaped), when not cell(): units, sizes, times. */
	std::string (*show)(const json &v) = nullptr;
};

std::string show_cell(const Column &c, const json &row)
{
	const json &v = row.contains(c.key) ? row[c.key] : json();
	return c.show ? c.show(v) : cell(v);
}

std::string yes_no(const json &v)
{
	return v.is_boolean() && v.get<bool>() ? "yes" : "no";
}

std::string show_bytes(const json &v)
{
	return human_bytes(v.is_number() ? v.get<double>() : 0.0);
}

std::string show_us(const json &v)
{
	return human_us(v.is_number() ? v.get<double>() : 0.0);
}

/* A worker's process (charge=cgroup), "-" for none. */
std::string show_pid(const json &v)
{
	return v.is_number() && v.get<int64_t>() > 0 ? std::to_string(v.get<int64_t>()) : "-";
}

std::string show_age(const json &v)
{
	return human_age(v.is_number() ? v.get<double>() : 0.0);
}

/* A command's columns: every one -O may name, the default ones first. */
struct ColumnSet {
	const char *command;
	std::vector<Column> all;
	size_t defaults;
};

const ColumnSet list_columns = {
	"list",
	{
		{"NAME", "name", false},
		{"BACK-FILE", "back-file", false},
		{"OFFSET", "offset", true},
		{"SIZELIMIT", "sizelimit", true},
		{"SIZE", "size", true},
		{"RO", "ro", true},
		{"DIO", "dio", true},
		{"LOG-SEC", "log-sec", true},
		{"DISCARD", "discard", true},
		{"OPEN", "open", true},
		{"LOCK", "locked", true},
		{"MODE", "mode", false},
		{"UID", "uid", true},
		{"GID", "gid", true},
	},
	/* NAME .. OPEN, as losetup --list, and whether the image holds its locks */
	11};

/*
 * A cgroup is its path, and its id (CGROUP-ID): a cgroup removed and made
 * again under the same path is another cgroup, with another id.
 */
const ColumnSet worker_columns = {"workers",
				  {
					  {"CGROUP", "cgroup", false},
					  {"CGROUP-ID", "cgroup_id", true},
					  {"UNIT", "unit", false, show_unit},
					  {"MACHINE", "machine", false},
					  {"STATE", "state", false},
					  {"QUEUED", "queued", true},
					  {"INFLIGHT", "in_flight", true},
					  {"THREADS", "threads", true},
					  {"PID", "pid", true, show_pid},
					  {"CHARGED", "charged", false, yes_no},
					  {"SERVED", "served", true},
					  {"IDLE", "idle_seconds", true, show_age},
				  },
				  12};

const ColumnSet stats_columns = {"stats",
				 {
					 {"CGROUP", "cgroup", false},
					 {"CGROUP-ID", "cgroup_id", true},
					 {"UNIT", "unit", false, show_unit},
					 {"MACHINE", "machine", false},
					 {"WORKER", "worker", false, yes_no},
					 {"READS", "reads", true},
					 {"WRITES", "writes", true},
					 {"READ", "bytes_read", true, show_bytes},
					 {"WRITTEN", "bytes_written", true, show_bytes},
					 {"ERRORS", "errors", true},
					 {"P50", "latency_p50_us", true, show_us},
					 {"P99", "latency_p99_us", true, show_us},
					 {"QUEUED", "queued", true},
					 {"INFLIGHT", "in_flight", true},
					 {"SYNCS", "syncs", true},
					 {"DISCARDS", "discards", true},
					 {"IDLE", "idle_seconds", true, show_age},
					 {"PID", "pid", true, show_pid},
					 {"CHARGED", "charged", false, yes_no},
				 },
				 12};

std::vector<const Column *> chosen_columns(const Invocation &inv, const ColumnSet &set)
{
	std::vector<const Column *> out;
	if (!inv.has("output")) {
		for (size_t i = 0; i < set.defaults; i++)
			out.push_back(&set.all[i]);
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
		for (const auto &c : set.all)
			if (name == c.header)
				found = &c;
		if (!found)
			throw UsageError(fmt::format("{}: unknown column \"{}\"", set.command,
						     escape_for_terminal(name)));
		out.push_back(found);
		if (end == std::string::npos)
			break;
		start = end + 1;
	}
	return out;
}

/* The chosen columns of each row: the JSON keys, or the table (--raw, -n). */
void print_rows(const Invocation &inv, const std::vector<const Column *> &cols, const json &rows)
{
	bool headings = !inv.has("noheadings");
	if (inv.has("raw")) {
		std::string s;
		auto line = [&](auto &&cell_of) {
			for (size_t i = 0; i < cols.size(); i++) {
				if (i)
					s += ' ';
				s += raw_escape(cell_of(*cols[i]));
			}
			s += "\n";
		};
		if (headings)
			line([](const Column &c) { return std::string(c.header); });
		for (const auto &row : rows)
			line([&](const Column &c) { return show_cell(c, row); });
		std::fputs(s.c_str(), stdout);
		return;
	}
	std::vector<Table::Column> tcols;
	for (const auto *c : cols)
		tcols.push_back({c->header, c->right});
	Table t(tcols);
	for (const auto &row : rows) {
		std::vector<std::string> cells;
		for (const auto *c : cols)
			cells.push_back(show_cell(*c, row));
		t.add_row(cells);
	}
	std::fputs(t.render(headings).c_str(), stdout);
}

/* Each row with only the chosen columns' keys. */
json only_columns(const std::vector<const Column *> &cols, const json &rows)
{
	json out = json::array();
	for (const auto &row : rows) {
		json o = json::object();
		for (const auto *c : cols)
			o[c->key] = row.contains(c->key) ? row[c->key] : json();
		out.push_back(o);
	}
	return out;
}

void print_json(const json &v)
{
	std::printf("%s\n", control::dump_json(v, 2).c_str());
}

int do_list(const Invocation &inv, const std::string &socket)
{
	if (inv.has("manifest")) {
		json r = control::call(socket, {"manifest", json::object()});
		std::fputs(r.value("text", "").c_str(), stdout);
		return EXIT_SUCCESS;
	}
	auto cols = chosen_columns(inv, list_columns);
	json r = control::call(socket, {"list", json::object()});
	const json &images = r["images"];
	if (inv.has("json")) {
		print_json(json{{"images", only_columns(cols, images)}});
		return EXIT_SUCCESS;
	}
	print_rows(inv, cols, images);
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
		print_json(r);
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
		print_json(r);
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
		print_json(r);
	return EXIT_SUCCESS;
}

/* A command that sends its name and prints the answer with `print`. */
int call_and_print(const Invocation &inv, const std::string &socket, const json &args,
		   void (*print)(const json &))
{
	json r = control::call(socket, {std::string(inv.command->name), args});
	if (inv.has("json"))
		print_json(r);
	else if (print)
		print(r);
	return EXIT_SUCCESS;
}

void print_keys(const json &r)
{
	for (auto it = r.begin(); it != r.end(); ++it) {
		std::string v = it->is_string() ? it->get<std::string>() : control::dump_json(*it);
		std::printf("%-14s %s\n", (escape_for_terminal(it.key()) + ":").c_str(),
			    escape_for_terminal(v).c_str());
	}
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

/*
 * workers and stats: the table of the chosen columns; --json prints every
 * key, or with -O those of the chosen columns.
 */
int do_workers(const Invocation &inv, const std::string &socket)
{
	auto cols = chosen_columns(inv, worker_columns);
	json r = control::call(socket, {"workers", json::object()});
	if (inv.has("json"))
		print_json(inv.has("output") ? only_columns(cols, r) : r);
	else
		print_rows(inv, cols, r);
	return EXIT_SUCCESS;
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
	auto cols = chosen_columns(inv, stats_columns);
	json r = control::call(socket, {"stats", json::object()});
	if (format == "prometheus") {
		std::fputs(metrics::text_format(metrics::families(r)).c_str(), stdout);
		return EXIT_SUCCESS;
	}
	const json &cgroups = r.contains("cgroups") ? r["cgroups"] : json::array();
	if (format == "table") {
		print_rows(inv, cols, cgroups);
		return EXIT_SUCCESS;
	}
	if (inv.has("output"))
		r["cgroups"] = only_columns(cols, json(cgroups));
	print_json(r);
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

/* -O, -n and --raw: the options of workers and stats (list has them too). */
std::vector<OptSpec> table_options()
{
	return {
		{"output", 'O', ArgKind::required, "COLS", "the columns to show (comma-separated)"},
		{"noheadings", 'n', ArgKind::none, "", "no header line"},
		{"raw", 0, ArgKind::none, "", "raw output: single spaces, no alignment"},
	};
}

std::vector<OptSpec> stats_options()
{
	auto o = table_options();
	o.push_back({"format", 0, ArgKind::required, "FORMAT",
		     "table, json, or prometheus (text format)"});
	return o;
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
	{"workers", "[MOUNTPOINT]", "live workers: cgroup, unit, machine, state, queued, in flight",
	 0, 1, table_options(), do_workers},
	{"stats", "[MOUNTPOINT]", "per-cgroup requests, bytes, errors and latency", 0, 1,
	 stats_options(), do_stats},
	{"status",
	 "[MOUNTPOINT]",
	 "the mount: source, images, dispatch settings",
	 0,
	 1,
	 {},
	 do_status},
	{"top", "[MOUNTPOINT]", "live per-cgroup I/O rates, queues and p99 latency", 0, 1,
	 top::option_specs(), top::run},
};

} /* namespace cgloopfs::cli */
