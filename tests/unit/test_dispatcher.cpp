/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dispatch::Dispatcher with a ManualClock and fake jobs: a worker per key,
 * FIFO and parallelism within a key, isolation between keys, the root
 * worker and its fallbacks, reaping, statistics, and shutdown.
 *
 * Nothing sleeps: tests wait on condition variables (or poll workers()),
 * every wait bounded by wait_limit. A FakeJob can be held in flight on a
 * Gate. Objects a left-behind worker thread may still touch are never freed.
 */
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "dispatch/clock.hpp"
#include "dispatch/dispatcher.hpp"
#include "dispatch/job.hpp"
#include "dispatch/stats.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define CGL_TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CGL_TEST_LSAN 1
#endif
#endif
#ifdef CGL_TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

using namespace cgloopfs::dispatch;
using namespace std::chrono_literals;

namespace {

constexpr auto wait_limit = 5s;
constexpr int64_t second = 1000000000;

/*
 * Allocations made while this lives are not reported as leaks: a shutdown
 * that gives up on a stuck worker leaks it on purpose (its thread still
 * runs), and LeakSanitizer would count it.
 */
class LeaksExpected
{
public:
#ifdef CGL_TEST_LSAN
	LeaksExpected()
	{
		__lsan_disable();
	}
	~LeaksExpected()
	{
		__lsan_enable();
	}
#else
	LeaksExpected() = default;
#endif
	LeaksExpected(const LeaksExpected &) = delete;
	LeaksExpected &operator=(const LeaksExpected &) = delete;
};

/* Holds a job in run() until opened. */
class Gate
{
public:
	void open()
	{
		std::lock_guard<std::mutex> l(mutex_);
		open_ = true;
		cv_.notify_all();
	}

	/* False if nobody opened it in time (the test failed; let the thread go). */
	bool wait()
	{
		std::unique_lock<std::mutex> l(mutex_);
		return cv_.wait_for(l, 20s, [&] { return open_; });
	}

private:
	std::mutex mutex_;
	std::condition_variable cv_;
	bool open_ = false;
};

/* Everything the jobs of one test report, under one lock. */
class Log
{
public:
	std::mutex mutex;
	std::condition_variable cv;
	int next_order = 0;	  /* guarded by mutex */
	std::vector<int> started; /* job ids in the order run() began; guarded by mutex */
	std::atomic<int> double_releases{0};
	std::atomic<int> runs_after_release{0};
	std::atomic<int> gate_timeouts{0};

	/* Wait (bounded) until pred() holds; pred runs with the lock held. */
	template <typename Pred> bool wait(Pred pred)
	{
		std::unique_lock<std::mutex> l(mutex);
		return cv.wait_for(l, wait_limit, pred);
	}
};

class FakeJob : public Job
{
public:
	FakeJob(Log &log, int id, uint64_t cgroup, Gate *gate, JobOutcome outcome)
		: log_(log), id_(id), gate_(gate), outcome_(outcome)
	{
		cgroup_id = cgroup;
	}

	JobOutcome run(WorkerContext &ctx) noexcept override
	{
		char name[32] = "";
		pthread_getname_np(pthread_self(), name, sizeof(name));
		/* The context's buffers belong to this thread: usable here. */
		bool buffers_ok = ctx.data.reserve(4096) && ctx.scratch.reserve(4096);
		{
			std::lock_guard<std::mutex> l(log_.mutex);
			if (releases_ > 0)
				log_.runs_after_release++;
			runs_++;
			order_ = log_.next_order++;
			thread_name_ = name;
			thread_ = std::this_thread::get_id();
			tid_ = gettid();
			buffers_ok_ = buffers_ok;
			log_.started.push_back(id_);
			log_.cv.notify_all();
		}
		if (gate_ && !gate_->wait())
			log_.gate_timeouts++;
		{
			std::lock_guard<std::mutex> l(log_.mutex);
			finished_ = true;
			log_.cv.notify_all();
		}
		return outcome_;
	}

	bool cancel(int err) noexcept override
	{
		std::lock_guard<std::mutex> l(log_.mutex);
		cancels_++;
		cancel_err_ = err;
		answered_.store(true, std::memory_order_relaxed);
		log_.cv.notify_all();
		return cancels_ == 1;
	}

	/* Called under a worker's mutex: takes no lock, as Job asks. */
	bool answered() noexcept override { return answered_.load(std::memory_order_relaxed); }

	void release() noexcept override
	{
		std::lock_guard<std::mutex> l(log_.mutex);
		if (releases_ > 0)
			log_.double_releases++;
		releases_++;
		log_.cv.notify_all();
	}

	/* Readers: with log.mutex held (inside Log::wait predicates) or via these. */
	int runs() const { return get(runs_); }
	int releases() const { return get(releases_); }
	int cancels() const { return get(cancels_); }
	int cancel_err() const { return get(cancel_err_); }
	int order() const { return get(order_); }
	bool finished() const { return get(finished_); }
	bool buffers_ok() const { return get(buffers_ok_); }
	std::string thread_name() const { return get(thread_name_); }
	std::thread::id thread() const { return get(thread_); }
	pid_t tid() const { return get(tid_); }
	int id() const { return id_; }

	/* Unlocked views, for predicates that already hold log.mutex. */
	bool started_locked() const { return runs_ > 0; }
	bool released_locked() const { return releases_ > 0; }

private:
	template <typename T> T get(const T &field) const
	{
		std::lock_guard<std::mutex> l(log_.mutex);
		return field;
	}

	Log &log_;
	const int id_;
	Gate *const gate_;
	const JobOutcome outcome_;
	int runs_ = 0, releases_ = 0, cancels_ = 0, cancel_err_ = 0, order_ = -1;
	std::atomic<bool> answered_{false}; /* cancels_ > 0 */
	bool finished_ = false, buffers_ok_ = false;
	std::string thread_name_;
	std::thread::id thread_;
	pid_t tid_ = 0;
};

/*
 * One dispatcher with its clock, jobs and gates. Members are declared so
 * that the dispatcher goes first; the destructor opens every gate first, so
 * a test that fails half-way never leaves a thread on a freed job.
 */
class Harness
{
public:
	explicit Harness(Config config, Dispatcher::SpawnTroubleFn on_trouble = {})
	{
		config.reaper_thread = false;
		dispatcher = std::make_unique<Dispatcher>(config, clock, [this](const Job &job) {
			path_calls++;
			return "/cg/" + std::to_string(job.cgroup_id);
		});
		if (on_trouble)
			dispatcher->on_spawn_trouble(std::move(on_trouble));
		REQUIRE(dispatcher->start());
	}

	~Harness()
	{
		for (auto &g : gates)
			g.open();
		if (dispatcher)
			(void)dispatcher->shutdown(20 * second);
	}

	Harness(const Harness &) = delete;
	Harness &operator=(const Harness &) = delete;

	Gate &gate() { return gates.emplace_back(); }

	FakeJob &job(uint64_t cgroup, Gate *g = nullptr, JobOutcome outcome = {})
	{
		return jobs.emplace_back(log, static_cast<int>(jobs.size()), cgroup, g, outcome);
	}

	FakeJob &submit(uint64_t cgroup, Gate *g = nullptr, JobOutcome outcome = {})
	{
		FakeJob &j = job(cgroup, g, outcome);
		dispatcher->submit(&j);
		return j;
	}

	bool wait_started(const FakeJob &j)
	{
		return log.wait([&] { return j.started_locked(); });
	}

	bool wait_released(const FakeJob &j)
	{
		return log.wait([&] { return j.released_locked(); });
	}

	bool wait_all_released()
	{
		return log.wait([&] {
			for (const auto &j : jobs)
				if (!j.released_locked())
					return false;
			return true;
		});
	}

	bool wait_started_count(size_t n)
	{
		return log.wait([&] { return log.started.size() >= n; });
	}

	/* The worker of `cgroup` in workers(), or nullptr. */
	std::unique_ptr<WorkerInfo> worker(uint64_t cgroup, bool root = false) const
	{
		for (const auto &w : dispatcher->workers())
			if (w.cgroup_id == cgroup && w.root == root)
				return std::make_unique<WorkerInfo>(w);
		return nullptr;
	}

	/* Poll until pred() holds; bounded, no sleeping. */
	template <typename Pred> static bool poll(Pred pred)
	{
		auto deadline = std::chrono::steady_clock::now() + wait_limit;
		while (!pred()) {
			if (std::chrono::steady_clock::now() > deadline)
				return false;
			std::this_thread::yield();
		}
		return true;
	}

	/* Every job ran exactly once and was released exactly once. */
	void check_every_job_once()
	{
		for (const auto &j : jobs) {
			CAPTURE(j.id());
			CHECK(j.runs() == 1);
			CHECK(j.releases() == 1);
			CHECK(j.buffers_ok());
		}
		CHECK(log.double_releases == 0);
		CHECK(log.runs_after_release == 0);
		CHECK(log.gate_timeouts == 0);
	}

	ManualClock clock;
	Log log;
	std::deque<Gate> gates;
	std::deque<FakeJob> jobs;
	std::atomic<int> path_calls{0};
	std::unique_ptr<Dispatcher> dispatcher;
};

Config config_with(unsigned depth = 4, unsigned max_workers = 64,
		   int64_t idle_timeout_ns = 60 * second, Mode mode = Mode::cgroup)
{
	Config c;
	c.mode = mode;
	c.worker_depth = depth;
	c.max_workers = max_workers;
	c.idle_timeout_ns = idle_timeout_ns;
	c.reaper_thread = false;
	return c;
}

std::shared_ptr<const CgroupStats> stats_of(const Dispatcher &d, uint64_t id)
{
	for (const auto &s : d.stats())
		if (s->id == id)
			return s;
	return nullptr;
}

/* Objects that must outlive every thread (see the stuck-shutdown test). */
template <typename T> T *immortal(T *p)
{
	static auto *keep = new std::vector<void *>;
	keep->push_back(p);
	return p;
}

} /* namespace */

TEST_CASE("each cgroup gets its own worker; cgroup 0 the root")
{
	Harness h(config_with());
	FakeJob &a = h.submit(7);
	FakeJob &b = h.submit(9);
	FakeJob &r = h.submit(0);
	REQUIRE(h.wait_all_released());

	CHECK(a.thread_name() == "cgl:7");
	CHECK(b.thread_name() == "cgl:9");
	CHECK(r.thread_name() == "cgl-root");
	CHECK(a.thread() != b.thread());
	CHECK(a.thread() != r.thread());
	CHECK(b.thread() != r.thread());

	auto ws = h.dispatcher->workers();
	REQUIRE(ws.size() == 3);
	CHECK(ws[0].root);
	CHECK(ws[0].cgroup_id == 0);
	CHECK(ws[0].path == "/");
	CHECK_FALSE(ws[1].root);
	CHECK(ws[1].cgroup_id == 7);
	CHECK(ws[1].path == "/cg/7");
	CHECK_FALSE(ws[2].root);
	CHECK(ws[2].cgroup_id == 9);
	CHECK(ws[2].path == "/cg/9");
	for (const auto &w : ws) {
		CAPTURE(w.cgroup_id);
		CHECK(w.served == 1);
		CHECK(w.queued == 0);
		CHECK(w.in_flight == 0);
		CHECK(w.threads >= 1);
		CHECK(w.state == WorkerState::idle);
	}

	/* A second job of a known cgroup reuses its worker: no new name lookup. */
	FakeJob &a2 = h.submit(7);
	REQUIRE(h.wait_released(a2));
	CHECK(a2.thread_name() == "cgl:7");
	CHECK(h.path_calls == 2);

	DispatchTotals t = h.dispatcher->totals();
	CHECK(t.workers_created == 2);
	CHECK(t.root_fallbacks == 0);
	CHECK(t.spawn_failures == 0);
	CHECK(t.workers_reaped == 0);

	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("cgroup 0 is served by the root worker")
{
	Harness h(config_with());
	for (int i = 0; i < 5; i++)
		h.submit(0);
	REQUIRE(h.wait_all_released());
	for (const auto &j : h.jobs)
		CHECK(j.thread_name() == "cgl-root");
	auto ws = h.dispatcher->workers();
	REQUIRE(ws.size() == 1);
	CHECK(ws[0].root);
	CHECK(ws[0].served == 5);
	CHECK(h.path_calls == 0);
	CHECK(h.dispatcher->totals().workers_created == 0);
	CHECK(h.dispatcher->totals().root_fallbacks == 0);
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("FIFO within a cgroup with worker_depth=1")
{
	Harness h(config_with(1));
	Gate &g = h.gate();
	FakeJob &first = h.submit(7, &g);
	REQUIRE(h.wait_started(first));
	const int n = 20;
	for (int i = 0; i < n; i++)
		h.submit(7);

	auto w = h.worker(7);
	REQUIRE(w);
	CHECK(w->in_flight == 1);
	CHECK(w->queued == static_cast<size_t>(n));
	CHECK(w->threads == 1);
	CHECK(w->state == WorkerState::active);

	g.open();
	REQUIRE(h.wait_all_released());
	for (const auto &j : h.jobs) {
		CAPTURE(j.id());
		CHECK(j.order() == j.id());
		CHECK(j.thread() == first.thread());
	}
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("parallel within a cgroup up to worker_depth=3")
{
	Harness h(config_with(3));
	Gate &g = h.gate();
	FakeJob &a = h.submit(7, &g);
	FakeJob &b = h.submit(7, &g);
	FakeJob &c = h.submit(7, &g);
	FakeJob &d = h.submit(7, &g);
	/* Three at once in flight: they all started while the gate is shut. */
	REQUIRE(h.wait_started_count(3));
	auto w = h.worker(7);
	REQUIRE(w);
	CHECK(w->in_flight == 3);
	CHECK(w->queued == 1);
	CHECK(w->threads == 3);
	CHECK(a.thread() != b.thread());
	CHECK(b.thread() != c.thread());
	CHECK(a.thread() != c.thread());
	/* The fourth waits for a free thread: never more than the depth. */
	CHECK_FALSE(d.runs());

	g.open();
	REQUIRE(h.wait_all_released());
	w = h.worker(7);
	REQUIRE(w);
	CHECK(w->threads <= 3);
	CHECK(w->served == 4);
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("a stalled cgroup does not delay another")
{
	Harness h(config_with(1));
	Gate &g = h.gate();
	FakeJob &stalled = h.submit(7, &g);
	REQUIRE(h.wait_started(stalled));
	FakeJob &behind = h.submit(7); /* queued behind the stalled one */
	FakeJob &other = h.submit(9);
	FakeJob &root = h.submit(0);
	FakeJob &third = h.submit(11);

	REQUIRE(h.wait_released(other));
	REQUIRE(h.wait_released(root));
	REQUIRE(h.wait_released(third));
	CHECK_FALSE(stalled.finished());
	CHECK(behind.runs() == 0);

	g.open();
	REQUIRE(h.wait_all_released());
	CHECK(behind.order() > stalled.order());
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("the root worker is not delayed by a stalled cgroup, nor the reverse")
{
	Harness h(config_with(1));
	Gate &g = h.gate();
	FakeJob &stalled_root = h.submit(0, &g);
	REQUIRE(h.wait_started(stalled_root));
	FakeJob &x = h.submit(5);
	REQUIRE(h.wait_released(x));
	CHECK(x.thread_name() == "cgl:5");
	CHECK_FALSE(stalled_root.finished());
	g.open();
	REQUIRE(h.wait_all_released());
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("Mode::single serves everything from the root worker")
{
	Harness h(config_with(4, 64, 60 * second, Mode::single));
	for (uint64_t cg : {7, 9, 0, 7, 12345})
		h.submit(cg, nullptr, {JobKind::read, 10, false});
	REQUIRE(h.wait_all_released());
	for (const auto &j : h.jobs)
		CHECK(j.thread_name() == "cgl-root");
	auto ws = h.dispatcher->workers();
	REQUIRE(ws.size() == 1);
	CHECK(ws[0].root);
	CHECK(ws[0].served == 5);
	DispatchTotals t = h.dispatcher->totals();
	CHECK(t.workers_created == 0);
	CHECK(t.root_fallbacks == 0);
	CHECK(h.path_calls == 0);
	auto root = stats_of(*h.dispatcher, 0);
	REQUIRE(root);
	CHECK(root->reads == 5);
	CHECK(root->bytes_read == 50);
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("max_workers=2: the other cgroups fall back to the root worker")
{
	Harness h(config_with(4, 2, 10 * second));
	for (uint64_t cg = 1; cg <= 5; cg++)
		h.submit(cg);
	REQUIRE(h.wait_all_released());

	CHECK(h.jobs[0].thread_name() == "cgl:1");
	CHECK(h.jobs[1].thread_name() == "cgl:2");
	for (int i = 2; i < 5; i++)
		CHECK(h.jobs[i].thread_name() == "cgl-root");
	auto ws = h.dispatcher->workers();
	REQUIRE(ws.size() == 3);
	CHECK(ws[0].root);
	CHECK(ws[0].served == 3);
	CHECK(ws[1].cgroup_id == 1);
	CHECK(ws[2].cgroup_id == 2);
	DispatchTotals t = h.dispatcher->totals();
	CHECK(t.workers_created == 2);
	CHECK(t.root_fallbacks == 3);
	CHECK(t.spawn_failures == 0);

	/* A cgroup that has a worker keeps using it: not a fallback. */
	FakeJob &again = h.submit(1);
	REQUIRE(h.wait_released(again));
	CHECK(again.thread_name() == "cgl:1");
	CHECK(h.dispatcher->totals().root_fallbacks == 3);

	/* Reaping frees the slots: cgroup 3 then gets a worker of its own. */
	h.clock.advance_ns(11 * second);
	CHECK(h.dispatcher->reap() == 2);
	FakeJob &three = h.submit(3);
	REQUIRE(h.wait_released(three));
	CHECK(three.thread_name() == "cgl:3");
	CHECK(h.dispatcher->totals().workers_created == 3);

	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("a worker that cannot be made: the root worker serves the job")
{
	Harness h(config_with());
	h.dispatcher->fail_next_spawns(1);
	FakeJob &j = h.submit(7);
	REQUIRE(h.wait_released(j));
	CHECK(j.thread_name() == "cgl-root");
	DispatchTotals t = h.dispatcher->totals();
	CHECK(t.spawn_failures == 1);
	CHECK(t.root_fallbacks == 1);
	CHECK(t.workers_created == 0);
	CHECK(h.dispatcher->workers().size() == 1);

	/* The next job of that cgroup tries again, and gets its worker. */
	FakeJob &k = h.submit(7);
	REQUIRE(h.wait_released(k));
	CHECK(k.thread_name() == "cgl:7");
	t = h.dispatcher->totals();
	CHECK(t.spawn_failures == 1);
	CHECK(t.workers_created == 1);
	CHECK(h.dispatcher->workers().size() == 2);

	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("worker creation failing is reported once per episode, not per job")
{
	/*
	 * reap() calls back on this thread (no reaper thread here). Depth 1: the
	 * root worker never starts a second thread, which would take one of the
	 * failures fail_next_spawns() hands out.
	 */
	std::vector<SpawnTrouble> events;
	Harness h(config_with(1), [&](const SpawnTrouble &t) { events.push_back(t); });
	auto served_by = [&](uint64_t cgroup) {
		FakeJob &j = h.submit(cgroup);
		REQUIRE(h.wait_released(j));
		return j.thread_name();
	};

	/* Five cgroups cannot get a worker: the root worker serves them, one event. */
	h.dispatcher->fail_next_spawns(5);
	for (uint64_t c = 10; c < 15; c++)
		CHECK(served_by(c) == "cgl-root");
	CHECK(h.dispatcher->totals().spawn_failures == 5);
	CHECK(h.dispatcher->reap() == 0);
	REQUIRE(events.size() == 1);
	CHECK(events[0].failing);
	CHECK(events[0].error == EAGAIN);
	CHECK(events[0].path == "/cg/14");
	CHECK(events[0].failures == 5);

	/* Still failing: more failures, no second report. */
	h.dispatcher->fail_next_spawns(2);
	CHECK(served_by(20) == "cgl-root");
	CHECK(served_by(20) == "cgl-root");
	CHECK(h.dispatcher->reap() == 0);
	CHECK(h.dispatcher->reap() == 0);
	CHECK(events.size() == 1);

	/* A worker is made again: one recovery report, with the episode's count. */
	CHECK(served_by(20) == "cgl:20");
	CHECK(h.dispatcher->reap() == 0);
	REQUIRE(events.size() == 2);
	CHECK_FALSE(events[1].failing);
	CHECK(events[1].failures == 7);
	CHECK(h.dispatcher->reap() == 0);
	CHECK(events.size() == 2);

	/*
	 * A new episode is reported anew. Failures and successes in one reaper
	 * period keep it open (no flapping reports); a period with successes
	 * only closes it.
	 */
	h.dispatcher->fail_next_spawns(1);
	CHECK(served_by(30) == "cgl-root");
	CHECK(h.dispatcher->reap() == 0);
	REQUIRE(events.size() == 3);
	CHECK(events[2].failing);
	CHECK(events[2].path == "/cg/30");
	CHECK(events[2].failures == 1);
	h.dispatcher->fail_next_spawns(1);
	CHECK(served_by(31) == "cgl-root");
	CHECK(served_by(32) == "cgl:32");
	CHECK(h.dispatcher->reap() == 0);
	CHECK(events.size() == 3);
	CHECK(served_by(33) == "cgl:33");
	CHECK(h.dispatcher->reap() == 0);
	REQUIRE(events.size() == 4);
	CHECK_FALSE(events[3].failing);
	CHECK(events[3].failures == 2);

	/* Nothing failed: the reaper stays quiet. */
	CHECK(served_by(34) == "cgl:34");
	CHECK(h.dispatcher->reap() == 0);
	CHECK(events.size() == 4);

	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("a worker that cannot add threads still serves its whole queue")
{
	Harness h(config_with(4));
	FakeJob &first = h.submit(7);
	REQUIRE(h.wait_released(first));
	h.dispatcher->fail_next_spawns(100);
	Gate &g = h.gate();
	for (int i = 0; i < 6; i++)
		h.submit(7, &g);
	REQUIRE(h.wait_started_count(2));
	g.open();
	REQUIRE(h.wait_all_released());
	h.dispatcher->fail_next_spawns(0);
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("reaping: an idle worker goes after idle_timeout, a new one comes back")
{
	Harness h(config_with(4, 64, 10 * second));
	FakeJob &j = h.submit(7);
	REQUIRE(h.wait_released(j));
	REQUIRE(h.worker(7));

	CHECK(h.dispatcher->reap() == 0);
	h.clock.advance_ns(9 * second);
	CHECK(h.dispatcher->reap() == 0);
	REQUIRE(h.worker(7));
	h.clock.advance_ns(2 * second);
	CHECK(h.dispatcher->reap() == 1);
	CHECK_FALSE(h.worker(7));
	CHECK(h.dispatcher->totals().workers_reaped == 1);
	/* The root worker is never reaped. */
	REQUIRE(h.worker(0, true));
	CHECK(h.dispatcher->reap() == 0);

	FakeJob &k = h.submit(7);
	REQUIRE(h.wait_released(k));
	CHECK(k.thread_name() == "cgl:7");
	REQUIRE(h.worker(7));
	CHECK(h.worker(7)->served == 1); /* a new worker */
	CHECK(h.dispatcher->totals().workers_created == 2);
	CHECK(h.path_calls == 2);

	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("reaping: a busy worker is never reaped")
{
	Harness h(config_with(1, 64, 1 * second));
	Gate &g = h.gate();
	FakeJob &idle = h.submit(7);
	REQUIRE(h.wait_released(idle));
	FakeJob &busy = h.submit(9, &g);
	FakeJob &queued = h.submit(9);
	REQUIRE(h.wait_started(busy));

	h.clock.advance_ns(100 * second);
	CHECK(h.dispatcher->reap() == 1); /* cgroup 7 only */
	CHECK_FALSE(h.worker(7));
	auto w = h.worker(9);
	REQUIRE(w);
	CHECK(w->in_flight == 1);
	CHECK(w->queued == 1);
	h.clock.advance_ns(100 * second);
	CHECK(h.dispatcher->reap() == 0);

	g.open();
	REQUIRE(h.wait_released(queued));
	REQUIRE(Harness::poll([&] {
		auto x = h.worker(9);
		return x && x->in_flight == 0 && x->queued == 0;
	}));
	/* Just finished: idle since now, not since before. */
	CHECK(h.dispatcher->reap() == 0);
	REQUIRE(h.worker(9));
	h.clock.advance_ns(2 * second);
	CHECK(h.dispatcher->reap() == 1);
	CHECK_FALSE(h.worker(9));
	CHECK(h.dispatcher->totals().workers_reaped == 2);

	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("set_limits: a shorter idle_timeout applies to the next reap")
{
	Harness h(config_with(4, 64, 60 * second));
	FakeJob &j = h.submit(7);
	REQUIRE(h.wait_released(j));
	h.clock.advance_ns(2 * second);
	CHECK(h.dispatcher->reap() == 0);
	h.dispatcher->set_limits(1 * second, 8, 2);
	CHECK(h.dispatcher->config().idle_timeout_ns == 1 * second);
	CHECK(h.dispatcher->config().max_workers == 8);
	CHECK(h.dispatcher->config().worker_depth == 2);
	CHECK(h.dispatcher->reap() == 1);
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("stats: per-cgroup counts, kept after the worker is reaped")
{
	Harness h(config_with(4, 64, 10 * second));
	h.submit(7, nullptr, {JobKind::read, 4096, false});
	h.submit(7, nullptr, {JobKind::read, 100, true});
	h.submit(7, nullptr, {JobKind::write, 512, false});
	h.submit(9, nullptr, {JobKind::sync, 0, false});
	h.submit(0, nullptr, {JobKind::discard, 0, false});
	REQUIRE(h.wait_all_released());

	auto all = h.dispatcher->stats();
	REQUIRE(all.size() == 3);
	CHECK(all[0]->path == "/");
	CHECK(all[1]->path == "/cg/7");
	CHECK(all[2]->path == "/cg/9");

	auto s7 = stats_of(*h.dispatcher, 7);
	REQUIRE(s7);
	CHECK(s7->reads == 2);
	CHECK(s7->bytes_read == 4196);
	CHECK(s7->writes == 1);
	CHECK(s7->bytes_written == 512);
	CHECK(s7->errors == 1);
	CHECK(s7->latency.count() == 3);
	auto s9 = stats_of(*h.dispatcher, 9);
	REQUIRE(s9);
	CHECK(s9->syncs == 1);
	CHECK(s9->reads == 0);
	auto s0 = stats_of(*h.dispatcher, 0);
	REQUIRE(s0);
	CHECK(s0->discards == 1);

	h.clock.advance_ns(11 * second);
	CHECK(h.dispatcher->reap() == 2);
	CHECK(h.dispatcher->workers().size() == 1);
	s7 = stats_of(*h.dispatcher, 7);
	REQUIRE(s7);
	CHECK(s7->reads == 2);
	CHECK(s7->bytes_read == 4196);
	CHECK(s7->writes == 1);
	CHECK(s7->errors == 1);
	CHECK(stats_of(*h.dispatcher, 9));

	/* A new worker of the same cgroup adds to the same figures. */
	FakeJob &more = h.submit(7, nullptr, {JobKind::write, 1000, false});
	REQUIRE(h.wait_released(more));
	s7 = stats_of(*h.dispatcher, 7);
	REQUIRE(s7);
	CHECK(s7->writes == 2);
	CHECK(s7->bytes_written == 1512);
	CHECK(s7->reads == 2);

	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("stats: latency is measured on the injected clock")
{
	Harness h(config_with());
	Gate &g = h.gate();
	FakeJob &j = h.submit(7, &g);
	REQUIRE(h.wait_started(j));
	h.clock.advance_ns(3000000); /* 3 ms "pass" while it runs */
	g.open();
	REQUIRE(h.wait_released(j));
	auto s = stats_of(*h.dispatcher, 7);
	REQUIRE(s);
	REQUIRE(s->latency.count() == 1);
	uint64_t p50 = s->latency.quantile(0.5);
	/* The middle of its histogram bucket: within 12.5% of 3 ms. */
	CHECK(p50 >= 3000000 * 7 / 8);
	CHECK(p50 <= 3000000 * 9 / 8);
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("stats: at most max_stats entries; idle ones are dropped first")
{
	Config c = config_with(4, 64, 1 * second);
	c.max_stats = 3;
	Harness h(c);
	for (uint64_t cg = 1; cg <= 6; cg++) {
		FakeJob &j = h.submit(cg);
		REQUIRE(h.wait_released(j));
		h.clock.advance_ns(2 * second);
		CHECK(h.dispatcher->reap() == 1);
		CHECK(h.dispatcher->stats().size() <= 3);
	}
	CHECK(stats_of(*h.dispatcher, 0)); /* the root's are never dropped */
	CHECK(stats_of(*h.dispatcher, 6)); /* the newest are kept */
	CHECK_FALSE(stats_of(*h.dispatcher, 1));
	CHECK(h.dispatcher->shutdown(5 * second));
	h.check_every_job_once();
}

TEST_CASE("shutdown drains: every queued job runs and is released once")
{
	Harness h(config_with(1));
	Gate &g = h.gate();
	std::vector<FakeJob *> heads;
	for (uint64_t cg : {0, 7, 9}) {
		heads.push_back(&h.submit(cg, &g));
		for (int i = 0; i < 10; i++)
			h.submit(cg);
	}
	for (FakeJob *j : heads)
		REQUIRE(h.wait_started(*j));

	bool clean = false;
	std::thread stopper([&] { clean = h.dispatcher->shutdown(10 * second); });
	/* workers() is empty once shutdown has begun. */
	bool begun = Harness::poll([&] { return h.dispatcher->workers().empty(); });
	g.open();
	stopper.join();
	CHECK(begun);
	CHECK(clean);
	for (const auto &j : h.jobs)
		CHECK(j.cancels() == 0);
	/* Still FIFO per cgroup while draining. */
	for (size_t i = 1; i < h.jobs.size(); i++)
		if (h.jobs[i].cgroup_id == h.jobs[i - 1].cgroup_id)
			CHECK(h.jobs[i].order() > h.jobs[i - 1].order());
	h.check_every_job_once();
}

TEST_CASE("after shutdown, a job is answered with EIO and released, never run")
{
	Harness h(config_with());
	FakeJob &before = h.submit(7);
	REQUIRE(h.wait_released(before));
	CHECK(h.dispatcher->shutdown(5 * second));
	CHECK(h.dispatcher->workers().empty());

	FakeJob &late = h.submit(7);
	FakeJob &late_new = h.submit(8);
	FakeJob &late_root = h.submit(0);
	REQUIRE(h.wait_all_released());
	for (FakeJob *j : {&late, &late_new, &late_root}) {
		CAPTURE(j->id());
		CHECK(j->runs() == 0);
		CHECK(j->cancels() == 1);
		CHECK(j->cancel_err() == EIO);
		CHECK(j->releases() == 1);
	}
	CHECK(h.log.double_releases == 0);
	/* A second shutdown is harmless. */
	CHECK(h.dispatcher->shutdown(5 * second));
}

TEST_CASE("shutdown with a stuck job: gives up after the grace, cancels with EIO")
{
	/*
	 * The stuck thread outlives this test: its job, gate, log, clock and
	 * dispatcher are never freed, and the worker it runs on is leaked by
	 * shutdown on purpose.
	 */
	[[maybe_unused]] LeaksExpected leaks;
	Harness &h = *immortal(new Harness(config_with(1)));
	Gate &g = h.gate();
	FakeJob &stuck = h.submit(7, &g);
	FakeJob &q1 = h.submit(7);
	FakeJob &q2 = h.submit(7);
	FakeJob &fine = h.submit(9);
	REQUIRE(h.wait_started(stuck));
	REQUIRE(h.wait_released(fine));

	CHECK_FALSE(h.dispatcher->shutdown(50000000)); /* 50 ms */

	CHECK(stuck.cancels() == 1);
	CHECK(stuck.cancel_err() == EIO);
	CHECK(stuck.releases() == 0); /* still in run(): released when it returns */
	for (FakeJob *q : {&q1, &q2}) {
		CAPTURE(q->id());
		CHECK(q->runs() == 0);
		CHECK(q->cancels() == 1);
		CHECK(q->cancel_err() == EIO);
		CHECK(q->releases() == 1);
	}
	CHECK(fine.cancels() == 0);
	CHECK(fine.releases() == 1);

	/* Let the stuck thread go: it finishes run() and releases its job, once. */
	g.open();
	REQUIRE(h.wait_released(stuck));
	CHECK(stuck.runs() == 1);
	CHECK(stuck.releases() == 1);
	CHECK(q1.runs() == 0);
	CHECK(q2.runs() == 0);
	CHECK(h.log.double_releases == 0);
	CHECK(h.log.runs_after_release == 0);
	/* And it ends: the next test forks, which wants one thread (a thread sanitizer does). */
	std::string task = "/proc/self/task/" + std::to_string(stuck.tid());
	CHECK(Harness::poll([&] { return access(task.c_str(), F_OK) != 0; }));
}

/*
 * Regression (fixed; was: src/dispatch/dispatcher.cpp): when shutdown() gives up on a
 * stuck root worker, stop_one() does root_.release() and root_ becomes null;
 * a later submit() of a cgroup-0 job (or any job in Mode::single, or any
 * fallback) calls root_->enqueue() on that null pointer and crashes. With a
 * clean shutdown the same submit() is answered EIO (see the test above).
 * Run in a child process, since the bug kills the process.
 */
TEST_CASE("submit after a shutdown that left the root worker stuck answers EIO")
{
	/*
	 * Fork single-threaded (a thread sanitizer refuses to start threads in
	 * the child of a multi-threaded fork): the thread an earlier test left
	 * stuck on purpose ends a moment after its job was released.
	 */
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* The child: no doctest here (nor its crash handlers), only an exit code. */
		for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE})
			signal(sig, SIG_DFL);
		ManualClock clock;
		Log log;
		Gate gate;
		Dispatcher d(config_with(1), clock, nullptr);
		if (!d.start())
			_exit(2);
		FakeJob stuck(log, 0, 0, &gate, {});
		d.submit(&stuck);
		if (!log.wait([&] { return stuck.started_locked(); }))
			_exit(3);
		if (d.shutdown(50000000))
			_exit(4);
		FakeJob late(log, 1, 0, nullptr, {});
		d.submit(&late);
		if (!log.wait([&] { return late.released_locked(); }))
			_exit(5);
		_exit(late.runs() == 0 && late.cancel_err() == EIO ? 0 : 6);
	}
	int status = 0;
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CAPTURE(status);
	CHECK(WIFEXITED(status));
	CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("expire: past request_timeout, queued jobs leave their queue and running ones are "
	  "answered EIO")
{
	Config c = config_with(1);
	c.request_timeout_ns = 10 * second;
	Harness h(c);
	Gate &g = h.gate();
	FakeJob &running = h.submit(7, &g);
	REQUIRE(h.wait_started(running));
	FakeJob &queued = h.submit(7);
	FakeJob &other = h.submit(8); /* another cgroup, done at once */
	REQUIRE(h.wait_released(other));

	h.clock.advance_ns(9 * second);
	h.dispatcher->expire();
	CHECK(running.cancels() == 0);
	CHECK(queued.cancels() == 0);
	CHECK(h.dispatcher->totals().timeouts == 0);

	h.clock.advance_ns(1 * second);
	h.dispatcher->expire();
	CHECK(running.cancels() == 1);
	CHECK(running.cancel_err() == EIO);
	CHECK(queued.cancels() == 1);
	CHECK(queued.cancel_err() == EIO);
	REQUIRE(h.wait_released(queued)); /* out of the queue, never run */
	CHECK(queued.runs() == 0);
	CHECK(h.worker(7)->queued == 0);
	CHECK(h.dispatcher->totals().timeouts == 2);
	CHECK(other.cancels() == 0);
	/* And per cgroup: both were cgroup 7's. */
	CHECK(stats_of(*h.dispatcher, 7)->timeouts == 2);
	CHECK(stats_of(*h.dispatcher, 7)->interrupted == 0);
	CHECK(stats_of(*h.dispatcher, 8)->timeouts == 0);

	/* A second pass answers nobody twice; the late completion is only released. */
	h.dispatcher->expire();
	CHECK(running.cancels() == 1);
	CHECK(h.dispatcher->totals().timeouts == 2);
	g.open();
	REQUIRE(h.wait_released(running));
	CHECK(running.runs() == 1);
}

TEST_CASE("expire: a running job interrupted a grace ago is answered EINTR, a queued answered one "
	  "is dropped")
{
	Config c = config_with(1);
	c.request_timeout_ns = 0; /* no deadline */
	c.interrupt_grace_ns = 1 * second;
	Harness h(c);
	Gate &g = h.gate();
	FakeJob &running = h.submit(7, &g);
	REQUIRE(h.wait_started(running));
	FakeJob &queued = h.submit(7);
	running.interrupted_at(h.clock.now_ns());
	(void)queued.cancel(EINTR); /* what an interrupt does to a queued request */

	h.clock.advance_ns(second / 2);
	h.dispatcher->expire();
	CHECK(running.cancels() == 0);
	REQUIRE(h.wait_released(queued));
	CHECK(queued.runs() == 0);
	CHECK(queued.cancel_err() == EINTR);

	h.clock.advance_ns(second / 2);
	h.dispatcher->expire();
	CHECK(running.cancels() == 1);
	CHECK(running.cancel_err() == EINTR);
	CHECK(h.dispatcher->totals().interrupted == 1);
	CHECK(h.dispatcher->totals().timeouts == 0);
	/* Per cgroup, what the dispatcher answered (the queued one was answered by its owner). */
	CHECK(stats_of(*h.dispatcher, 7)->interrupted == 1);
	CHECK(stats_of(*h.dispatcher, 7)->timeouts == 0);

	/* Days later, still no deadline: nothing else happens. */
	h.clock.advance_ns(86400 * second);
	h.dispatcher->expire();
	CHECK(running.cancels() == 1);
	g.open();
	REQUIRE(h.wait_released(running));
}

/* ---- workers with a host process (charge=cgroup): the fast path ---- */

namespace {

/*
 * A stand-in for a worker's host process: a thread that serves the slots
 * jobs are posted to (Job::post), one at a time, and says when each is
 * answered and finished, as fuse/charge.cpp's host does through shared
 * memory. It can stop serving (stuck) and be declared dead.
 */
class FakeHost final : public Host
{
public:
	enum : int { idle = 0, posted = 1, answering_now = 2, done = 3 };

	FakeHost()
	{
		thread_ = std::thread([this] { serve(); });
	}
	~FakeHost() override
	{
		stop_ = true;
		thread_.join();
	}
	FakeHost(const FakeHost &) = delete;
	FakeHost &operator=(const FakeHost &) = delete;

	int pid() const noexcept override { return 4242; }
	bool dead() const noexcept override { return died; }
	bool dying() const noexcept override { return died; }
	bool retired() const noexcept override { return leaving; }
	bool refused(unsigned slot) const noexcept override
	{
		return leaving && state[slot] == posted;
	}
	bool finished(unsigned slot) const noexcept override { return state[slot] == done; }
	bool answering(unsigned slot) const noexcept override
	{
		return state[slot] >= answering_now;
	}

	void nudge(unsigned slot) noexcept override
	{
		if (state[slot] == posted)
			nudges++;
	}

	void leave_when_idle() noexcept override { leaves++; }

	void post(unsigned slot)
	{
		CHECK(state[slot] != posted); /* a slot is reused only once collected */
		state[slot] = posted;
		posts++;
	}

	std::array<std::atomic<int>, 64> state{};
	std::atomic<bool> died{false};
	std::atomic<bool> leaving{false}; /* retired(): serves nothing new */
	std::atomic<bool> serving{true};  /* false: takes nothing (stuck) */
	std::atomic<int> posts{0}, served{0}, active{0}, max_active{0}, nudges{0}, leaves{0};

private:
	void serve()
	{
		while (!stop_) {
			bool any = false;
			for (auto &s : state) {
				if (!serving || s != posted)
					continue;
				any = true;
				int a = ++active;
				for (int m = max_active;
				     a > m && !max_active.compare_exchange_weak(m, a);)
					;
				std::this_thread::sleep_for(50us);
				s = answering_now;
				active--;
				served++;
				s = done;
			}
			if (!any)
				std::this_thread::yield();
		}
	}

	std::atomic<bool> stop_{false};
	std::thread thread_;
};

/* A job the host takes (or refuses, as a host refuses an fsync). */
class PostedJob : public Job
{
public:
	PostedJob(uint64_t cgroup, bool refuse) : refuse_(refuse) { cgroup_id = cgroup; }

	JobOutcome run(WorkerContext &) noexcept override
	{
		runs++;
		return {JobKind::read, 4096, false, 0};
	}
	bool post(Host &host, unsigned slot) noexcept override
	{
		if (refuse_)
			return false;
		static_cast<FakeHost &>(host).post(slot);
		return true;
	}
	JobOutcome collect(Host &, unsigned, WorkerContext &, bool lost) noexcept override
	{
		collects++;
		if (lost)
			lost_collects++;
		return {JobKind::read, 4096, lost, 0};
	}
	bool cancel(int) noexcept override { return false; }
	bool answered() noexcept override { return false; }
	void release() noexcept override { releases++; }

	std::atomic<int> runs{0}, collects{0}, lost_collects{0}, releases{0};

private:
	const bool refuse_;
};

struct HostedHarness {
	explicit HostedHarness(unsigned depth)
	{
		dispatcher =
			std::make_unique<Dispatcher>(config_with(depth), clock, [](const Job &job) {
				return "/cg/" + std::to_string(job.cgroup_id);
			});
		dispatcher->host_maker([this](const Job &) -> std::shared_ptr<Host> {
			hosts_made++;
			return host;
		});
		REQUIRE(dispatcher->start());
	}
	~HostedHarness()
	{
		host->serving = true;
		(void)dispatcher->shutdown(20 * second);
	}

	bool wait_released(const std::deque<PostedJob> &jobs)
	{
		return Harness::poll([&] {
			for (const auto &j : jobs)
				if (j.releases == 0)
					return false;
			return true;
		});
	}

	ManualClock clock;
	std::shared_ptr<FakeHost> host = std::make_shared<FakeHost>();
	std::atomic<int> hosts_made{0};
	std::unique_ptr<Dispatcher> dispatcher;
};

} /* namespace */

TEST_CASE("a worker with a host: jobs are posted by their submitters, collected and released "
	  "once, never more than worker_depth at the host at once")
{
	HostedHarness h(3);
	std::deque<PostedJob> jobs;
	for (int i = 0; i < 400; i++)
		jobs.emplace_back(7, false);
	std::vector<std::thread> submitters;
	for (int t = 0; t < 4; t++)
		submitters.emplace_back([&, t] {
			for (size_t i = static_cast<size_t>(t); i < jobs.size(); i += 4)
				h.dispatcher->submit(&jobs[i]);
		});
	for (auto &t : submitters)
		t.join();
	REQUIRE(h.wait_released(jobs));
	for (const auto &j : jobs) {
		CHECK(j.runs == 0); /* no thread of the daemon ran it */
		CHECK(j.collects == 1);
		CHECK(j.lost_collects == 0);
		CHECK(j.releases == 1);
	}
	CHECK(h.host->posts == 400);
	CHECK(h.host->served == 400);
	CHECK(h.host->max_active <= 3);
	CHECK(h.hosts_made == 1);
	CHECK(stats_of(*h.dispatcher, 7)->reads == 400);
	REQUIRE(Harness::poll([&] {
		for (const auto &w : h.dispatcher->workers())
			if (w.cgroup_id == 7 && !w.root)
				return w.in_flight == 0 && w.queued == 0 && w.pid == 4242 &&
				       w.charged;
		return false;
	}));
}

TEST_CASE("a worker being made: its cgroup's other submitters wait for it, and it counts "
	  "against max_workers")
{
	ManualClock clock;
	Dispatcher d(config_with(2, 1), clock, [](const Job &) { return std::string("/cg"); });
	auto host = std::make_shared<FakeHost>();
	std::atomic<int> made{0};
	std::atomic<bool> let_go{false};
	d.host_maker([&](const Job &job) -> std::shared_ptr<Host> {
		made++;
		while (!let_go && job.cgroup_id == 7)
			std::this_thread::yield(); /* a slow fork */
		return host;
	});
	REQUIRE(d.start());
	std::deque<PostedJob> jobs;
	jobs.emplace_back(7, false);
	jobs.emplace_back(7, false);
	jobs.emplace_back(9, true); /* runs on a thread: tells whose */
	std::jthread maker([&] { d.submit(&jobs[0]); });
	REQUIRE(Harness::poll([&] { return made == 1; }));
	std::jthread waiter([&] { d.submit(&jobs[1]); });
	/* Cgroup 9 would be a second worker: max_workers=1 sends it to the root. */
	d.submit(&jobs[2]);
	REQUIRE(Harness::poll([&] { return jobs[2].releases == 1; }));
	CHECK(jobs[2].runs == 1);
	CHECK(d.totals().root_fallbacks == 1);
	std::this_thread::sleep_for(20ms);
	CHECK(made == 1); /* the second submitter made no host of its own */
	CHECK(jobs[1].releases == 0);
	let_go = true;
	maker.join();
	waiter.join();
	REQUIRE(Harness::poll([&] { return jobs[0].releases == 1 && jobs[1].releases == 1; }));
	CHECK(made == 1);
	CHECK(jobs[0].collects == 1);
	CHECK(jobs[1].collects == 1);
	CHECK(d.totals().workers_created == 1);
	CHECK(d.shutdown(5 * second));
}

TEST_CASE("a worker being made whose making throws: the cgroup's waiting submitter makes it")
{
	ManualClock clock;
	Dispatcher d(config_with(2), clock, [](const Job &) { return std::string("/cg"); });
	auto host = std::make_shared<FakeHost>();
	std::atomic<int> made{0};
	std::atomic<bool> let_go{false};
	d.host_maker([&](const Job &) -> std::shared_ptr<Host> {
		if (++made == 1) {
			while (!let_go)
				std::this_thread::yield();
			throw std::bad_alloc();
		}
		return host;
	});
	REQUIRE(d.start());
	std::deque<PostedJob> jobs;
	jobs.emplace_back(7, false);
	jobs.emplace_back(7, false);
	std::atomic<bool> threw{false};
	std::jthread maker([&] {
		try {
			d.submit(&jobs[0]);
		} catch (const std::bad_alloc &) {
			threw = true;
		}
	});
	REQUIRE(Harness::poll([&] { return made == 1; }));
	std::jthread waiter([&] { d.submit(&jobs[1]); });
	std::this_thread::sleep_for(20ms); /* the waiter waits for the maker */
	CHECK(made == 1);
	let_go = true;
	maker.join();
	CHECK(threw);
	REQUIRE(Harness::poll([&] { return jobs[1].releases == 1; }));
	CHECK(made == 2);
	CHECK(jobs[1].collects == 1);
	CHECK(d.shutdown(5 * second));
}

TEST_CASE("a worker with a host: what the host refuses runs on a worker thread")
{
	HostedHarness h(2);
	std::deque<PostedJob> jobs;
	jobs.emplace_back(7, false);
	jobs.emplace_back(7, true);
	jobs.emplace_back(7, false);
	for (auto &j : jobs)
		h.dispatcher->submit(&j);
	REQUIRE(h.wait_released(jobs));
	CHECK(jobs[0].collects == 1);
	CHECK(jobs[1].runs == 1);
	CHECK(jobs[1].collects == 0);
	CHECK(jobs[2].collects == 1);
	for (const auto &j : jobs)
		CHECK(j.releases == 1);
}

TEST_CASE("a worker with a host: jobs beyond worker_depth wait in the queue and are posted "
	  "as the host finishes")
{
	HostedHarness h(2);
	h.host->serving = false; /* stuck: takes nothing */
	std::deque<PostedJob> jobs;
	for (int i = 0; i < 6; i++)
		jobs.emplace_back(7, false);
	for (auto &j : jobs)
		h.dispatcher->submit(&j);
	REQUIRE(Harness::poll([&] { return h.host->posts == 2; }));
	auto w = h.dispatcher->workers();
	bool seen = false;
	for (const auto &i : w)
		if (i.cgroup_id == 7 && !i.root) {
			seen = true;
			CHECK(i.in_flight == 2);
			CHECK(i.queued == 4);
		}
	CHECK(seen);
	h.host->serving = true;
	REQUIRE(h.wait_released(jobs));
	CHECK(h.host->posts == 6);
	for (const auto &j : jobs) {
		CHECK(j.collects == 1);
		CHECK(j.runs == 0);
	}
}

TEST_CASE("a worker with a host: a job the host has not taken after 1 ms is nudged, not before")
{
	HostedHarness h(2);
	h.host->serving = false; /* its threads are slow to come to it */
	std::deque<PostedJob> jobs;
	jobs.emplace_back(7, false);
	h.dispatcher->submit(&jobs[0]);
	REQUIRE(Harness::poll([&] { return h.host->posts == 1; }));
	/* The collector polls meanwhile (every 1 ms); on the worker's clock no time passes. */
	std::this_thread::sleep_for(20ms);
	CHECK(h.host->nudges == 0);
	h.clock.advance_ns(2 * 1000000);
	REQUIRE(Harness::poll([&] { return h.host->nudges > 0; }));
	h.host->serving = true;
	REQUIRE(h.wait_released(jobs));
	CHECK(jobs[0].collects == 1);
	CHECK(jobs[0].lost_collects == 0);
}

TEST_CASE("a worker with a host that dies: the jobs it never finished are collected as lost")
{
	HostedHarness h(2);
	h.host->serving = false;
	std::deque<PostedJob> jobs;
	jobs.emplace_back(7, false);
	jobs.emplace_back(7, false);
	for (auto &j : jobs)
		h.dispatcher->submit(&j);
	REQUIRE(Harness::poll([&] { return h.host->posts == 2; }));
	/* Not looked at before they are overdue. */
	h.host->died = true;
	h.clock.advance_ns(second);
	REQUIRE(h.wait_released(jobs));
	for (const auto &j : jobs) {
		CHECK(j.collects == 1);
		CHECK(j.lost_collects == 1);
		CHECK(j.runs == 0);
	}
	CHECK(h.host->served == 0);
}

TEST_CASE("a worker whose host is leaving: a job it has not begun is collected as lost, and "
	  "new ones get a new host")
{
	ManualClock clock;
	Dispatcher d(config_with(2), clock, [](const Job &) { return std::string("/cg"); });
	auto first = std::make_shared<FakeHost>();
	auto next = std::make_shared<FakeHost>();
	std::atomic<int> made{0};
	d.host_maker(
		[&](const Job &) -> std::shared_ptr<Host> { return ++made == 1 ? first : next; });
	REQUIRE(d.start());
	first->serving = false; /* takes nothing */
	std::deque<PostedJob> jobs;
	jobs.emplace_back(7, false);
	d.submit(&jobs[0]);
	REQUIRE(Harness::poll([&] { return first->posts == 1; }));
	first->leaving = true;
	clock.advance_ns(2000000); /* past the nudge: looked at */
	REQUIRE(Harness::poll([&] { return jobs[0].releases == 1; }));
	CHECK(jobs[0].collects == 1);
	CHECK(jobs[0].lost_collects == 1); /* collect() runs it here */
	/* The next job is not posted to the leaving host: a thread runs it, with a new host. */
	jobs.emplace_back(7, false);
	d.submit(&jobs[1]);
	REQUIRE(Harness::poll([&] { return jobs[1].releases == 1; }));
	CHECK(jobs[1].runs == 1);
	CHECK(made == 2);
	/* And the one after goes to the new host. */
	jobs.emplace_back(7, false);
	d.submit(&jobs[2]);
	REQUIRE(Harness::poll([&] { return jobs[2].releases == 1; }));
	CHECK(jobs[2].collects == 1);
	CHECK(next->posts == 1);
	CHECK(first->posts == 1);
	CHECK(d.shutdown(5 * second));
}

/* A posted job its caller may be told is done after a while (a flush). */
class PatientJob final : public PostedJob
{
public:
	explicit PatientJob(uint64_t cgroup) : PostedJob(cgroup, false) {}
	int64_t done_after_ns() const noexcept override { return 20 * 1000000; }
	bool cancel(int err) noexcept override
	{
		cancels++;
		last_err = err;
		return true;
	}
	bool answered() noexcept override { return cancels > 0; }
	std::atomic<int> cancels{0}, last_err{-99};
};

TEST_CASE("a running job with done_after_ns is answered done once that long has passed, not "
	  "before, and only once")
{
	HostedHarness h(2);
	h.host->serving = false; /* frozen: takes nothing */
	PatientJob job(7);
	h.dispatcher->submit(&job);
	REQUIRE(Harness::poll([&] { return h.host->posts == 1; }));
	h.dispatcher->expire();
	CHECK(job.cancels == 0);
	h.clock.advance_ns(21 * 1000000);
	h.dispatcher->expire();
	CHECK(job.cancels == 1);
	CHECK(job.last_err == 0); /* done, not an error */
	h.dispatcher->expire();
	CHECK(job.cancels == 1);
	CHECK(stats_of(*h.dispatcher, 7)->timeouts == 0);
	/* Collected and released once the host gets to it. */
	h.host->serving = true;
	REQUIRE(Harness::poll([&] { return job.releases == 1; }));
	CHECK(job.collects == 1);
}

TEST_CASE("submit_hosted: a job goes to the cgroup's host only if it can take it now, never "
	  "into a queue")
{
	HostedHarness h(2);
	std::deque<PostedJob> jobs;
	for (int i = 0; i < 5; i++)
		jobs.emplace_back(7, false);
	/* No worker for the cgroup yet: nothing is made for it. */
	CHECK_FALSE(h.dispatcher->submit_hosted(&jobs[0]));
	CHECK(h.hosts_made == 0);
	CHECK(jobs[0].releases == 0);
	/* Cgroup 0 (no cgroup of its own) never. */
	PostedJob rootless(0, false);
	CHECK_FALSE(h.dispatcher->submit_hosted(&rootless));
	/* A worker with a stuck host, full at worker_depth: refused, not queued. */
	h.host->serving = false;
	h.dispatcher->submit(&jobs[0]);
	h.dispatcher->submit(&jobs[1]);
	REQUIRE(Harness::poll([&] { return h.host->posts == 2; }));
	CHECK_FALSE(h.dispatcher->submit_hosted(&jobs[2]));
	CHECK(h.host->posts == 2);
	/* The host is told to leave the caller's cgroups once idle instead. */
	CHECK(h.host->leaves == 1);
	for (const auto &w : h.dispatcher->workers())
		if (w.cgroup_id == 7 && !w.root)
			CHECK(w.queued == 0);
	/* Room again: posted at once, collected and released as any other. */
	h.host->serving = true;
	REQUIRE(Harness::poll([&] { return jobs[0].releases == 1 && jobs[1].releases == 1; }));
	CHECK(h.dispatcher->submit_hosted(&jobs[3]));
	CHECK(h.host->leaves == 1); /* posted: the host got the job itself */
	REQUIRE(Harness::poll([&] { return jobs[3].releases == 1; }));
	CHECK(jobs[3].collects == 1);
	CHECK(jobs[3].runs == 0);
	/* A job the host refuses (no thread for it): false, and not run here either. */
	PostedJob refused(7, true);
	CHECK_FALSE(h.dispatcher->submit_hosted(&refused));
	CHECK(h.host->leaves == 2);
	CHECK(refused.runs == 0);
	CHECK(refused.releases == 0);
	CHECK(jobs[2].releases == 0);
}
