/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgroup/proc_cgroup: find_cgroup2_mount on pure-v2 and hybrid mountinfo
 * samples, parse_v2_path on /proc/PID/cgroup samples, path_is_reachable.
 * common/mountinfo: the mount seen at a path, a device still mounted.
 */
#include <fstream>
#include <sstream>
#include <string>

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "cgroup/proc_cgroup.hpp"
#include "common/mountinfo.hpp"

using namespace cgloopfs::cgroup;

namespace {

/* A pure cgroup v2 host (systemd, unified hierarchy), with optional fields. */
const char *const pure_v2_mountinfo =
	"22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"23 28 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw\n"
	"24 28 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=8123456k\n"
	"28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n"
	"26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 "
	"cgroup2 rw,nsdelegate,memory_recursiveprot\n"
	"27 22 0:25 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:10 - pstore pstore "
	"rw\n"
	"30 22 0:27 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:11 - bpf bpf "
	"rw,mode=700\n";

/* The shape of these machines: v1 controllers, and cgroup2 at .../unified. */
const char *const hybrid_mountinfo =
	"22 27 0:21 / /proc rw,relatime - proc proc rw\n"
	"23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n"
	"24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334524k,nr_inodes=3083631,"
	"mode=755\n"
	"25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684096k\n"
	"26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000\n"
	"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard\n"
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
	"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n"
	"37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
	"38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio\n"
	"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

/* Only v1 hierarchies: no cgroup2 anywhere. */
const char *const v1_only_mountinfo =
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n";

std::string slurp(const char *path)
{
	std::ifstream in(path);
	std::ostringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

} /* namespace */

TEST_CASE("find_cgroup2_mount: pure v2")
{
	CHECK(find_cgroup2_mount(pure_v2_mountinfo) == "/sys/fs/cgroup");
}

TEST_CASE("find_cgroup2_mount: hybrid (v1 controllers, cgroup2 at unified)")
{
	CHECK(find_cgroup2_mount(hybrid_mountinfo) == "/sys/fs/cgroup/unified");
}

TEST_CASE("find_cgroup2_mount: none present")
{
	CHECK_FALSE(find_cgroup2_mount(v1_only_mountinfo).has_value());
	CHECK_FALSE(find_cgroup2_mount("").has_value());
	CHECK_FALSE(find_cgroup2_mount("\n\n").has_value());
	/* "cgroup2" as the source or in the options is not the type. */
	CHECK_FALSE(find_cgroup2_mount("50 1 0:40 / /mnt/x rw - tmpfs cgroup2 rw\n").has_value());
	CHECK_FALSE(
		find_cgroup2_mount("50 1 0:40 / /mnt/x rw - tmpfs tmpfs rw,cgroup2\n").has_value());
	CHECK_FALSE(find_cgroup2_mount("50 1 0:40 / /cgroup2 rw - tmpfs tmpfs rw\n").has_value());
}

TEST_CASE("find_cgroup2_mount: escaped mount points")
{
	CHECK(find_cgroup2_mount("50 1 0:40 / /mnt/my\\040cgroup rw,relatime - cgroup2 cgroup2 "
				 "rw\n") == "/mnt/my cgroup");
	CHECK(find_cgroup2_mount("50 1 0:40 / /mnt/a\\011b\\134c\\012d rw - cgroup2 none rw\n") ==
	      "/mnt/a\tb\\c\nd");
	/* An escape at the very end of the field. */
	CHECK(find_cgroup2_mount("50 1 0:40 / /mnt/end\\040 rw - cgroup2 none rw\n") ==
	      "/mnt/end ");
	/* Not an escape: kept as written. */
	CHECK(find_cgroup2_mount("50 1 0:40 / /mnt/x\\9y rw - cgroup2 none rw\n") == "/mnt/x\\9y");
}

TEST_CASE("top_mount_at: the last mount at a path; has_device anywhere")
{
	auto entries = cgloopfs::parse_mountinfo(
		"28 1 259:2 / / rw - ext4 /dev/vda rw\n"
		"40 28 0:39 / /srv/img rw,nosuid,nodev - fuse.cgloopfs m.toml rw\n"
		"41 40 0:45 / /srv/img rw - tmpfs tmpfs rw\n"
		"42 28 0:46 / /srv/img\\040x rw - fuse.cgloopfs a.img rw\n");
	REQUIRE(entries.size() == 4);
	const auto *top = cgloopfs::top_mount_at(entries, "/srv/img");
	REQUIRE(top != nullptr);
	CHECK(top->fstype == "tmpfs");
	CHECK(top->minor == 45);
	top = cgloopfs::top_mount_at(entries, "/srv/img x");
	REQUIRE(top != nullptr);
	CHECK(top->fstype == "fuse.cgloopfs");
	CHECK(cgloopfs::top_mount_at(entries, "/srv") == nullptr);
	CHECK(cgloopfs::top_mount_at(entries, "/srv/img/") == nullptr);
	CHECK(cgloopfs::has_device(entries, 0, 39));
	CHECK(cgloopfs::has_device(entries, 259, 2));
	CHECK_FALSE(cgloopfs::has_device(entries, 0, 40));
	CHECK_FALSE(cgloopfs::has_device(entries, 1, 39));
}

TEST_CASE("find_cgroup2_mount: any number of optional fields")
{
	CHECK(find_cgroup2_mount("26 22 0:24 / /cg rw,nosuid shared:9 master:3 propagate_from:2 "
				 "- cgroup2 cgroup2 rw\n") == "/cg");
	CHECK(find_cgroup2_mount("26 22 0:24 / /cg rw - cgroup2 cgroup2 rw") == "/cg");
}

TEST_CASE("find_cgroup2_mount: malformed lines are skipped")
{
	std::string text = "garbage\n"
			   "1 2 3\n"
			   "1 2 3 4 5 6 7 8 9\n"
			   "49 1 0:39 / /no-options - cgroup2 cgroup2 rw\n"
			   "50 1 0:40 / /no-type rw -\n"
			   "51 1 0:41 / /first rw - cgroup2 cgroup2 rw\n"
			   "52 1 0:42 / /second rw - cgroup2 cgroup2 rw\n";
	/* The first well-formed cgroup2 line wins. */
	CHECK(find_cgroup2_mount(text) == "/first");
}

TEST_CASE("find_cgroup2_mount: this machine")
{
	std::string mountinfo = slurp("/proc/self/mountinfo");
	REQUIRE_FALSE(mountinfo.empty());
	auto m = find_cgroup2_mount(mountinfo);
	/* cgroup2 is always mounted on these machines: not finding it is a failure. */
	REQUIRE_MESSAGE(m.has_value(), "no cgroup2 mount in /proc/self/mountinfo");
	struct statfs fs;
	REQUIRE(statfs(m->c_str(), &fs) == 0);
	CHECK(fs.f_type == CGROUP2_SUPER_MAGIC);
	struct stat st;
	REQUIRE(stat((*m + "/cgroup.controllers").c_str(), &st) == 0);
	CHECK(S_ISREG(st.st_mode));
}

TEST_CASE("parse_v2_path: pure v2")
{
	CHECK(parse_v2_path("0::/a/b\n") == "/a/b");
	CHECK(parse_v2_path("0::/a/b") == "/a/b");
	CHECK(parse_v2_path("0::/\n") == "/");
	CHECK(parse_v2_path("0::/user.slice/user-1000.slice/session-2.scope\n") ==
	      "/user.slice/user-1000.slice/session-2.scope");
	CHECK(parse_v2_path("0::/with space/x\n") == "/with space/x");
}

TEST_CASE("parse_v2_path: hybrid, v1 lines first")
{
	const char *text = "9:name=systemd:/\n"
			   "8:pids:/\n"
			   "7:blkio:/\n"
			   "6:freezer:/\n"
			   "5:devices:/\n"
			   "4:memory:/process_api/7ac904dc303713ad0220bed517966d7d\n"
			   "3:cpuset:/\n"
			   "2:cpuacct:/\n"
			   "1:cpu:/\n"
			   "0::/test/child\n";
	CHECK(parse_v2_path(text) == "/test/child");
	/* A hierarchy id that merely ends in 0 is not the v2 line. */
	CHECK(parse_v2_path("10::/not-v2\n0::/v2\n") == "/v2");
	CHECK(parse_v2_path("10:cpu:/x\n") == std::nullopt);
}

TEST_CASE("parse_v2_path: deleted cgroups")
{
	CHECK(parse_v2_path("0::/a/b (deleted)\n") == "/a/b");
	CHECK(parse_v2_path("1:cpu:/x\n0::/gone (deleted)") == "/gone");
	/* Only the suffix, and only once. */
	CHECK(parse_v2_path("0::/a (deleted)/b\n") == "/a (deleted)/b");
}

TEST_CASE("parse_v2_path: no usable v2 line")
{
	CHECK_FALSE(parse_v2_path("").has_value());
	CHECK_FALSE(parse_v2_path("\n").has_value());
	CHECK_FALSE(parse_v2_path("4:memory:/x\n1:cpu:/\n").has_value());
	CHECK_FALSE(parse_v2_path("0::\n").has_value());
	CHECK_FALSE(parse_v2_path("0::relative/path\n").has_value());
	CHECK_FALSE(parse_v2_path(" 0::/a\n").has_value());
}

TEST_CASE("parse_v2_path: outside our namespace is returned, but not reachable")
{
	auto p = parse_v2_path("0::/../x\n");
	REQUIRE(p.has_value());
	CHECK(*p == "/../x");
	CHECK_FALSE(path_is_reachable(*p));
}

TEST_CASE("parse_v2_path: this process")
{
	std::string text = slurp("/proc/self/cgroup");
	auto m = find_cgroup2_mount(slurp("/proc/self/mountinfo"));
	REQUIRE_MESSAGE(m.has_value(), "no cgroup2 mount in /proc/self/mountinfo");
	auto p = parse_v2_path(text);
	REQUIRE(p.has_value());
	CHECK(p->front() == '/');
	CHECK(path_is_reachable(*p));
	/* The path names a cgroup directory under the mount, holding this process. */
	std::string procs = slurp((*m + *p + "/cgroup.procs").c_str());
	std::istringstream in(procs);
	bool found = false;
	for (long pid; in >> pid;)
		found = found || pid == static_cast<long>(getpid());
	CHECK_MESSAGE(found, *m << *p << "/cgroup.procs does not list this process");
}

TEST_CASE("path_is_reachable")
{
	CHECK(path_is_reachable("/"));
	CHECK(path_is_reachable("/a"));
	CHECK(path_is_reachable("/a/b/c"));
	CHECK(path_is_reachable("/a..b"));
	CHECK(path_is_reachable("/..a"));
	CHECK(path_is_reachable("/a/..."));
	CHECK(path_is_reachable("/.hidden"));
	CHECK(path_is_reachable("/with space"));

	CHECK_FALSE(path_is_reachable(""));
	CHECK_FALSE(path_is_reachable("a"));
	CHECK_FALSE(path_is_reachable("a/b"));
	CHECK_FALSE(path_is_reachable("/.."));
	CHECK_FALSE(path_is_reachable("/../x"));
	CHECK_FALSE(path_is_reachable("/../../x"));
	CHECK_FALSE(path_is_reachable("/a/../b"));
	CHECK_FALSE(path_is_reachable("/a/.."));
	CHECK_FALSE(path_is_reachable("/."));
	CHECK_FALSE(path_is_reachable("/a/./b"));
}
