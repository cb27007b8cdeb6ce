/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The mount point before mounting: resolved, and cleared of the dead mount a
 * killed daemon leaves behind. Main program code (logs); single-threaded use,
 * before any thread exists (it forks).
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DAEMON
#error "daemon/ is not a layer below this one (see src/meson.build)"
#endif

#include <optional>
#include <string>

namespace cgloopfs::daemon {

/* How long a FUSE mount already at the mount point has to answer statfs(2). */
constexpr int probe_timeout_ms = 3000;

/*
 * Resolve `given` to an absolute path and check what is mounted there:
 * - a cgloopfs mount whose daemon is gone ("Transport endpoint is not
 *   connected") is lazily unmounted, with a log line, and the check repeats;
 * - a live cgloopfs mount, one that does not answer, or a dead FUSE mount of
 *   another kind is refused;
 * - anything else (a directory, a mount of another kind) is fine.
 * Returns the resolved path, or nullopt with *ret_why set to one line.
 */
std::optional<std::string> prepare_mount_point(const std::string &given, std::string *ret_why);

} /* namespace cgloopfs::daemon */
