/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgload: many short-lived cgroups, each with one process doing a small
 * verified write and read through one file, while the daemon's threads,
 * memory and open files are sampled. For the load tests.
 *
 *   cgload PARENT_CGROUP FILE FIRST COUNT BATCH PROCS DAEMON_PID
 *
 * For i in [FIRST, FIRST + COUNT), BATCH at a time: make the cgroup
 * PARENT_CGROUP/c<i>, start PROCS processes straight into it (clone3 with
 * CLONE_INTO_CGROUP: no cgroup.procs write, no exec); process p writes
 * block(b) (4 KiB, b = i * PROCS + p) at offset b * 4096 of FILE, reads it
 * back and compares. Wait for the batch, then remove its cgroups. A thread
 * samples the daemon's Threads and VmRSS every 0.5 ms and its open fds
 * every 10 ms.
 *
 * block(b): the 64-bit little-endian words block_magic and b, then byte k
 * (16 <= k < 4096) is (k + 7 * b) & 0xff.
 *
 * Prints one JSON line with the counts (of processes), the first failure
 * (its block), the wall time and the peaks; exits 0 when every process
 * succeeded. A child exits with
 * stage * 64 + errno (stage 1: open, 2: write, 3: read; errno 0 for a short
 * count), or 255 when the data read back differs.
 */
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

constexpr size_t block_size = 4096;
constexpr uint64_t block_magic = 0x64616f6c67630a31ULL;

struct Peaks {
	std::atomic<bool> stop{false};
	long max_threads = 0;
	long max_rss_kib = 0;
	long max_fds = 0;
	long samples = 0;
};

long status_field(const char *text, const char *key)
{
	const char *p = std::strstr(text, key);
	return p ? std::strtol(p + std::strlen(key), nullptr, 10) : -1;
}

long count_fds(const std::string &dir)
{
	DIR *d = opendir(dir.c_str());
	if (!d)
		return -1;
	long n = 0;
	while (struct dirent *e = readdir(d))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

void sample(pid_t daemon, Peaks &peaks)
{
	std::string status = "/proc/" + std::to_string(daemon) + "/status";
	std::string fd_dir = "/proc/" + std::to_string(daemon) + "/fd";
	char buf[8192];
	auto next_fds = std::chrono::steady_clock::now();
	while (!peaks.stop.load()) {
		int fd = open(status.c_str(), O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (n > 0) {
				buf[n] = '\0';
				peaks.max_threads = std::max(peaks.max_threads,
							     status_field(buf, "\nThreads:"));
				peaks.max_rss_kib =
					std::max(peaks.max_rss_kib, status_field(buf, "\nVmRSS:"));
				peaks.samples++;
			}
		}
		auto now = std::chrono::steady_clock::now();
		if (now >= next_fds) {
			peaks.max_fds = std::max(peaks.max_fds, count_fds(fd_dir));
			next_fds = now + std::chrono::milliseconds(10);
		}
		std::this_thread::sleep_for(std::chrono::microseconds(500));
	}
}

void fill_block(unsigned char *b, uint64_t i)
{
	for (int k = 0; k < 8; k++) {
		b[k] = static_cast<unsigned char>(block_magic >> (8 * k));
		b[8 + k] = static_cast<unsigned char>(i >> (8 * k));
	}
	for (size_t k = 16; k < block_size; k++)
		b[k] = static_cast<unsigned char>((k + 7 * i) & 0xff);
}

/*
 * The child, after clone3: raw system calls only (it is a copy of a
 * multithreaded process, and sanitizer interceptors must not run here).
 */
[[noreturn]] void child_main(const char *file, uint64_t i, const unsigned char *want,
			     unsigned char *got)
{
	auto fail = [](long stage, long err) {
		syscall(SYS_exit_group, stage * 64 + (err > 0 && err < 64 ? err : 0));
		__builtin_unreachable();
	};
	long fd = syscall(SYS_openat, AT_FDCWD, file, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		fail(1, errno);
	off_t off = static_cast<off_t>(i * block_size);
	long n = syscall(SYS_pwrite64, fd, want, block_size, off);
	if (n != static_cast<long>(block_size))
		fail(2, n < 0 ? errno : 0);
	n = syscall(SYS_pread64, fd, got, block_size, off);
	if (n != static_cast<long>(block_size))
		fail(3, n < 0 ? errno : 0);
	for (size_t k = 0; k < block_size; k++)
		if (got[k] != want[k])
			syscall(SYS_exit_group, 255);
	syscall(SYS_exit_group, 0);
	__builtin_unreachable();
}

pid_t spawn_into(int cgroup_fd, const char *file, uint64_t i, const unsigned char *want,
		 unsigned char *got)
{
	struct clone_args args;
	std::memset(&args, 0, sizeof(args));
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = static_cast<uint64_t>(cgroup_fd);
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		child_main(file, i, want, got);
	return static_cast<pid_t>(pid);
}

bool remove_cgroup(int parent_fd, const std::string &name)
{
	for (int tries = 0; tries < 200; tries++) {
		if (unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT)
			return true;
		if (errno != EBUSY)
			return false;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
	return false;
}

} /* namespace */

int main(int argc, char **argv)
{
	if (argc != 8) {
		std::fprintf(stderr, "usage: cgload PARENT_CGROUP FILE FIRST COUNT BATCH PROCS "
				     "DAEMON_PID\n");
		return 2;
	}
	const char *file = argv[2];
	uint64_t first = std::strtoull(argv[3], nullptr, 10);
	uint64_t count = std::strtoull(argv[4], nullptr, 10);
	uint64_t batch = std::max<uint64_t>(1, std::strtoull(argv[5], nullptr, 10));
	uint64_t procs = std::max<uint64_t>(1, std::strtoull(argv[6], nullptr, 10));
	pid_t daemon = static_cast<pid_t>(std::strtol(argv[7], nullptr, 10));

	int parent_fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent_fd < 0) {
		std::fprintf(stderr, "cgload: %s: %s\n", argv[1], std::strerror(errno));
		return 1;
	}

	Peaks peaks;
	std::thread sampler([&] { sample(daemon, peaks); });
	auto t0 = std::chrono::steady_clock::now();

	/* Per process of a batch: the block to write and a buffer to read into. */
	std::vector<unsigned char> want(batch * procs * block_size);
	std::vector<unsigned char> got(batch * procs * block_size);
	uint64_t ok = 0, failed = 0, setup_errors = 0;
	uint64_t failed_i = 0;
	int failed_status = 0;
	std::string setup_error;
	for (uint64_t base = first; base < first + count; base += batch) {
		uint64_t n = std::min(batch, first + count - base);
		std::vector<pid_t> pids(n * procs, -1);
		std::vector<std::string> names(n);
		for (uint64_t j = 0; j < n; j++) {
			names[j] = "c" + std::to_string(base + j);
			int cg = -1;
			if (mkdirat(parent_fd, names[j].c_str(), 0755) == 0)
				cg = openat(parent_fd, names[j].c_str(),
					    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			for (uint64_t p = 0; p < procs; p++) {
				uint64_t slot = j * procs + p;
				unsigned char *w = want.data() + slot * block_size;
				fill_block(w, (base + j) * procs + p);
				if (cg >= 0)
					pids[slot] = spawn_into(cg, file, (base + j) * procs + p, w,
								got.data() + slot * block_size);
				if (pids[slot] < 0) {
					if (setup_error.empty())
						setup_error =
							names[j] + ": " + std::strerror(errno);
					setup_errors++;
				}
			}
			if (cg >= 0)
				close(cg);
		}
		for (uint64_t slot = 0; slot < n * procs; slot++) {
			if (pids[slot] < 0)
				continue;
			int status = 0;
			while (waitpid(pids[slot], &status, 0) < 0 && errno == EINTR) {
			}
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
				ok++;
			} else {
				if (failed == 0) {
					failed_i = base * procs + slot;
					failed_status = WIFEXITED(status) ? WEXITSTATUS(status)
									  : 1000 + WTERMSIG(status);
				}
				failed++;
			}
		}
		for (uint64_t j = 0; j < n; j++) {
			if (!remove_cgroup(parent_fd, names[j])) {
				if (setup_error.empty())
					setup_error =
						"rmdir " + names[j] + ": " + std::strerror(errno);
				setup_errors++;
			}
		}
	}

	double seconds =
		std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
	peaks.stop.store(true);
	sampler.join();
	close(parent_fd);

	std::string err_json;
	for (char c : setup_error)
		if (c != '"' && c != '\\')
			err_json += c;
	std::printf("{\"first\": %" PRIu64 ", \"count\": %" PRIu64 ", \"batch\": %" PRIu64
		    ", \"procs\": %" PRIu64 ", \"ok\": %" PRIu64 ", \"failed\": %" PRIu64
		    ", \"first_failed\": %" PRIu64
		    ", \"first_failed_status\": %d, \"setup_errors\": %" PRIu64
		    ", \"setup_error\": \"%s\", \"seconds\": %.3f, \"max_threads\": %ld"
		    ", \"max_rss_kib\": %ld, \"max_fds\": %ld, \"samples\": %ld}\n",
		    first, count, batch, procs, ok, failed, failed_i, failed_status, setup_errors,
		    err_json.c_str(), seconds, peaks.max_threads, peaks.max_rss_kib, peaks.max_fds,
		    peaks.samples);
	return failed == 0 && setup_errors == 0 && ok == count * procs ? 0 : 1;
}
