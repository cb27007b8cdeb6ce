/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "sched.hpp"

#include <cstdint>

#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace cgloopfs {

namespace {

/* struct sched_attr of linux/sched/types.h, whose header clashes with glibc's. */
struct SchedAttr {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};
static_assert(sizeof(SchedAttr) == 56, "SCHED_ATTR_SIZE_VER1");

} /* namespace */

bool request_short_slice() noexcept
{
	SchedAttr attr{};
	attr.size = sizeof(attr);
	attr.sched_policy = SCHED_OTHER;
	attr.sched_runtime = 100 * 1000; /* ns: the shortest slice the kernel takes */
	return syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
}

bool enter_idle_policy() noexcept
{
	struct sched_param param = {};
	return sched_setscheduler(0, SCHED_IDLE, &param) == 0;
}

bool leave_idle_policy() noexcept
{
	if (request_short_slice())
		return true;
	struct sched_param param = {};
	return sched_setscheduler(0, SCHED_OTHER, &param) == 0;
}

bool yield_cpu(bool lower) noexcept
{
	constexpr int heavy_nice = 10;
	/* Restoring failed once (no CAP_SYS_NICE): the thread stays lowered, ask no more. */
	thread_local bool stuck = false;
	if (stuck)
		return true;
	pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
	if (setpriority(PRIO_PROCESS, static_cast<id_t>(tid), lower ? heavy_nice : 0) == 0)
		return lower;
	if (!lower)
		stuck = true;
	return !lower;
}

} /* namespace cgloopfs */
