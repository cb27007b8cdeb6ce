/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "exposition.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>
#include <utility>

#include <prometheus/text_serializer.h>

namespace cgloopfs::metrics {

namespace {

using nlohmann::json;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

constexpr size_t n_buckets = latency_bounds.size() + 1; /* and +Inf */

/* Everything exported of one cgroup series (several cgroups when their labels collide). */
struct Figures {
	uint64_t reads = 0, writes = 0, syncs = 0, discards = 0, others = 0;
	uint64_t bytes_read = 0, bytes_written = 0;
	uint64_t errors = 0, timeouts = 0, interrupted = 0;
	uint64_t queued = 0, in_flight = 0;
	bool worker = false;
	std::array<uint64_t, n_buckets> buckets{}; /* not cumulative */
	uint64_t latency_sum_ns = 0;
};

/* The exported bucket of a fine bucket whose values go up to `upper_ns`. */
size_t bucket_index(uint64_t upper_ns)
{
	for (size_t i = 0; i < latency_bounds.size(); i++)
		if (static_cast<double>(upper_ns) <= std::round(latency_bounds[i] * 1e9))
			return i;
	return latency_bounds.size();
}

uint64_t u64(const json &o, const char *key)
{
	auto it = o.find(key);
	if (it == o.end() || it->is_null())
		return 0;
	return it->get<uint64_t>();
}

/* A name ("unit", "machine") given by the daemon, or "-" when it has none. */
std::string name_label(const json &o, const char *key)
{
	auto it = o.find(key);
	if (it == o.end() || !it->is_string() || it->get<std::string>().empty())
		return "-";
	return label_value(it->get<std::string>());
}

void add(Figures &f, const json &c)
{
	f.reads += u64(c, "reads");
	f.writes += u64(c, "writes");
	f.syncs += u64(c, "syncs");
	f.discards += u64(c, "discards");
	f.others += u64(c, "others");
	f.bytes_read += u64(c, "bytes_read");
	f.bytes_written += u64(c, "bytes_written");
	f.errors += u64(c, "errors");
	f.timeouts += u64(c, "timeouts");
	f.interrupted += u64(c, "interrupted");
	f.queued += u64(c, "queued");
	f.in_flight += u64(c, "in_flight");
	f.worker = f.worker || c.value("worker", false);
	f.latency_sum_ns += u64(c, "latency_sum_ns");
	if (auto b = c.find("latency_buckets"); b != c.end())
		for (const auto &pair : *b)
			f.buckets[bucket_index(pair.at(0).get<uint64_t>())] +=
				pair.at(1).get<uint64_t>();
}

/*
 * Builds families in a fixed order, each sample with the labels it is
 * given. A family's reference stays valid while others are added (a deque).
 */
class Builder
{
public:
	MetricFamily &family(const char *name, const char *help, MetricType type)
	{
		out_.push_back(MetricFamily{name, help, type, {}});
		return out_.back();
	}

	static ClientMetric &sample(MetricFamily &f, Labels labels)
	{
		f.metric.emplace_back();
		f.metric.back().label = std::move(labels);
		return f.metric.back();
	}

	static void counter(MetricFamily &f, Labels labels, uint64_t v)
	{
		sample(f, std::move(labels)).counter.value = static_cast<double>(v);
	}

	static void gauge(MetricFamily &f, Labels labels, double v)
	{
		sample(f, std::move(labels)).gauge.value = v;
	}

	std::vector<MetricFamily> take()
	{
		return {std::make_move_iterator(out_.begin()), std::make_move_iterator(out_.end())};
	}

private:
	std::deque<MetricFamily> out_;
};

Labels with(Labels labels, const char *name, std::string value)
{
	labels.push_back({name, std::move(value)});
	return labels;
}

using CgroupKey = std::tuple<std::string, std::string, std::string>; /* cgroup, unit, machine */

void cgroup_families(Builder &b, const Labels &mount,
		     const std::vector<std::pair<CgroupKey, Figures>> &cgroups)
{
	auto &requests = b.family("cgloopfs_cgroup_requests_total",
				  "Requests served, by operation.", MetricType::Counter);
	auto &bytes = b.family("cgloopfs_cgroup_bytes_total", "Bytes read and written.",
			       MetricType::Counter);
	auto &errors = b.family("cgloopfs_cgroup_errors_total", "Requests answered with an error.",
				MetricType::Counter);
	auto &timeouts = b.family("cgloopfs_cgroup_timeouts_total",
				  "Requests answered EIO at request_timeout.", MetricType::Counter);
	auto &interrupts =
		b.family("cgloopfs_cgroup_interrupts_total",
			 "Running requests answered EINTR after their caller was interrupted.",
			 MetricType::Counter);
	auto &latency =
		b.family("cgloopfs_cgroup_request_duration_seconds",
			 "Time from queueing a request to its answer.", MetricType::Histogram);
	auto &queued = b.family("cgloopfs_cgroup_queued_requests",
				"Requests waiting in the cgroup's queue.", MetricType::Gauge);
	auto &in_flight = b.family("cgloopfs_cgroup_in_flight_requests",
				   "Requests the cgroup's worker is serving.", MetricType::Gauge);
	auto &worker = b.family("cgloopfs_cgroup_worker",
				"1 while the cgroup has a worker (0: reaped, or none was made).",
				MetricType::Gauge);

	for (const auto &[key, f] : cgroups) {
		Labels l = mount;
		l.push_back({"cgroup", std::get<0>(key)});
		l.push_back({"unit", std::get<1>(key)});
		l.push_back({"machine", std::get<2>(key)});
		const std::pair<const char *, uint64_t> ops[] = {{"read", f.reads},
								 {"write", f.writes},
								 {"sync", f.syncs},
								 {"discard", f.discards},
								 {"other", f.others}};
		for (const auto &[op, n] : ops)
			Builder::counter(requests, with(l, "op", op), n);
		Builder::counter(bytes, with(l, "op", "read"), f.bytes_read);
		Builder::counter(bytes, with(l, "op", "write"), f.bytes_written);
		Builder::counter(errors, l, f.errors);
		Builder::counter(timeouts, l, f.timeouts);
		Builder::counter(interrupts, l, f.interrupted);

		auto &h = Builder::sample(latency, l).histogram;
		uint64_t cumulative = 0;
		for (size_t i = 0; i < n_buckets; i++) {
			cumulative += f.buckets[i];
			double bound = i < latency_bounds.size()
					       ? latency_bounds[i]
					       : std::numeric_limits<double>::infinity();
			h.bucket.push_back({cumulative, bound});
		}
		h.sample_count = cumulative;
		h.sample_sum = static_cast<double>(f.latency_sum_ns) / 1e9;

		Builder::gauge(queued, l, static_cast<double>(f.queued));
		Builder::gauge(in_flight, l, static_cast<double>(f.in_flight));
		Builder::gauge(worker, l, f.worker ? 1 : 0);
	}
}

void mount_families(Builder &b, const Labels &mount, const json &stats, size_t tracked,
		    size_t exported)
{
	auto gauge = [&](const char *name, const char *help, double v) {
		Builder::gauge(b.family(name, help, MetricType::Gauge), mount, v);
	};
	auto counter = [&](const char *name, const char *help, const char *key) {
		Builder::counter(b.family(name, help, MetricType::Counter), mount, u64(stats, key));
	};
	gauge("cgloopfs_workers", "Live cgroup workers (the root queue not counted).",
	      static_cast<double>(u64(stats, "workers")));
	counter("cgloopfs_workers_created_total", "Cgroup workers made.", "workers_created");
	counter("cgloopfs_workers_reaped_total", "Cgroup workers reaped after idle_timeout.",
		"workers_reaped");
	counter("cgloopfs_worker_spawn_failures_total", "Cgroup workers that could not be made.",
		"spawn_failures");
	counter("cgloopfs_root_fallbacks_total",
		"Requests of a known cgroup served by the root queue (max_workers reached, or "
		"no worker could be made).",
		"root_fallbacks");
	counter("cgloopfs_timeouts_total", "Requests answered EIO at request_timeout.", "timeouts");
	counter("cgloopfs_interrupts_total",
		"Running requests answered EINTR after their caller was interrupted.",
		"interrupted");
	gauge("cgloopfs_queued_write_bytes",
	      "Write payloads waiting in the queues (buffers of 1 MiB each).",
	      static_cast<double>(u64(stats, "queued_write_bytes")));
	gauge("cgloopfs_queued_write_limit_bytes", "The cap on queued write payloads (max_queued).",
	      static_cast<double>(u64(stats, "max_queued_write_bytes")));
	gauge("cgloopfs_cgroups_tracked", "Cgroups with statistics (at most max_stats).",
	      static_cast<double>(tracked));
	gauge("cgloopfs_cgroups_exported",
	      "Cgroup series exported here (cgroups with a worker or active in the last 5 "
	      "minutes).",
	      static_cast<double>(exported));
}

void image_families(Builder &b, const Labels &mount, const json &stats)
{
	auto &size =
		b.family("cgloopfs_image_size_bytes", "The size of an image.", MetricType::Gauge);
	auto &open = b.family("cgloopfs_image_open_handles", "Open files of an image.",
			      MetricType::Gauge);
	auto it = stats.find("images");
	if (it == stats.end())
		return;
	std::map<std::string, std::pair<uint64_t, uint64_t>> images; /* image names are unique */
	for (const auto &img : *it) {
		auto &v = images[label_value(img.value("name", ""))];
		v.first += u64(img, "size");
		v.second += u64(img, "open");
	}
	for (const auto &[name, v] : images) {
		Labels l = with(mount, "image", name);
		Builder::gauge(size, l, static_cast<double>(v.first));
		Builder::gauge(open, l, static_cast<double>(v.second));
	}
}

bool ascii(std::string_view s)
{
	return std::all_of(s.begin(), s.end(), [](char c) { return (c & 0x80) == 0; });
}

} /* namespace */

std::string label_value(std::string_view raw)
{
	if (ascii(raw))
		return std::string(raw);
	/* The control protocol's own replacement (control/protocol.cpp's replies). */
	std::string dumped =
		json(std::string(raw)).dump(-1, ' ', false, json::error_handler_t::replace);
	return json::parse(dumped).get<std::string>();
}

std::vector<prometheus::MetricFamily> families(const json &stats)
{
	Labels mount = {{"mountpoint", label_value(stats.value("mountpoint", ""))}};
	std::map<CgroupKey, Figures> merged;
	size_t tracked = 0;
	const json empty = json::array();
	auto it = stats.find("cgroups");
	for (const auto &c : it == stats.end() ? empty : *it) {
		tracked++;
		bool worker = c.value("worker", false);
		if (!worker && c.value("idle_seconds", 0.0) >= export_idle_seconds)
			continue;
		CgroupKey key{label_value(c.value("cgroup", "?")), name_label(c, "unit"),
			      name_label(c, "machine")};
		add(merged[key], c);
	}
	std::vector<std::pair<CgroupKey, Figures>> cgroups(merged.begin(), merged.end());

	Builder b;
	cgroup_families(b, mount, cgroups);
	mount_families(b, mount, stats, tracked, cgroups.size());
	image_families(b, mount, stats);
	return b.take();
}

std::string text_format(const std::vector<prometheus::MetricFamily> &families)
{
	std::ostringstream out;
	prometheus::TextSerializer().Serialize(out, families);
	return out.str();
}

} /* namespace cgloopfs::metrics */
