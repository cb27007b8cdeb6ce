/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Per-cgroup request statistics, updated by worker threads without locks
 * (relaxed atomics) and read by the control server.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DISPATCH
#error "dispatch/ is not a layer below this one (see src/meson.build)"
#endif

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "job.hpp"

namespace cgloopfs::dispatch {

/*
 * Latency histogram: 4 buckets per power of two of nanoseconds; a
 * percentile is reported as the middle of its bucket, within 12.5% of the
 * truth. Lock-free; reads are approximate
 * while writers run.
 */
class LatencyHistogram
{
public:
	static constexpr unsigned buckets = 64 * 4;

	void record(uint64_t ns);
	/* The q-quantile (0 < q <= 1) in nanoseconds; 0 when empty. */
	uint64_t quantile(double q) const;
	uint64_t count() const;
	/* The requests counted in bucket `b` (< buckets). */
	uint64_t bucket_count(unsigned b) const
	{
		return counts_[b].load(std::memory_order_relaxed);
	}

	/*
	 * The sum of the recorded values, estimated from the middles of their
	 * buckets (within 12.5%): what a mean latency needs, at no cost to record().
	 */
	uint64_t approx_sum() const;

	static unsigned bucket_of(uint64_t ns);
	static uint64_t bucket_upper(unsigned bucket);

private:
	std::array<std::atomic<uint64_t>, buckets> counts_{};
};

/*
 * How a cgroup is shown: its path, and what the host calls it (its systemd
 * unit and machine, "-" when none; see cgroup/names.hpp). From a path alone
 * (a lambda returning a std::string is a PathFn too).
 */
struct CgroupName {
	CgroupName(std::string path_ = {}) : path(std::move(path_)) {}
	CgroupName(const char *path_) : path(path_) {}
	CgroupName(std::string path_, std::string unit_, std::string machine_)
		: path(std::move(path_)), unit(std::move(unit_)), machine(std::move(machine_))
	{
	}

	std::string path;
	std::string unit = "-";
	std::string machine = "-";
};

struct CgroupStats {
	CgroupStats(uint64_t id_, CgroupName name)
		: id(id_), path(std::move(name.path)), unit(std::move(name.unit)),
		  machine(std::move(name.machine))
	{
	}

	void record(const JobOutcome &o, uint64_t latency_ns, int64_t now_ns);

	const uint64_t id;
	const std::string path;
	const std::string unit;	   /* "foo.service", or "-" */
	const std::string machine; /* "web", or "-" */
	std::atomic<uint64_t> reads{0}, writes{0}, syncs{0}, discards{0}, others{0};
	std::atomic<uint64_t> bytes_read{0}, bytes_written{0}, errors{0};
	/*
	 * Requests the dispatcher answered itself (Dispatcher::expire()): EIO at
	 * request_timeout, EINTR an interrupt_grace after their caller was
	 * interrupted. Counted off the data path, by the expirer.
	 */
	std::atomic<uint64_t> timeouts{0}, interrupted{0};
	std::atomic<int64_t> last_active_ns{0};
	LatencyHistogram latency;
};

} /* namespace cgloopfs::dispatch */
