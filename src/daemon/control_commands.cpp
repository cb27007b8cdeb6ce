/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "control_commands.hpp"

#include <config.h>

#include <fmt/core.h>

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
		{"open_handles", fs.open_handles.load()},
		{"dispatch", o.dispatch == config::DispatchMode::cgroup ? "cgroup" : "single"},
		{"cache", o.cache == config::CacheMode::direct ? "direct" : "kernel"},
		{"idle_timeout", fs.dispatch.config().idle_timeout_ns / 1000000000},
		{"max_workers", fs.dispatch.config().max_workers},
		{"worker_depth", fs.dispatch.config().worker_depth},
	};
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
	throw control::ControlError(fmt::format("unknown command \"{}\"", request.command));
}

} /* namespace cgloopfs::daemon */
