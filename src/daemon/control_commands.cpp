/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "control_commands.hpp"

#include <config.h>

#include <cstring>
#include <optional>

#include <sys/prctl.h>

#include <fmt/core.h>

#include "config/manifest.hpp"
#include "config/units.hpp"
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
			{"root", w.root},
			{"state", w.state == dispatch::WorkerState::active ? "active" : "idle"},
			{"queued", w.queued},
			{"in_flight", w.in_flight},
			{"threads", w.threads},
			{"served", w.served},
			{"idle_seconds", seconds_since(w.last_active_ns, now)},
		});
	}
	return out;
}

json stats_json(fuse::Filesystem &fs)
{
	dispatch::SteadyClock clock;
	int64_t now = clock.now_ns();
	json live = json::object();
	for (const auto &w : fs.dispatch.workers())
		live[std::to_string(w.cgroup_id)] = true;
	json cgroups = json::array();
	for (const auto &s : fs.dispatch.stats()) {
		constexpr auto r = std::memory_order_relaxed;
		cgroups.push_back({
			{"cgroup", s->id == 0 ? "(root queue)" : (s->path.empty() ? "?" : s->path)},
			{"cgroup_id", s->id},
			{"worker", live.contains(std::to_string(s->id))},
			{"reads", s->reads.load(r)},
			{"writes", s->writes.load(r)},
			{"syncs", s->syncs.load(r)},
			{"discards", s->discards.load(r)},
			{"bytes_read", s->bytes_read.load(r)},
			{"bytes_written", s->bytes_written.load(r)},
			{"errors", s->errors.load(r)},
			{"latency_p50_us", static_cast<double>(s->latency.quantile(0.50)) / 1e3},
			{"latency_p99_us", static_cast<double>(s->latency.quantile(0.99)) / 1e3},
			{"idle_seconds", seconds_since(s->last_active_ns.load(r), now)},
		});
	}
	auto t = fs.dispatch.totals();
	return {
		{"cgroups", cgroups},
		{"workers_created", t.workers_created},
		{"workers_reaped", t.workers_reaped},
		{"root_fallbacks", t.root_fallbacks},
		{"spawn_failures", t.spawn_failures},
		{"timeouts", t.timeouts},
		{"interrupted", t.interrupted},
		{"queued_write_buffers", fs.payloads.parked()},
		{"max_queued_write_buffers", fs.payloads.max_parked()},
	};
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
		{"dispatch", o.dispatch == config::DispatchMode::cgroup ? "cgroup" : "single"},
		{"cache", o.cache == config::CacheMode::direct ? "direct" : "kernel"},
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
	return {{"text", config::format_manifest(specs)}};
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

/* The attach request as image settings, validated as a manifest's are. */
config::ImageSpec attach_spec(const json &args)
{
	config::ImageSettings s;
	auto path = string_arg(args, "path");
	if (!path || path->empty() || path->front() != '/')
		throw control::ControlError("attach: the image path must be given, absolute");
	s.path = *path;
	s.name = string_arg(args, "name");
	std::string who = config::describe("attach", s.name.value_or(""));
	auto size_of = [&](const char *key, const char *setting) -> std::optional<uint64_t> {
		auto v = string_arg(args, key);
		if (!v)
			return std::nullopt;
		std::string why;
		auto n = config::parse_size(*v, &why);
		if (!n)
			throw control::ControlError(
				fmt::format("{}{}: \"{}\": {}", who, setting, *v, why));
		return n;
	};
	s.offset = size_of("offset", "offset");
	s.size_limit = size_of("sizelimit", "size_limit");
	if (auto bs = size_of("sector_size", "block_size")) {
		if (!config::valid_block_size(*bs))
			throw control::ControlError(fmt::format(
				"{}block_size: {} is not a power of two in 512..4096", who, *bs));
		s.block_size = static_cast<uint32_t>(*bs);
	}
	s.read_only = bool_arg(args, "read_only");
	s.direct_io = bool_arg(args, "direct_io");
	s.discard = bool_arg(args, "discard");
	if (auto l = string_arg(args, "lock")) {
		s.lock = config::parse_lock_mode(*l);
		if (!s.lock)
			throw control::ControlError(fmt::format(
				"{}lock: \"{}\": must be \"auto\", \"on\" or \"off\"", who,
				config::printable(*l)));
	}
	if (auto m = string_arg(args, "mode")) {
		std::string why;
		auto v = config::parse_mode(*m, &why);
		if (!v)
			throw control::ControlError(fmt::format("{}mode: \"{}\": {}", who, *m, why));
		s.mode = *v;
	}
	for (auto [key, slot] : {std::pair{"uid", &s.uid}, std::pair{"gid", &s.gid}}) {
		if (auto v = string_arg(args, key)) {
			std::string why;
			auto n = config::parse_uint(*v, 0, UINT32_MAX - 1, &why);
			if (!n)
				throw control::ControlError(
					fmt::format("{}{}: \"{}\": {}", who, key, *v, why));
			*slot = static_cast<uint32_t>(*n);
		}
	}
	try {
		return config::make_spec(s, "attach");
	} catch (const config::ConfigError &e) {
		throw control::ControlError(e.what());
	}
}

json attach(fuse::Filesystem &fs, const json &args)
{
	config::ImageSpec spec = attach_spec(args);
	try {
		auto img = image::BackingImage::open(spec, fs.options.read_only, fs.options.lock);
		if (fs.mount_dev != 0 && img->backing_dev() == fs.mount_dev)
			throw config::ConfigError(fmt::format(
				"{}path \"{}\": is inside this cgloopfs mount",
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
			list, detached.empty() ? "" : fmt::format("; {} others detached", detached.size())));
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
			config::printable(*name), e->image->spec().path, std::strerror(-r.error())));
	fs.invalidate_attr(e->ino);
	return {{"name", *name}, {"size", *r}};
}

json settings_json(fuse::Filesystem &fs)
{
	auto c = fs.dispatch.config();
	return {{"idle_timeout", c.idle_timeout_ns / 1000000000},
		{"max_workers", c.max_workers},
		{"worker_depth", c.worker_depth}};
}

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
	for (auto kv = it->begin(); kv != it->end(); ++kv) {
		const std::string &key = kv.key();
		if (key != "idle_timeout" && key != "max_workers" && key != "worker_depth")
			throw control::ControlError(fmt::format(
				"set: \"{}\" is not a setting (idle_timeout, max_workers, "
				"worker_depth)",
				config::printable(key)));
		if (!kv->is_string())
			throw control::ControlError(fmt::format("set: {}: must be a string", key));
		try {
			config::apply_option_string(tmp, key + "=" + kv->get<std::string>());
		} catch (const config::UsageError &e) {
			throw control::ControlError(fmt::format("set: {}", e.what()));
		}
	}
	fs.dispatch.set_limits(static_cast<int64_t>(tmp.idle_timeout) * 1000000000,
			       tmp.max_workers, tmp.worker_depth);
	return settings_json(fs);
}

} /* namespace */

json handle_control(const control::Request &request, const control::Peer &, fuse::Filesystem &fs)
{
	if (request.command == "workers")
		return workers_json(fs);
	if (request.command == "stats")
		return stats_json(fs);
	if (request.command == "status")
		return status_json(fs);
	if (request.command == "list")
		return list_json(fs);
	if (request.command == "manifest")
		return manifest_json(fs);
	if (request.command == "attach")
		return attach(fs, request.args);
	if (request.command == "detach")
		return detach(fs, request.args);
	if (request.command == "set-capacity")
		return set_capacity(fs, request.args);
	if (request.command == "get")
		return settings_json(fs);
	if (request.command == "set")
		return set_settings(fs, request.args);
	throw control::ControlError(fmt::format("unknown command \"{}\"", request.command));
}

} /* namespace cgloopfs::daemon */
