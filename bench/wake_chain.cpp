/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * wake_chain: what a round trip through other processes costs on this
 * machine, with no I/O: what a FUSE request pays in wake-ups. A request to cgloopfs
 * wakes a session thread, which wakes the worker (process) of the caller's
 * cgroup, which wakes the caller: three wake-ups of sleeping tasks, each
 * possibly on another CPU. This passes a byte around a ring of processes
 * through pipes (HOPS processes besides this one), one round trip every GAP
 * microseconds for SECONDS, and prints the round trips' p50, p99, p99.9
 * and max in microseconds as one JSON line.
 *
 *   wake_chain [HOPS [GAP_US [SECONDS]]]
 *
 * Defaults: 2 hops (three processes, three wake-ups per round trip), a
 * round trip every 5000 us (200 a second, as the isolation benchmark's
 * light cgroup B), for 6 s.
 */
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

int64_t now_ns()
{
	timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

bool io_byte(int fd, bool write_it)
{
	char c = 'x';
	for (;;) {
		ssize_t n = write_it ? write(fd, &c, 1) : read(fd, &c, 1);
		if (n == 1)
			return true;
		if (n < 0 && errno == EINTR)
			continue;
		return false;
	}
}

int arg(int argc, char **argv, int i, int def, int lo, int hi)
{
	if (argc <= i)
		return def;
	char *end = nullptr;
	long v = strtol(argv[i], &end, 10);
	if (*end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "wake_chain: \"%s\" is not a number from %d to %d\n", argv[i], lo,
			hi);
		exit(2);
	}
	return static_cast<int>(v);
}

} /* namespace */

int main(int argc, char **argv)
{
	int hops = arg(argc, argv, 1, 2, 1, 8);
	int gap_us = arg(argc, argv, 2, 5000, 0, 1000000);
	int seconds = arg(argc, argv, 3, 6, 1, 3600);
	/* pipes[i] carries the byte into process i (0 is this one, reading the last). */
	std::vector<int> rd(hops + 1), wr(hops + 1);
	for (int i = 0; i <= hops; i++) {
		int p[2];
		if (pipe(p) < 0) {
			perror("wake_chain: pipe");
			return 1;
		}
		rd[i] = p[0];
		wr[i] = p[1];
	}
	std::vector<pid_t> kids;
	for (int i = 1; i <= hops; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("wake_chain: fork");
			for (pid_t k : kids)
				kill(k, SIGKILL);
			return 1;
		}
		if (pid == 0) {
			int out = wr[(i + 1) % (hops + 1)];
			/* Only its own two ends: the ring ends when this one's writer goes. */
			for (int j = 0; j <= hops; j++) {
				if (rd[j] != rd[i])
					close(rd[j]);
				if (wr[j] != out)
					close(wr[j]);
			}
			while (io_byte(rd[i], false) && io_byte(out, true)) {
			}
			_exit(0);
		}
		kids.push_back(pid);
	}
	for (int i = 1; i <= hops; i++) {
		close(rd[i]);
		if (i != 1)
			close(wr[i]);
	}
	std::vector<int64_t> trips;
	trips.reserve(static_cast<size_t>(seconds) * 1000000 / (gap_us + 50) + 16);
	int64_t end = now_ns() + int64_t{seconds} * 1000000000;
	bool ok = true;
	while (ok && now_ns() < end) {
		if (gap_us > 0) {
			timespec d = {gap_us / 1000000, (gap_us % 1000000) * 1000L};
			while (clock_nanosleep(CLOCK_MONOTONIC, 0, &d, &d) == EINTR) {
			}
		}
		int64_t t0 = now_ns();
		ok = io_byte(wr[1], true) && io_byte(rd[0], false);
		trips.push_back(now_ns() - t0);
	}
	close(wr[1]);
	close(rd[0]);
	close(wr[0]);
	for (pid_t k : kids)
		waitpid(k, nullptr, 0);
	if (!ok || trips.empty()) {
		fprintf(stderr, "wake_chain: the ring broke\n");
		return 1;
	}
	std::sort(trips.begin(), trips.end());
	auto pct = [&](double q) {
		size_t i = std::min(trips.size() - 1, static_cast<size_t>(q * trips.size()));
		return trips[i] / 1000.0;
	};
	printf("{\"hops\": %d, \"gap_us\": %d, \"trips\": %zu, \"p50\": %.1f, \"p99\": %.1f, "
	       "\"p999\": %.1f, \"max\": %.1f}\n",
	       hops, gap_us, trips.size(), pct(0.5), pct(0.99), pct(0.999), trips.back() / 1000.0);
	return 0;
}
