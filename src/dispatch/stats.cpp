/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "stats.hpp"

#include <bit>
#include <cmath>

namespace cgloopfs::dispatch {

unsigned LatencyHistogram::bucket_of(uint64_t ns)
{
	if (ns < 4)
		return static_cast<unsigned>(ns);
	unsigned log = 63 - static_cast<unsigned>(std::countl_zero(ns)); /* >= 2 */
	unsigned sub = static_cast<unsigned>((ns >> (log - 2)) & 3);
	return log * 4 + sub - 4;
}

uint64_t LatencyHistogram::bucket_upper(unsigned b)
{
	if (b < 4)
		return b;
	unsigned log = (b + 4) / 4;
	unsigned sub = (b + 4) % 4;
	/* Values in this bucket are (4 + sub) << (log - 2) up to one below the next. */
	uint64_t lo = static_cast<uint64_t>(4 + sub) << (log - 2);
	return lo + (1ULL << (log - 2)) - 1;
}

void LatencyHistogram::record(uint64_t ns)
{
	counts_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const
{
	uint64_t n = 0;
	for (const auto &c : counts_)
		n += c.load(std::memory_order_relaxed);
	return n;
}

namespace {

/* The middle of fine bucket `b`: within 12.5% of any value in it. */
uint64_t bucket_middle(unsigned b)
{
	uint64_t hi = LatencyHistogram::bucket_upper(b);
	uint64_t lo = b == 0 ? 0 : LatencyHistogram::bucket_upper(b - 1) + 1;
	return lo + (hi - lo) / 2;
}

} /* namespace */

uint64_t LatencyHistogram::approx_sum() const
{
	uint64_t sum = 0;
	for (unsigned b = 0; b < buckets; b++)
		sum += counts_[b].load(std::memory_order_relaxed) * bucket_middle(b);
	return sum;
}

uint64_t LatencyHistogram::quantile(double q) const
{
	uint64_t total = count();
	if (total == 0)
		return 0;
	uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
	if (rank == 0)
		rank = 1;
	/* The middle of the bucket the rank falls in. */
	uint64_t seen = 0;
	for (unsigned b = 0; b < buckets; b++) {
		seen += counts_[b].load(std::memory_order_relaxed);
		if (seen >= rank)
			return bucket_middle(b);
	}
	return bucket_middle(buckets - 1);
}

void CgroupStats::record(const JobOutcome &o, uint64_t latency_ns, int64_t now_ns)
{
	constexpr auto relaxed = std::memory_order_relaxed;
	switch (o.kind) {
	case JobKind::read:
		reads.fetch_add(1, relaxed);
		bytes_read.fetch_add(o.bytes, relaxed);
		break;
	case JobKind::write:
		writes.fetch_add(1, relaxed);
		bytes_written.fetch_add(o.bytes, relaxed);
		break;
	case JobKind::sync:
		syncs.fetch_add(1, relaxed);
		break;
	case JobKind::discard:
		discards.fetch_add(1, relaxed);
		break;
	case JobKind::other:
		others.fetch_add(1, relaxed);
		break;
	case JobKind::uncounted:
		return;
	}
	if (o.failed)
		errors.fetch_add(1, relaxed);
	latency.record(latency_ns);
	last_active_ns.store(now_ns, relaxed);
}

} /* namespace cgloopfs::dispatch */
