/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Is a caller being killed? The kernel sends a FUSE interrupt for any signal
 * that wakes a caller waiting on a request: a timer or SIGCHLD it catches, a
 * stop, the v1 freezer's wake-up. A regular file's read or write is not cut
 * short by those (only a fatal signal ends it), so neither is ours: the
 * daemon answers an interrupt early only for a caller that is dying.
 */
#pragma once

#include <string_view>

namespace cgloopfs {

/*
 * From the text of /proc/TID/status: a fatal signal is pending (SIGKILL,
 * which the kernel adds for any signal that ends the process, or one that
 * is pending, not blocked, not caught, not ignored and whose default action
 * ends the process), or the task is a zombie. False when the text says
 * neither (or lacks the lines).
 */
bool status_says_dying(std::string_view status) noexcept;

/*
 * Reads /proc/TID/status (TID as the daemon's pid namespace numbers it):
 * status_says_dying(), and true when the task is gone or cannot be looked
 * at, so that a caller who cannot be checked can still be interrupted.
 * Costs an open and a read: call on interrupts, not per request.
 */
bool task_dying(int tid) noexcept;

} /* namespace cgloopfs */
