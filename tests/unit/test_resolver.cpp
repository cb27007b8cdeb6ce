/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgroup/resolver against the real kernel: this thread, a child moved into a
 * cgroup the test makes under the cgroup2 mount (found in
 * /proc/self/mountinfo), a dead tid, tid 0, and the pidfd cache letting go
 * of callers that have exited.
 *
 * Runs as root on a host with cgroup2 (always so on these machines): a
 * missing cgroup2 mount or a cgroup it cannot make fails the test. Every
 * cgroup made is removed and every child reaped, also when a check fails.
 */
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "cgroup/proc_cgroup.hpp"
#include "cgroup/resolver.hpp"
#include "common/mountinfo.hpp"

using namespace cgloopfs::cgroup;

namespace {

pid_t gettid_()
{
	return static_cast<pid_t>(syscall(SYS_gettid));
}

/* The pidfds this process holds open, counted in /proc/self/fd. */
int open_pidfds()
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	REQUIRE(d != nullptr);
	while (dirent *e = readdir(d)) {
		if (e->d_name[0] == '.')
			continue;
		char target[64] = {};
		std::string link = std::string("/proc/self/fd/") + e->d_name;
		ssize_t len = readlink(link.c_str(), target, sizeof(target) - 1);
		if (len > 0 &&
		    std::string(target, static_cast<size_t>(len)) == "anon_inode:[pidfd]")
			n++;
	}
	closedir(d);
	return n;
}

/*
 * A child that waits until told to exit: write a byte to `release` (or close
 * it). Reaped by the destructor.
 */
class Child
{
public:
	/* Before it waits, the child moves itself into `cgroup_dir` ("" stays). */
	explicit Child(const std::string &cgroup_dir = "")
	{
		int ready[2], go[2];
		REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
		REQUIRE(pipe2(go, O_CLOEXEC) == 0);
		pid_ = fork();
		REQUIRE(pid_ >= 0);
		if (pid_ == 0) {
			/*
			 * Keep only our ends: EOF on `go` is then the parent's word
			 * (not held open by a sibling that inherited it).
			 */
			int keep_lo = std::min(ready[1], go[0]),
			    keep_hi = std::max(ready[1], go[0]);
			::close_range(3, static_cast<unsigned>(keep_lo) - 1, 0);
			::close_range(static_cast<unsigned>(keep_lo) + 1,
				      static_cast<unsigned>(keep_hi) - 1, 0);
			::close_range(static_cast<unsigned>(keep_hi) + 1, ~0U, 0);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			char c = 1;
			if (!cgroup_dir.empty()) {
				int fd = ::open((cgroup_dir + "/cgroup.procs").c_str(), O_WRONLY);
				if (fd < 0 || ::write(fd, "0", 1) != 1)
					c = 0;
			}
			if (::write(ready[1], &c, 1) != 1)
				_exit(2);
			(void)!::read(go[0], &c, 1);
			_exit(0);
		}
		::close(ready[1]);
		::close(go[0]);
		release_ = go[1];
		char c = 0;
		ssize_t n = ::read(ready[0], &c, 1);
		::close(ready[0]);
		entered_ = n == 1 && c == 1;
	}
	Child(const Child &) = delete;
	Child &operator=(const Child &) = delete;
	~Child() { reap(); }

	pid_t pid() const { return pid_; }
	bool entered() const { return entered_; }

	/* Let it exit, and reap it: its pid is then gone. */
	void reap()
	{
		if (release_ >= 0) {
			::close(release_);
			release_ = -1;
		}
		if (pid_ > 0) {
			int status;
			while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
			}
			pid_ = -pid_; /* remembered, for a look-up after its death */
		}
	}
	pid_t dead_pid() const { return pid_ < 0 ? -pid_ : 0; }

private:
	pid_t pid_ = 0;
	int release_ = -1;
	bool entered_ = false;
};

/* A cgroup of the test's own, removed by the destructor (its processes reaped first). */
class TestCgroup
{
public:
	explicit TestCgroup(const std::string &root)
	{
		remove_stale(root);
		path_ = root + "/" + prefix + std::to_string(getpid());
		made_ = ::mkdir(path_.c_str(), 0755) == 0;
		if (!made_)
			error_ = std::strerror(errno);
	}
	TestCgroup(const TestCgroup &) = delete;
	TestCgroup &operator=(const TestCgroup &) = delete;
	~TestCgroup()
	{
		if (!made_)
			return;
		/* A reaped child leaves it at once; retry briefly all the same. */
		for (int i = 0; i < 100 && ::rmdir(path_.c_str()) < 0 && errno == EBUSY; i++)
			usleep(10000);
	}

	bool made() const { return made_; }
	const std::string &error() const { return error_; }
	const std::string &path() const { return path_; }

private:
	static constexpr const char *prefix = "cgloopfs-unit-resolver-";

	/*
	 * A run killed by a timeout (SIGTERM: no destructor runs) leaves its
	 * cgroup: remove those of runs whose process is gone. Only ours match.
	 */
	static void remove_stale(const std::string &root)
	{
		DIR *d = opendir(root.c_str());
		if (!d)
			return;
		while (dirent *e = readdir(d)) {
			std::string name = e->d_name;
			if (name.rfind(prefix, 0) != 0)
				continue;
			pid_t owner =
				static_cast<pid_t>(std::atol(name.c_str() + std::strlen(prefix)));
			if (owner > 0 && ::kill(owner, 0) < 0 && errno == ESRCH)
				(void)::rmdir((root + "/" + name).c_str());
		}
		closedir(d);
	}

	std::string path_;
	std::string error_;
	bool made_ = false;
};

std::string cgroup2_root()
{
	auto m = find_cgroup2_mount(cgloopfs::read_mountinfo());
	/* These machines always have one: not finding it is a failure, not a skip. */
	REQUIRE_MESSAGE(m.has_value(), "no cgroup2 mount in /proc/self/mountinfo");
	return *m;
}

std::string read_file(const char *path)
{
	std::string s;
	char buf[4096];
	int fd = ::open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	ssize_t n;
	while ((n = ::read(fd, buf, sizeof(buf))) > 0)
		s.append(buf, static_cast<size_t>(n));
	::close(fd);
	return s;
}

uint64_t inode_of(const std::string &path)
{
	struct stat st;
	REQUIRE(::stat(path.c_str(), &st) == 0);
	return st.st_ino;
}

} /* namespace */

TEST_CASE("resolver: finds the cgroup2 mount and a way to resolve")
{
	Resolver r;
	CHECK(r.mount_point() == cgroup2_root());
	/* Kernel 6.13+ (these machines run 6.18): PIDFD_GET_INFO answers cgroup ids. */
	CHECK(r.method() == Method::pidfd_info);
}

TEST_CASE("resolver: this thread")
{
	Resolver r;
	std::string root = cgroup2_root();
	auto path = parse_v2_path(read_file("/proc/self/cgroup"));
	REQUIRE(path.has_value());
	uint64_t want = inode_of(root + *path);
	pid_t me = gettid_();
	/* Each way agrees with the cgroup directory's inode. */
	CHECK(r.id_by_pidfd(me) == want);
	CHECK(r.id_by_cached_pidfd(me) == want);
	CHECK(r.id_by_cached_pidfd(me) == want); /* now from the cache */
	CHECK(r.id_by_proc(me) == want);
	CHECK(r.path(me) == *path);
	/* The root cgroup is the root queue's: 0. */
	CHECK(r.cgroup_id(me) == (*path == "/" ? 0 : want));
}

TEST_CASE("resolver: a child in a cgroup of the test's own")
{
	Resolver r;
	TestCgroup cg(cgroup2_root());
	REQUIRE_MESSAGE(cg.made(), "cannot make a cgroup at " << cg.path() << ": " << cg.error());
	uint64_t want = inode_of(cg.path());
	std::string rel = cg.path().substr(r.mount_point().size());
	{
		Child child(cg.path());
		REQUIRE_MESSAGE(child.entered(), "the child could not enter " << cg.path());
		CHECK(r.cgroup_id(child.pid()) == want);
		CHECK(r.id_by_pidfd(child.pid()) == want);
		CHECK(r.id_by_proc(child.pid()) == want);
		CHECK(r.path(child.pid()) == rel);
		/* Asked again, from the cache: the same. */
		CHECK(r.cgroup_id(child.pid()) == want);
	}
	/* The child is reaped: the cgroup is empty and goes with `cg`. */
}

TEST_CASE("resolver: a thread that moves is asked anew")
{
	Resolver r;
	TestCgroup cg(cgroup2_root());
	REQUIRE_MESSAGE(cg.made(), "cannot make a cgroup at " << cg.path() << ": " << cg.error());
	Child child;
	uint64_t before = r.cgroup_id(child.pid());
	std::string procs = cg.path() + "/cgroup.procs";
	int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	std::string pid = std::to_string(child.pid());
	bool moved = ::write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
	::close(fd);
	REQUIRE(moved);
	CHECK(r.cgroup_id(child.pid()) == inode_of(cg.path()));
	CHECK(r.cgroup_id(child.pid()) != before);
	child.reap();
}

TEST_CASE("resolver: tid 0, a negative tid and a dead tid are unknown (0)")
{
	Resolver r;
	CHECK(r.cgroup_id(0) == 0);
	CHECK(r.cgroup_id(-1) == 0);
	CHECK(r.path(0).empty());
	CHECK(r.id_by_pidfd(0) == 0);
	CHECK(r.id_by_cached_pidfd(0) == 0);
	CHECK(r.id_by_proc(0) == 0);

	TestCgroup cg(cgroup2_root());
	REQUIRE_MESSAGE(cg.made(), "cannot make a cgroup at " << cg.path() << ": " << cg.error());
	Child child(cg.path());
	REQUIRE(child.entered());
	pid_t pid = child.pid();
	CHECK(r.cgroup_id(pid) != 0); /* cached while alive */
	child.reap();
	/* Gone: the cached pidfd answers ESRCH, and nothing else is trusted. */
	CHECK(r.cgroup_id(pid) == 0);
	CHECK(r.id_by_pidfd(pid) == 0);
	CHECK(r.id_by_proc(pid) == 0);
	CHECK(r.path(pid).empty());
}

TEST_CASE("resolver: the pidfd cache lets go of callers that have exited")
{
	/*
	 * Many short-lived callers, one after another, each resolved while it
	 * lives, on a thread of its own as a session thread does (the cache is
	 * per thread): once they have exited, the cache may hold the last of
	 * them, not one pidfd per caller it has seen.
	 */
	Resolver r;
	REQUIRE(r.method() == Method::pidfd_info);
	constexpr int callers = 200;
	struct {
		int resolved = 0;
		int after_callers = -1;	  /* pidfds open after the callers exited */
		size_t cached_after = 0;  /* the cache's own count then */
		int with_live = -1;	  /* with 8 live callers resolved */
		int with_live_again = -1; /* after asking them again */
		size_t cached_live = 0;
		int after_all = -1; /* after they exited and one more caller came */
		bool threw = false;
	} f;
	int base = open_pidfds();
	std::thread session([&] {
		try {
			for (int i = 0; i < callers; i++) {
				Child child;
				f.resolved += r.id_by_cached_pidfd(child.pid()) != 0;
				child.reap();
			}
			f.after_callers = open_pidfds() - base;
			f.cached_after = Resolver::cached_pidfds();

			std::vector<std::unique_ptr<Child>> live;
			for (int i = 0; i < 8; i++)
				live.push_back(std::make_unique<Child>());
			for (auto &c : live)
				f.resolved += r.id_by_cached_pidfd(c->pid()) != 0;
			f.with_live = open_pidfds() - base;
			f.cached_live = Resolver::cached_pidfds();
			for (auto &c : live)
				f.resolved += r.id_by_cached_pidfd(c->pid()) != 0;
			f.with_live_again = open_pidfds() - base;
			live.clear();

			Child child;
			f.resolved += r.id_by_cached_pidfd(child.pid()) != 0;
			child.reap();
			f.after_all = open_pidfds() - base;
		} catch (...) {
			f.threw = true;
		}
	});
	session.join();
	REQUIRE_FALSE(f.threw);
	CHECK(f.resolved == callers + 8 + 8 + 1);
	MESSAGE("pidfds open after " << callers << " short-lived callers: " << f.after_callers);
	/* The last caller, resolved while alive, may still be cached. */
	CHECK(f.after_callers <= 1);
	CHECK(f.cached_after == static_cast<size_t>(f.after_callers));
	/*
	 * Live callers stay cached, and asking again opens nothing: 8 (fewer
	 * when two tids share a slot, as other processes of the host take pids
	 * too); the dead caller before them was let go at the first miss.
	 */
	CHECK(f.with_live >= 1);
	CHECK(f.with_live <= 8);
	CHECK(f.cached_live == static_cast<size_t>(f.with_live));
	CHECK(f.with_live_again == f.with_live);
	/* They exited: the next caller's miss lets them go. */
	CHECK(f.after_all <= 1);
	/* The thread has ended: its cache is closed. */
	CHECK(open_pidfds() == base);
}

TEST_CASE("resolver: a thread's cache is closed when the thread ends")
{
	Resolver r;
	int base = open_pidfds();
	pid_t seen = 0;
	std::thread t([&] {
		Child child;
		seen = r.id_by_cached_pidfd(child.pid()) != 0 ? child.pid() : 0;
		child.reap();
	});
	t.join();
	CHECK(seen != 0);
	CHECK(open_pidfds() == base);
}
