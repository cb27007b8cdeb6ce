/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Placement: where a process's cgroups are, as directories of this host, so
 * that another process can be made in (or moved into) the same ones: the
 * cgroup v2 directory, and on a hybrid host the directory of each cgroup v1
 * hierarchy the process is in (blkio, memory, cpu, pids, freezer, ...).
 * Pure functions over the texts of /proc/self/mountinfo and
 * /proc/PID/cgroup, plus one reader. Reentrant.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CGROUP
#error "cgroup/ is not a layer below this one (see src/meson.build)"
#endif

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace cgloopfs::cgroup {

struct Placement {
	/* The cgroup v2 directory ("" when the host has no v2 hierarchy or the path is foreign). */
	std::string v2_dir;
	/*
	 * The v1 directories, one per hierarchy the process is in that is
	 * mounted here (named hierarchies such as name=systemd included), in
	 * the order of /proc/PID/cgroup.
	 */
	std::vector<std::string> v1_dirs;
};

/*
 * The placement a /proc/PID/cgroup text describes, with the hierarchies'
 * mount points taken from a /proc/self/mountinfo text. A v1 hierarchy is
 * found by its controllers (or name=) among the super options of the
 * "cgroup" mounts; one mounted twice is taken once. A hierarchy not mounted
 * here, or whose path lies outside the mounted root, is left out.
 */
Placement parse_placement(std::string_view mountinfo, std::string_view proc_cgroup);

/* The placement of process (or thread) `pid` now; nullopt when /proc says nothing. */
std::optional<Placement> placement_of(pid_t pid);

} /* namespace cgloopfs::cgroup */
