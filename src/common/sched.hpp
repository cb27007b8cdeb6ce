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
void request_short_slice() noexcept;

/*
 * Lower (true) or restore (false) the calling thread's CPU priority: a
 * worker busy with several requests of one cgroup runs at nice 10, so a
 * worker that wakes for a lone request of another cgroup gets the CPU
 * first. Returns the state now in effect (restoring needs CAP_SYS_NICE;
 * without it the thread stays lowered, and later calls make no syscall).
 */
bool yield_cpu(bool lower) noexcept;

} /* namespace cgloopfs */
