/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgroup/names: systemd's unit and machine read from cgroup paths (the
 * layouts systemd, systemd-machined, libvirt and user managers make), and
 * "-" for paths systemd did not name; the dispatcher keeps the names its
 * PathFn gives.
 */
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <unistd.h>

#include <doctest/doctest.h>

#include "cgroup/names.hpp"
#include "dispatch/dispatcher.hpp"

using namespace cgloopfs::cgroup;
namespace dispatch = cgloopfs::dispatch;

namespace {

std::string unit_of(const char *path)
{
	return names_from_path(path).unit;
}

std::string machine_of(const char *path)
{
	return names_from_path(path).machine;
}

} /* namespace */

TEST_CASE("is_unit_name: systemd's spelling")
{
	CHECK(is_unit_name("foo.service"));
	CHECK(is_unit_name("user@1000.service"));
	CHECK(is_unit_name("machine-qemu\\x2d1\\x2dvm.scope"));
	CHECK(is_unit_name("-.slice"));
	CHECK(is_unit_name("dev-disk-by\\x2duuid-1234.device"));
	CHECK_FALSE(is_unit_name("foo"));
	CHECK_FALSE(is_unit_name("foo.txt"));
	CHECK_FALSE(is_unit_name(".service"));
	CHECK_FALSE(is_unit_name("a b.service"));
	CHECK_FALSE(is_unit_name("a\tb.service"));
	CHECK_FALSE(is_unit_name("a\\tb.service"));
	CHECK_FALSE(is_unit_name("a\\x2.service"));
	CHECK_FALSE(is_unit_name("a@b@c.service"));
	CHECK_FALSE(is_unit_name("\xff.service"));
	CHECK_FALSE(is_unit_name(std::string(300, 'a') + ".service"));
}

TEST_CASE("unescape_unit_name: \\xNN undone")
{
	CHECK(unescape_unit_name("qemu\\x2d1\\x2dvm") == "qemu-1-vm");
	CHECK(unescape_unit_name("plain") == "plain");
	CHECK(unescape_unit_name("cut\\x2") == "cut\\x2");
}

TEST_CASE("names_from_path: system units, slices skipped")
{
	CHECK(unit_of("/system.slice/nginx.service") == "nginx.service");
	CHECK(unit_of("/system.slice/nginx.service/worker") == "nginx.service");
	CHECK(unit_of("/system.slice/system-getty.slice/getty@tty1.service") ==
	      "getty@tty1.service");
	CHECK(unit_of("/user.slice/user-1000.slice/session-3.scope") == "session-3.scope");
	CHECK(unit_of("/init.scope") == "init.scope");
	CHECK(machine_of("/system.slice/nginx.service") == "-");
}

TEST_CASE("names_from_path: a user manager's units")
{
	CHECK(unit_of("/user.slice/user-1000.slice/user@1000.service/app.slice/"
		      "app-podman-web.scope/container") ==
	      "user@1000.service/app-podman-web.scope");
	CHECK(unit_of("/user.slice/user-1000.slice/user@1000.service/init.scope") ==
	      "user@1000.service/init.scope");
	CHECK(unit_of("/user.slice/user-1000.slice/user@1000.service") == "user@1000.service");
}

TEST_CASE("names_from_path: machines, as systemd-machined and libvirt name their scopes")
{
	auto n = names_from_path("/machine.slice/machine-web.scope");
	CHECK(n.unit == "machine-web.scope");
	CHECK(n.machine == "web");
	n = names_from_path("/machine.slice/machine-qemu\\x2d1\\x2dvm.scope/libvirt/vcpu0");
	CHECK(n.unit == "machine-qemu\\x2d1\\x2dvm.scope");
	CHECK(n.machine == "qemu-1-vm");
	/* Not in machine.slice, or not a machine scope: no machine. */
	CHECK(machine_of("/system.slice/machine-web.scope") == "-");
	CHECK(unit_of("/machine.slice/libpod-abc.scope") == "libpod-abc.scope");
	CHECK(machine_of("/machine.slice/libpod-abc.scope") == "-");
	/* An escaped name that is no host name ("machine-\x2d.scope" is "-"). */
	CHECK(machine_of("/machine.slice/machine-\\x2d.scope") == "-");
	CHECK(machine_of("/machine.slice/machine-a\\x1bb.scope") == "-");
}

TEST_CASE("names_from_path: below a prefix systemd did not name (a delegated subtree)")
{
	CHECK(unit_of("/cgloopfs-test-1-0/test.slice/foo.scope") == "foo.scope");
	auto n = names_from_path("/cgloopfs-test-1-0/machine.slice/machine-box.scope");
	CHECK(n.unit == "machine-box.scope");
	CHECK(n.machine == "box");
}

TEST_CASE("names_from_path: nothing systemd named gives -")
{
	for (const char *path : {"/", "", "/plain", "/a/b/c", "/docker/0123abcd", "/system.slice",
				 "/system.slice/not-a-unit", "/a\tb/c\x1b", "/\xff\xfe"}) {
		CAPTURE(path);
		CHECK(unit_of(path) == "-");
		CHECK(machine_of(path) == "-");
	}
}

TEST_CASE("names_of: with no libsystemd answer (no systemd here), the path's names")
{
	/* Our own process: whatever libsystemd says, the names are unit names or "-". */
	auto self = names_of(getpid(), "/cgloopfs-x/test.slice/foo.scope");
	CHECK((self.unit == "-" || is_unit_name(self.unit.substr(0, self.unit.find('/')))));
	CHECK(names_of(0, "/cgloopfs-x/test.slice/foo.scope").unit == "foo.scope");
}

namespace {

/* A job that does nothing and says when it was released. */
class NopJob : public dispatch::Job
{
public:
	explicit NopJob(uint64_t cgroup) { cgroup_id = cgroup; }
	dispatch::JobOutcome run(dispatch::WorkerContext &) noexcept override { return {}; }
	bool cancel(int) noexcept override { return true; }
	bool answered() noexcept override { return false; }
	void release() noexcept override { released.store(true); }
	std::atomic<bool> released{false};
};

} /* namespace */

TEST_CASE("the dispatcher keeps a new worker's names in its statistics and its WorkerInfo")
{
	dispatch::ManualClock clock;
	dispatch::Config config;
	config.reaper_thread = false;
	dispatch::Dispatcher d(config, clock, [](const dispatch::Job &job) {
		if (job.cgroup_id == 7)
			return dispatch::CgroupName("/machine.slice/machine-web.scope",
						    "machine-web.scope", "web");
		return dispatch::CgroupName("/plain"); /* a path alone: no names */
	});
	REQUIRE(d.start());
	NopJob a(7), b(8);
	d.submit(&a);
	d.submit(&b);
	for (int i = 0; i < 500 && !(a.released.load() && b.released.load()); i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	REQUIRE((a.released.load() && b.released.load()));
	int seen = 0;
	for (const auto &w : d.workers()) {
		if (w.cgroup_id == 7) {
			CHECK(w.unit == "machine-web.scope");
			CHECK(w.machine == "web");
			seen++;
		} else {
			CHECK(w.unit == "-");
			CHECK(w.machine == "-");
		}
	}
	for (const auto &s : d.stats()) {
		if (s->id == 7) {
			CHECK(s->path == "/machine.slice/machine-web.scope");
			CHECK(s->unit == "machine-web.scope");
			CHECK(s->machine == "web");
			seen++;
		} else {
			CHECK(s->unit == "-");
			CHECK(s->machine == "-");
		}
	}
	CHECK(seen == 2);
	CHECK(d.shutdown(1000000000));
}
