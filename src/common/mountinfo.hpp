/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * /proc/self/mountinfo, parsed: pure parser plus one reader. Reentrant.
 */
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace cgloopfs {

struct MountEntry {
	std::string mountpoint; /* unescaped (\040 is a space) */
	std::string fstype;	/* "cgroup2", "fuse.cgloopfs" */
	std::string source;
	unsigned major = 0, minor = 0; /* the st_dev of files on it */
	std::string root;	       /* the directory of the file system mounted there */
	std::string super_options;     /* "rw,blkio" for a cgroup v1 hierarchy */
};

/* The entries of a mountinfo text, in order; malformed lines are skipped. */
std::vector<MountEntry> parse_mountinfo(std::string_view text);

/* The text of /proc/self/mountinfo ("" when it cannot be read). */
std::string read_mountinfo();

/* The mount seen at `path` (the last one mounted there), or nullptr. */
const MountEntry *top_mount_at(const std::vector<MountEntry> &entries, std::string_view path);

/* Is a file system of device major:minor mounted anywhere in `entries`? */
bool has_device(const std::vector<MountEntry> &entries, unsigned major, unsigned minor);

/*
 * Detach the mount at `path` (umount2 MNT_DETACH, not following a symlink);
 * without the privilege for that, through "fusermount3 -u -z", which lets a
 * user unmount the FUSE mounts they made. Returns 0 or -errno.
 */
int unmount_lazily(const std::string &path);

/*
 * Take away a dead mount: lazily unmount the mount seen at `path` if it is
 * still the file system of device `dev` (a FUSE mount whose daemon is gone
 * or whose connection was aborted), and nothing else. Returns 0, -EBUSY
 * when another mount (or none) is seen at `path` now, or unmount_lazily()'s
 * -errno. The one way cgloopfs clears a dead mount, at start and at exit
 * (and detaches its own at an unclean shutdown, keeping the device open).
 */
int unmount_dead_mount(const std::string &path, dev_t dev);

} /* namespace cgloopfs */
