/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "control_commands.hpp"

#include <config.h>

#include <cstring>
#include <optional>

#include <sys/prctl.h>

#include <fmt/core.h>

#include "config/manifest.hpp"
#include "config/mount_options.hpp"
#include "daemon/lock_notice.hpp"

namespace cgloopfs::daemon {

namespace {

using nlohmann::json;

double seconds_since(int64_t then_ns, int64_t now_ns)
{
	return then_ns > 0 && now_ns > then_ns ? static_cast<double>(now_ns - then_ns) / 1e9 : 0.0;
}

json workers_json(fuse::Filesystem &fs)
{
	dispatch::SteadyClock clock;
	int64_t now = clock.now_ns();
	json out = json::array();
	for (const auto &w : fs.dispatch.workers()) {
		out.push_back({
			{"cgroup", w.root ? "(root queue)" : (w.path.empty() ? "?" : w.path)},
			{"cgroup_id", w.cgroup_id},
			{"unit", w.unit},
			{"machine", w.machine},
			{"root", w.root},
			{"state", w.state == dispatch::WorkerState::active ? "active" : "idle"},
			{"queued", w.queued},
			{"in_flight", w.in_flight},
			{"threads", w.threads},
			{"pid", w.pid},
			{"charged", w.charged},
			{"served", w.served},
			{"idle_seconds", seconds_since(w.last_active_ns, now)},
		});
	}
	return out;
}

/*
 * The histogram's non-empty buckets as [upper bound in ns, count] pairs,
 * in order: counts since the cgroup's statistics began, so two readings a
 * moment apart give the latencies of the requests in between.
 */
json latency_buckets_json(const dispatch::LatencyHistogram &h)
{
	json out = json::array();
	for (unsigned b = 0; b < dispatch::LatencyHistogram::buckets; b++) {
		if (uint64_t n = h.bucket_count(b))
			out.push_back(
				json::array({dispatch::LatencyHistogram::bucket_upper(b), n}));
	}
	return out;
}

} /* namespace */

json stats_document(fuse::Filesystem &fs)
{
	dispatch::SteadyClock clock;
	int64_t now = clock.now_ns();
	/* The live workers' queues, by cgroup id. */
	json live = json::object();
	size_t workers = 0;
	for (const auto &w : fs.dispatch.workers()) {
		live[std::to_string(w.cgroup_id)] = {{"queued", w.queued},
						     {"in_flight", w.in_flight},
						     {"pid", w.pid},
						     {"charged", w.charged}};
		workers += w.root ? 0 : 1;
	}

	json cgroups = json::array();
	for (const auto &s : fs.dispatch.stats()) {
		constexpr auto r = std::memory_order_relaxed;
		auto id = std::to_string(s->id);
		bool has_worker = live.contains(id);
		cgroups.push_back({
			{"cgroup", s->id == 0 ? "(root queue)" : (s->path.empty() ? "?" : s->path)},
			{"cgroup_id", s->id},
			{"unit", s->unit},
			{"machine", s->machine},
			{"worker", has_worker},
			{"queued", has_worker ? live[id]["queued"] : json(0)},
			{"in_flight", has_worker ? live[id]["in_flight"] : json(0)},
			{"pid", has_worker ? live[id]["pid"] : json(0)},
			{"charged", has_worker ? live[id]["charged"] : json(false)},
			{"reads", s->reads.load(r)},
			{"writes", s->writes.load(r)},
			{"syncs", s->syncs.load(r)},
			{"discards", s->discards.load(r)},
			{"others", s->others.load(r)},
			{"bytes_read", s->bytes_read.load(r)},
			{"bytes_written", s->bytes_written.load(r)},
			{"errors", s->errors.load(r)},
			{"timeouts", s->timeouts.load(r)},
			{"interrupted", s->interrupted.load(r)},
			{"latency_p50_us", static_cast<double>(s->latency.quantile(0.50)) / 1e3},
			{"latency_p99_us", static_cast<double>(s->latency.quantile(0.99)) / 1e3},
			{"latency_buckets", latency_buckets_json(s->latency)},
			{"latency_sum_ns", s->latency.approx_sum()},
			{"idle_seconds", seconds_since(s->last_active_ns.load(r), now)},
		});
	}
	json images = json::array();
	for (const auto &e : fs.table.list())
		images.push_back({{"name", e.image->spec().name},
				  {"size", e.image->size()},
				  {"open", e.image->open_count()}});
	auto t = fs.dispatch.totals();
	return {
		{"mountpoint", fs.options.mountpoint},
		{"cgroups", cgroups},
		{"workers", workers},
		{"workers_created", t.workers_created},
		{"workers_reaped", t.workers_reaped},
		{"root_fallbacks", t.root_fallbacks},
		{"spawn_failures", t.spawn_failures},
		{"timeouts", t.timeouts},
		{"interrupted", t.interrupted},
		{"queued_write_buffers", fs.payloads.parked()},
		{"max_queued_write_buffers", fs.payloads.max_parked()},
		/* In units of the max_queued budget: a buffer holds up to max_payload. */
		{"queued_write_bytes", fs.payloads.parked() * fuse::PayloadPool::max_payload},
		{"max_queued_write_bytes",
		 fs.payloads.max_parked() * fuse::PayloadPool::max_payload},
		{"images", images},
	};
}

namespace {

/* The -o word of a choice option's value ("cgroup"), from its row. */
std::string choice(std::string_view option, size_t value)
{
	return std::string(config::choice_name(*config::find_mount_option(option), value));
}

json status_json(fuse::Filesystem &fs)
{
	const auto &o = fs.options;
	return {
		{"version", CGLOOPFS_VERSION},
		{"source", o.source},
		{"mountpoint", o.mountpoint},
		{"images", fs.table.count()},
		{"open_handles", fs.open_handles()},
		{"dispatch", choice("dispatch", static_cast<size_t>(o.dispatch))},
		{"charge", choice("charge", static_cast<size_t>(fs.charge.load()))},
		{"cache", choice("cache", static_cast<size_t>(o.cache))},
		{"idle_timeout", fs.dispatch.config().idle_timeout_ns / 1000000000},
		{"max_workers", fs.dispatch.config().max_workers},
		{"worker_depth", fs.dispatch.config().worker_depth},
		/* Set at start-up on the main thread and inherited: this thread shows it. */
		{"io_flusher", prctl(PR_GET_IO_FLUSHER, 0, 0, 0, 0) == 1},
	};
}

std::string mode_string(uint32_t mode)
{
	return fmt::format("{:04o}", mode);
}

/* Whether an image holds its locks: true, false (its file system has none) or "off". */
json lock_json(image::LockState state)
{
	switch (state) {
	case image::LockState::held:
		return true;
	case image::LockState::unsupported:
		return false;
	case image::LockState::off:
		break;
	}
	return "off";
}

json list_json(fuse::Filesystem &fs)
{
	json images = json::array();
	for (const auto &e : fs.table.list()) {
		const auto &img = *e.image;
		const auto &spec = img.spec();
		auto a = img.attr();
		images.push_back({
			{"name", spec.name},
			{"back-file", spec.path},
			{"offset", spec.offset},
			{"sizelimit", spec.size_limit},
			{"size", a.size},
			{"ro", img.read_only()},
			{"dio", img.direct_io()},
			{"log-sec", spec.block_size},
			{"discard", img.discard_enabled()},
			{"open", img.open_count()},
			{"locked", lock_json(img.lock_state())},
			{"mode", mode_string(a.mode)},
			{"uid", a.uid},
			{"gid", a.gid},
			{"inode", e.ino},
		});
	}
	return {{"images", images}};
}

json manifest_json(fuse::Filesystem &fs)
{
	std::vector<config::ImageSpec> specs;
	for (const auto &e : fs.table.list())
		specs.push_back(e.image->spec());
	try {
		return {{"text", config::format_manifest(specs)}};
	} catch (const config::ConfigError &e) {
		throw control::ControlError(e.what());
	}
}

/* A string argument, or nullopt; anything else is refused. */
std::optional<std::string> string_arg(const json &args, const char *key)
{
	auto it = args.find(key);
	if (it == args.end() || it->is_null())
		return std::nullopt;
	if (it->is_string())
		return it->get<std::string>();
	if (it->is_number_unsigned())
		return std::to_string(it->get<uint64_t>());
	throw control::ControlError(fmt::format("{}: must be a string", key));
}

std::optional<bool> bool_arg(const json &args, const char *key)
{
	auto it = args.find(key);
	if (it == args.end() || it->is_null())
		return std::nullopt;
	if (!it->is_boolean())
		throw control::ControlError(fmt::format("{}: must be true or false", key));
	return it->get<bool>();
}

/* A JSON value as image_settings reads it (as a manifest's TOML value). */
config::SettingValue setting_value(const json &v)
{
	if (v.is_string())
		return config::SettingValue::of(v.get<std::string>());
	if (v.is_boolean())
		return config::SettingValue::of(v.get<bool>());
	if (v.is_number_integer() && !v.is_number_unsigned())
		return config::SettingValue::of(v.get<int64_t>());
	if (v.is_number_unsigned()) {
		uint64_t u = v.get<uint64_t>();
		if (u <= static_cast<uint64_t>(INT64_MAX))
			return config::SettingValue::of(static_cast<int64_t>(u));
		return config::SettingValue::of(std::to_string(u)); /* refused as too large */
	}
	return {};
}

/*
 * The attach request: its arguments are image settings by their names
 * (config::image_settings), read and checked as a manifest's are.
 */
config::ImageSpec attach_spec(const json &args)
{
	if (!args.is_object())
		throw control::ControlError("attach: the arguments must be an object");
	auto path = args.find("path");
	if (path == args.end() || !path->is_string() || path->get<std::string>().empty() ||
	    path->get<std::string>().front() != '/')
		throw control::ControlError("attach: the image path must be given, absolute");
	std::vector<config::WrittenSetting> written;
	for (auto it = args.begin(); it != args.end(); ++it)
		if (!it->is_null())
			written.push_back({it.key(), setting_value(*it), "attach"});
	try {
		return config::make_spec(config::read_image_settings(written, false), "attach");
	} catch (const config::ConfigError &e) {
		throw control::ControlError(e.what());
	}
}

json attach(fuse::Filesystem &fs, const json &args)
{
	config::ImageSpec spec = attach_spec(args);
	try {
		auto img = image::BackingImage::open(spec, fs.options.read_only, fs.attach_lock);
		if (fs.mount_dev != 0 && img->backing_dev() == fs.mount_dev)
			throw config::ConfigError(
				fmt::format("{}path \"{}\": is inside this cgloopfs mount",
					    config::describe("attach", spec.name), spec.path));
		uint64_t ino = image::add_image(fs.table, img);
		note_lock_state(*img);
		/* A name seen before (a detached image) must not come back from a cache. */
		fs.invalidate(ino, spec.name);
		return {{"name", spec.name},
			{"path", fs.options.mountpoint + "/" + spec.name},
			{"inode", ino},
			{"size", img->size()}};
	} catch (const config::ConfigError &e) {
		throw control::ControlError(e.what());
	}
}

json detach(fuse::Filesystem &fs, const json &args)
{
	bool lazy = bool_arg(args, "lazy").value_or(false);
	bool all = bool_arg(args, "all").value_or(false);
	std::vector<std::string> names;
	if (all) {
		for (const auto &e : fs.table.list())
			names.push_back(e.image->name());
	} else {
		auto name = string_arg(args, "name");
		if (!name)
			throw control::ControlError("detach: which image? (a name, or --all)");
		names.push_back(*name);
	}
	json detached = json::array();
	std::vector<std::string> busy;
	for (const auto &name : names) {
		auto r = fs.table.remove(name, lazy);
		if (r.ok()) {
			fs.invalidate(r->ino, name);
			detached.push_back(name);
			continue;
		}
		if (r.error() == -ENOENT)
			throw control::ControlError(fmt::format(
				"detach: image \"{}\": no such image", config::printable(name)));
		busy.push_back(name);
	}
	if (!busy.empty()) {
		std::string list;
		for (const auto &b : busy)
			list += (list.empty() ? "\"" : ", \"") + config::printable(b) + "\"";
		throw control::ControlError(fmt::format(
			"detach: image {} is open (close it first, or use --lazy to detach it "
			"on last close){}",
			list,
			detached.empty() ? ""
					 : fmt::format("; {} others detached", detached.size())));
	}
	return {{"detached", detached}};
}

json set_capacity(fuse::Filesystem &fs, const json &args)
{
	auto name = string_arg(args, "name");
	if (!name)
		throw control::ControlError("set-capacity: which image?");
	auto e = fs.table.lookup(*name);
	if (!e.ok())
		throw control::ControlError(fmt::format("set-capacity: image \"{}\": no such image",
							config::printable(*name)));
	auto r = e->image->set_capacity();
	if (!r.ok())
		throw control::ControlError(fmt::format(
			"set-capacity: image \"{}\": cannot read the size of \"{}\": {}",
			config::printable(*name), e->image->spec().path,
			std::strerror(-r.error())));
	fs.invalidate_attr(e->ino);
	return {{"name", *name}, {"size", *r}};
}

json settings_json(fuse::Filesystem &fs)
{
	auto c = fs.dispatch.config();
	return {{"idle_timeout", c.idle_timeout_ns / 1000000000},
		{"max_workers", c.max_workers},
		{"worker_depth", c.worker_depth},
		{"lock", config::lock_mode_name(fs.attach_lock)},
		{"charge", choice("charge", static_cast<size_t>(fs.charge.load()))}};
}

/*
 * `cgloopctl set`: the -o options marked runtime in config::mount_option_table,
 * read and checked as -o reads them, starting from the current values.
 */
json set_settings(fuse::Filesystem &fs, const json &args)
{
	auto it = args.find("settings");
	if (it == args.end() || !it->is_object() || it->empty())
		throw control::ControlError("set: give KEY=VALUE settings");
	auto c = fs.dispatch.config();
	config::MountOptions tmp;
	tmp.idle_timeout = static_cast<uint32_t>(c.idle_timeout_ns / 1000000000);
	tmp.max_workers = c.max_workers;
	tmp.worker_depth = c.worker_depth;
	tmp.lock = fs.attach_lock;
	tmp.charge = fs.charge.load();
	for (auto kv = it->begin(); kv != it->end(); ++kv) {
		const std::string &key = kv.key();
		const config::OptionSpec *spec = config::find_mount_option(key);
		if (!spec || !spec->runtime)
			throw control::ControlError(fmt::format("set: \"{}\" is not a setting ({})",
								config::printable(key),
								config::runtime_option_names()));
		if (!kv->is_string())
			throw control::ControlError(fmt::format("set: {}: must be a string", key));
		try {
			config::apply_option(tmp, key + "=" + kv->get<std::string>());
		} catch (const config::UsageError &e) {
			throw control::ControlError(fmt::format("set: {}", e.what()));
		}
	}
	fs.dispatch.set_limits(static_cast<int64_t>(tmp.idle_timeout) * 1000000000, tmp.max_workers,
			       tmp.worker_depth);
	fs.attach_lock = tmp.lock;   /* for images attached from now on */
	fs.charge.store(tmp.charge); /* for workers made from now on */
	return settings_json(fs);
}

json manifest_command(fuse::Filesystem &fs, const json &)
{
	return manifest_json(fs);
}

json get_command(fuse::Filesystem &fs, const json &)
{
	return settings_json(fs);
}

/* The daemon's verbs: a control request's command and its handler. */
struct ControlVerb {
	std::string_view name;
	json (*run)(fuse::Filesystem &fs, const json &args);
};

constexpr ControlVerb control_verbs[] = {
	{"workers", [](fuse::Filesystem &fs, const json &) { return workers_json(fs); }},
	{"stats", [](fuse::Filesystem &fs, const json &) { return stats_document(fs); }},
	{"status", [](fuse::Filesystem &fs, const json &) { return status_json(fs); }},
	{"list", [](fuse::Filesystem &fs, const json &) { return list_json(fs); }},
	{"manifest", manifest_command},
	{"attach", attach},
	{"detach", detach},
	{"set-capacity", set_capacity},
	{"get", get_command},
	{"set", set_settings},
};

} /* namespace */

json handle_control(const control::Request &request, const control::Peer &, fuse::Filesystem &fs)
{
	for (const auto &verb : control_verbs)
		if (verb.name == request.command)
			return verb.run(fs, request.args);
	throw control::ControlError(fmt::format("unknown command \"{}\"", request.command));
}

} /* namespace cgloopfs::daemon */
