/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Parsers for the /proc files that describe cgroups: pure functions over
 * text, reentrant, unit-tested on pure-v2 and hybrid samples.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CGROUP
#error "cgroup/ is not a layer below this one (see src/meson.build)"
#endif

#include <optional>
#include <string>
#include <string_view>

namespace cgloopfs::cgroup {

/*
 * The mount point of the cgroup2 file system in a /proc/self/mountinfo text
 * (/sys/fs/cgroup on pure v2, /sys/fs/cgroup/unified on hybrid hosts).
 * Mount points are unescaped (\040 is a space).
 */
std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo);

/*
 * The cgroup v2 path in a /proc/PID/cgroup text: the "0::PATH" line.
 * nullopt when there is none (no v2 hierarchy) or the path is not absolute.
 */
std::optional<std::string> parse_v2_path(std::string_view proc_cgroup);

/*
 * True when `path` is usable below the cgroup2 mount: absolute, and not
 * outside our cgroup namespace ("/../x" from a foreign namespace).
 */
bool path_is_reachable(std::string_view path);

} /* namespace cgloopfs::cgroup */
