/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgroup/placement: where a process's cgroups are, on a pure cgroup v2 host
 * and on a hybrid one (v2 without controllers, v1 controllers beside it),
 * from samples of /proc/self/mountinfo and /proc/PID/cgroup; and of this
 * test process, read from /proc.
 */
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "cgroup/placement.hpp"
#include "temp_dir.hpp"

using namespace cgloopfs::cgroup;

namespace {

const char *const pure_v2_mountinfo =
	"28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
	"26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 "
	"cgroup2 rw,nsdelegate,memory_recursiveprot\n";

const char *const hybrid_mountinfo =
	"28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"
	"30 29 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - "
	"cgroup2 cgroup2 rw,nsdelegate\n"
	"31 29 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - "
	"cgroup cgroup rw,xattr,name=systemd\n"
	"34 29 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - "
	"cgroup cgroup rw,cpu,cpuacct\n"
	"35 29 0:31 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup "
	"cgroup rw,blkio\n"
	"36 29 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup "
	"cgroup rw,memory\n"
	"37 29 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup "
	"cgroup rw,pids\n"
	/* The same hierarchy mounted a second time, elsewhere: taken once. */
	"38 1 0:31 / /mnt/blkio rw,relatime shared:18 - cgroup cgroup rw,blkio\n";

} /* namespace */

TEST_CASE("parse_placement: pure cgroup v2 host")
{
	Placement p = parse_placement(pure_v2_mountinfo, "0::/machine.slice/ctr.scope\n");
	CHECK(p.v2_dir == "/sys/fs/cgroup/machine.slice/ctr.scope");
	CHECK(p.v1_dirs.empty());

	Placement root = parse_placement(pure_v2_mountinfo, "0::/\n");
	CHECK(root.v2_dir == "/sys/fs/cgroup");
}

TEST_CASE("parse_placement: hybrid host, every v1 hierarchy the process is in")
{
	const char *proc = "12:pids:/ctr\n"
			   "9:memory:/ctr\n"
			   "7:blkio:/ctr\n"
			   "4:cpu,cpuacct:/ctr\n"
			   "3:freezer:/ctr\n" /* not mounted here: left out */
			   "1:name=systemd:/system.slice/x.service\n"
			   "0::/ctr\n";
	Placement p = parse_placement(hybrid_mountinfo, proc);
	CHECK(p.v2_dir == "/sys/fs/cgroup/unified/ctr");
	std::vector<std::string> want = {
		"/sys/fs/cgroup/pids/ctr", "/sys/fs/cgroup/memory/ctr", "/sys/fs/cgroup/blkio/ctr",
		"/sys/fs/cgroup/cpu,cpuacct/ctr", "/sys/fs/cgroup/systemd/system.slice/x.service"};
	CHECK(p.v1_dirs == want);
}

TEST_CASE("parse_placement: a controller list must match a mount's, not part of it")
{
	/* "cpu" alone is not the cpu,cpuacct hierarchy's line... but that mount holds cpu. */
	Placement p = parse_placement(hybrid_mountinfo, "4:cpuacct:/a\n0::/a\n");
	REQUIRE(p.v1_dirs.size() == 1);
	CHECK(p.v1_dirs[0] == "/sys/fs/cgroup/cpu,cpuacct/a");
	/* A controller no mount has. */
	CHECK(parse_placement(hybrid_mountinfo, "5:rdma:/a\n0::/a\n").v1_dirs.empty());
}

TEST_CASE("parse_placement: paths outside our namespace and odd lines are left out")
{
	Placement p = parse_placement(hybrid_mountinfo, "7:blkio:/../other\n0::/../x\ngarbage\n");
	CHECK(p.v2_dir.empty());
	CHECK(p.v1_dirs.empty());
	/* A path holding a colon. */
	Placement c = parse_placement(pure_v2_mountinfo, "0::/a:b\n");
	CHECK(c.v2_dir == "/sys/fs/cgroup/a:b");
}

TEST_CASE("parse_placement: a hierarchy mounted from a subdirectory")
{
	const char *mi = "40 1 0:31 /ctr /mnt/ctr-blkio rw - cgroup cgroup rw,blkio\n"
			 "41 1 0:24 /ns /mnt/ns-v2 rw - cgroup2 cgroup2 rw\n";
	Placement p = parse_placement(mi, "7:blkio:/ctr/inner\n0::/ns/x\n");
	CHECK(p.v2_dir == "/mnt/ns-v2/x");
	REQUIRE(p.v1_dirs.size() == 1);
	CHECK(p.v1_dirs[0] == "/mnt/ctr-blkio/inner");
	/* Outside the mounted subdirectory: not reachable through that mount. */
	CHECK(parse_placement(mi, "7:blkio:/other\n").v1_dirs.empty());
}

TEST_CASE("placement_of: this process, on this host")
{
	auto p = placement_of(getpid());
	REQUIRE(p.has_value());
	/* The v2 directory exists and holds us. */
	struct stat st;
	REQUIRE(!p->v2_dir.empty());
	CHECK(stat((p->v2_dir + "/cgroup.procs").c_str(), &st) == 0);
	for (const auto &d : p->v1_dirs)
		CHECK(stat((d + "/cgroup.procs").c_str(), &st) == 0);
	CHECK_FALSE(placement_of(0x7ffffff0).has_value());
}

namespace {

/* A cgroup tree made of plain files, as pids_limits and pids_room read it. */
struct FakeTree {
	TempDir dir{"pids"};
	const std::string &root = dir.path;
	/* A cgroup at `rel` ("" the root); with pids "current max" unless empty. */
	std::string cgroup(const std::string &rel, const char *current = nullptr,
			   const char *max = nullptr)
	{
		std::string d = rel.empty() ? root : root + "/" + rel;
		std::filesystem::create_directories(d);
		std::ofstream(d + "/cgroup.procs") << "";
		if (current) {
			std::ofstream(d + "/pids.current") << current << "\n";
			std::ofstream(d + "/pids.max") << max << "\n";
		}
		return d;
	}
};

} /* namespace */

TEST_CASE("pids_limits: the cgroup and its ancestors with a pids.max, less the shared ones")
{
	FakeTree t;
	t.cgroup("");		    /* the hierarchy's root: no pids.max */
	t.cgroup("pod", "3", "10"); /* a limit above the container's */
	t.cgroup("pod/nolimit");    /* v2: no controller here */
	std::string ctr = t.cgroup("pod/nolimit/ctr", "1", "2");
	std::string daemon = t.cgroup("system", "5", "max");
	auto l = pids_limits(ctr, {daemon});
	REQUIRE(l.size() == 2);
	CHECK(l[0] == ctr);
	CHECK(l[1] == t.root + "/pod");
	/* Coming from inside the pod: the pod counts it already. */
	auto inside = pids_limits(ctr, {t.cgroup("pod/daemon", "1", "max")});
	REQUIRE(inside.size() == 1);
	CHECK(inside[0] == ctr);
	/* A name that only begins like the pod's is not inside it. */
	CHECK(pids_limits(ctr, {t.root + "/podx"}).size() == 2);
	/* Its own cgroup: nothing to check. */
	CHECK(pids_limits(ctr, {ctr}).empty());
	CHECK(pids_limits("/nonexistent/cgroup", {}).empty());
	CHECK(pids_limits("relative", {}).empty());
}

TEST_CASE("pids_room: room for more under every limit, or none")
{
	FakeTree t;
	std::string pod = t.cgroup("pod", "3", "10");
	std::string ctr = t.cgroup("pod/ctr", "1", "2");
	std::string unlimited = t.cgroup("free", "7", "max");
	CHECK(pids_room({ctr, pod}, 0));
	CHECK(pids_room({ctr, pod}, 1));
	CHECK_FALSE(pids_room({ctr, pod}, 2)); /* the container's limit */
	t.cgroup("pod", "10", "10");
	CHECK(pids_room({ctr, pod}, 0));
	CHECK_FALSE(pids_room({ctr, pod}, 1)); /* the pod's */
	t.cgroup("pod/ctr", "3", "2");	       /* over: moved in past it */
	CHECK_FALSE(pids_room({ctr}, 0));
	CHECK(pids_room({unlimited}, 1000));
	CHECK(pids_room({}, 1));
	/* What cannot be read is no limit. */
	CHECK(pids_room({t.root + "/gone"}, 1));
}

TEST_CASE("cpu_group: the v1 cpu cgroup, else the nearest v2 one with a cpu controller")
{
	FakeTree t;
	auto with = [](const std::string &d, const char *file) {
		std::ofstream(d + "/" + file) << "100\n";
		return d;
	};
	/* v2: the root has no cpu.weight; a pod has the controller, its container not. */
	std::string root = t.cgroup("");
	std::string pod = with(t.cgroup("pod"), "cpu.weight");
	std::string ctr = t.cgroup("pod/ctr");
	std::string daemon = t.cgroup("system");
	CHECK(cpu_group(Placement{ctr, {}}) == pod);
	CHECK(cpu_group(Placement{pod, {}}) == pod);
	CHECK(cpu_group(Placement{daemon, {}}).empty());
	CHECK(cpu_group(Placement{root, {}}).empty());
	CHECK(cpu_group(Placement{"", {}}).empty());
	/* Hybrid: the v1 directory with cpu.shares, whatever the v2 one has. */
	std::string blkio = t.cgroup("blkio-ctr");
	std::string cpu = with(t.cgroup("cpu-ctr"), "cpu.shares");
	CHECK(cpu_group(Placement{ctr, {blkio, cpu}}) == cpu);
	CHECK(cpu_group(Placement{ctr, {blkio}}) == pod);
}
