/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Scheduling hints for the daemon's I/O threads.
 */
#pragma once

namespace cgloopfs {

/*
 * Ask the scheduler for a short time slice for the calling thread (EEVDF's
 * custom slice, Linux 6.12+): a thread that wakes for one small request then
 * runs before threads busy with bulk copies, so a light cgroup's requests are
 * not held up behind a heavy one's on the CPU. Best effort: older kernels
 * ignore it.
 */
bool request_short_slice() noexcept;

/*
 * Run the calling thread at SCHED_IDLE: it gets a CPU only when no other
 * task wants it, and a cpu cgroup that holds only such threads weighs next
 * to nothing against other groups. False when the policy could not be set.
 */
bool enter_idle_policy() noexcept;

/*
 * Back to SCHED_OTHER, with a short slice where the kernel takes one (a
 * kernel or a filter without sched_setattr: without). Leaving SCHED_IDLE
 * needs CAP_SYS_NICE (or an RLIMIT_NICE of 20). False when it could not.
 */
bool leave_idle_policy() noexcept;

/*
 * Lower (true) or restore (false) the calling thread's CPU priority: a
 * worker busy with several requests of one cgroup runs at nice 10, so a
 * worker that wakes for a lone request of another cgroup gets the CPU
 * first. Returns the state now in effect (restoring needs CAP_SYS_NICE;
 * without it the thread stays lowered, and later calls make no syscall).
 */
bool yield_cpu(bool lower) noexcept;

} /* namespace cgloopfs */
