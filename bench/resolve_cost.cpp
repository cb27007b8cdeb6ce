/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * resolve_cost: what it costs to key one request by its caller's cgroup.
 * Times each way the resolver has on a live thread: a cached pidfd asked
 * with PIDFD_GET_INFO (what the daemon does), a pidfd opened per request,
 * /proc/TID/cgroup + the cgroup directory's inode (the fallback), the path
 * for display, and a tid -> cgroup id map as the bound of what caching the
 * answer could save (a cache the daemon must not keep: tids are reused and
 * threads move).
 *
 *   resolve_cost [ITERATIONS]
 */
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include <sys/syscall.h>
#include <unistd.h>

#include "cgroup/resolver.hpp"

using namespace cgloopfs;

namespace {

template <typename F> double ns_per_call(long n, F &&f)
{
	volatile uint64_t sink = 0;
	auto t0 = std::chrono::steady_clock::now();
	for (long i = 0; i < n; i++)
		sink = sink + f();
	auto t1 = std::chrono::steady_clock::now();
	(void)sink;
	return std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(n);
}

} /* namespace */

int main(int argc, char **argv)
{
	long n = argc > 1 ? std::atol(argv[1]) : 200000;
	cgroup::Resolver r;
	pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
	std::printf("cgroup2 at %s, method %s, %ld iterations\n", r.mount_point().c_str(),
		    r.method() == cgroup::Method::pidfd_info  ? "pidfd_info"
		    : r.method() == cgroup::Method::proc_file ? "proc_file"
							      : "none",
		    n);
	double pidfd = ns_per_call(n, [&] { return r.id_by_pidfd(tid); });
	double cached_pidfd = ns_per_call(n, [&] { return r.id_by_cached_pidfd(tid); });
	double full = ns_per_call(n, [&] { return r.cgroup_id(tid); });
	double proc = ns_per_call(n / 4, [&] { return r.id_by_proc(tid); });
	double path = ns_per_call(n / 4, [&] { return r.path(tid).size(); });
	std::unordered_map<pid_t, uint64_t> cache;
	double cached = ns_per_call(n, [&] {
		auto it = cache.find(tid);
		if (it != cache.end())
			return it->second;
		return cache[tid] = r.id_by_pidfd(tid);
	});
	std::printf("%-34s %8.0f ns\n", "cgroup_id() as the daemon calls it", full);
	std::printf("%-34s %8.0f ns\n", "cached pidfd + PIDFD_GET_INFO", cached_pidfd);
	std::printf("%-34s %8.0f ns\n", "pidfd_open + GET_INFO + close", pidfd);
	std::printf("%-34s %8.0f ns\n", "/proc/TID/cgroup + stat (fallback)", proc);
	std::printf("%-34s %8.0f ns\n", "path for display (new workers)", path);
	std::printf("%-34s %8.0f ns\n", "per-tid cache hit (unsafe, bound)", cached);
	return 0;
}
