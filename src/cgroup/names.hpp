/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the host calls a cgroup: its systemd unit and its machine (container
 * or VM, as systemd-machined names it), for `cgloopctl workers` and `stats`
 * and the daemon's log lines. Reentrant.
 *
 * libsystemd is asked first (sd_pid_get_unit, sd_pid_get_user_unit,
 * sd_pid_get_machine_name) where systemd manages the host (sd_booted()).
 * Where it says nothing (systemd does not manage
 * the host, or the cgroup lies below a part of the tree systemd does not
 * name, such as a delegated subtree), the names are read from the cgroup
 * path as systemd lays it out: after any leading components that are not
 * unit names, slices ("machine.slice", "user-1000.slice"), then the unit
 * ("foo.service", "machine-web.scope"); below a user manager
 * ("user@1000.service") its slices and its unit again. A scope
 * "machine-NAME.scope" in "machine.slice" is the machine NAME (systemd's
 * \xNN escapes undone: "machine-qemu\x2d1\x2dvm.scope" is "qemu-1-vm").
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CGROUP
#error "cgroup/ is not a layer below this one (see src/meson.build)"
#endif

#include <string>
#include <string_view>

#include <sys/types.h>

namespace cgloopfs::cgroup {

/* "-" where there is no name. */
inline constexpr const char *no_name = "-";

struct SystemdNames {
	/*
	 * The unit as systemd spells it ("foo.service"); for a unit of a user's
	 * manager, the manager's unit and the user unit:
	 * "user@1000.service/app-podman.scope".
	 */
	std::string unit = no_name;
	std::string machine = no_name; /* "web" */
};

/*
 * Whether `name` is a unit name as systemd writes them: [A-Za-z0-9:_.@-]
 * and \xNN escapes, a known type suffix, at most 255 bytes. Such a name has
 * no byte a terminal would act on.
 */
bool is_unit_name(std::string_view name);

/* A unit name's \xNN escapes undone ("qemu\x2d1" -> "qemu-1"). */
std::string unescape_unit_name(std::string_view name);

/* The names read from a cgroup v2 path ("/machine.slice/machine-web.scope/x"). */
SystemdNames names_from_path(std::string_view path);

/* The names of thread `tid`, whose cgroup v2 path is `path`: libsystemd, then the path. */
SystemdNames names_of(pid_t tid, std::string_view path);

} /* namespace cgloopfs::cgroup */
