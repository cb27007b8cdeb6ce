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

/*
 * The cgroups whose pids.max bounds a process that moves into the cgroup
 * at `dir`: `dir` and its ancestors, up to its hierarchy's root, that have
 * a pids.max file (on cgroup v2 a cgroup without the controller is bounded
 * by its ancestors'), less those that also hold one of `from` (a process
 * moving in from there is counted in them already). Moving a process into
 * a cgroup is not forking it: the kernel lets it in over pids.max, so
 * whoever moves one checks these (pids_room).
 */
std::vector<std::string> pids_limits(std::string dir, const std::vector<std::string> &from);

/*
 * Room in each of `dirs` for `more` processes besides those counted now
 * (pids.current + more <= pids.max)? A limit that cannot be read is no limit.
 */
bool pids_room(const std::vector<std::string> &dirs, unsigned more);

/*
 * The cpu cgroup that schedules a process placed so: the v1 directory that
 * has a cpu.shares file (the cpu hierarchy's, root included), else the
 * nearest of the v2 directory and its ancestors that has a cpu.weight
 * file; "" when neither (no cpu controller applies). Two processes whose
 * cpu groups differ compete as groups: a sched_yield() of one lets only
 * the others of its own group run.
 */
std::string cpu_group(const Placement &place);

} /* namespace cgloopfs::cgroup */
