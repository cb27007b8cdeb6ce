/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Worker: the queue of one cgroup (or the root queue) and the threads that
 * serve it, up to `depth` of them, started on demand. Internal to the
 * dispatcher, which owns every Worker. Thread-safe; see dispatcher.hpp for
 * the lock order (Dispatcher::mutex_, then Worker::mutex_, and nothing
 * under either).
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DISPATCH
#error "dispatch/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.hpp"
#include "dispatcher.hpp"

namespace cgloopfs::dispatch {

/*
 * Jobs a worker gave up under its mutex, to be answered (and released)
 * after every lock is released: answering calls into the owner's reply
 * code, which takes locks of its own. Queued jobs are dropped from their
 * queue and are the list's alone; running ones are pinned (Job::work_.hold)
 * so their worker thread, should it finish meanwhile, leaves the release
 * to answer(). An intrusive list: collecting allocates nothing.
 * Thread-bound.
 */
class ExpiredJobs
{
public:
	ExpiredJobs() = default;
	~ExpiredJobs() { (void)answer(); }
	ExpiredJobs(const ExpiredJobs &) = delete;
	ExpiredJobs &operator=(const ExpiredJobs &) = delete;

	/*
	 * A job taken out of a queue: answered -err (unless err is 0), then
	 * released. When this call answers it, `stats` (if any) counts a
	 * timeout (EIO) or an interrupt (EINTR).
	 */
	void add_dropped(Job *job, int err, const std::shared_ptr<CgroupStats> &stats = nullptr);
	/* An `err` for add_running(): answer the job as done (Job::done_after_ns()). */
	static constexpr int done = -1;
	/*
	 * A running job to answer -err: pins it; false (not added) when another
	 * expirer holds it already. Call with the serving worker's mutex held.
	 * `stats` as for add_dropped().
	 */
	bool add_running(Job *job, int err, const std::shared_ptr<CgroupStats> &stats = nullptr);

	/* What answer() did. */
	struct Answered {
		uint64_t timeouts = 0, interrupted = 0; /* answered EIO, EINTR */
	};
	/* Answer and release the jobs; call with no lock held. */
	Answered answer() noexcept;

private:
	Job *head_ = nullptr;
};

class Worker
{
public:
	Worker(Dispatcher &dispatcher, uint64_t cgroup_id, std::string path,
	       std::shared_ptr<CgroupStats> stats, bool root, std::shared_ptr<Host> host = nullptr);
	~Worker();
	Worker(const Worker &) = delete;
	Worker &operator=(const Worker &) = delete;

	/* Start the first thread; 0, or the errno when it cannot be created. */
	[[nodiscard]] int start() CGL_EXCLUDES(mutex_);
	/*
	 * Queue a job; starts another thread when all are busy and depth
	 * allows. False when the worker is stopping and takes nothing: the
	 * caller answers the job (EIO) and releases it once its locks are
	 * released.
	 */
	[[nodiscard]] bool enqueue(Job *job) CGL_EXCLUDES(mutex_);
	/*
	 * See Dispatcher::expire(): move the jobs to answer (queued ones that
	 * were answered already or are overdue, running ones overdue or
	 * interrupted long enough ago) to `out`.
	 */
	void collect_expired(int64_t now_ns, int64_t timeout_ns, int64_t interrupt_grace_ns,
			     ExpiredJobs &out) CGL_EXCLUDES(mutex_);
	/* Idle (nothing queued or running) since at least `since_ns`? */
	bool idle_since(int64_t since_ns) CGL_EXCLUDES(mutex_);
	/*
	 * Let the threads drain the queue and end; wait up to grace_ns. When
	 * they do not end in time, answer every job EIO and leave the threads
	 * behind (false). Call with no lock held.
	 */
	bool stop_and_join(int64_t grace_ns) CGL_EXCLUDES(mutex_);
	WorkerInfo info() CGL_EXCLUDES(mutex_);

	uint64_t cgroup_id() const { return cgroup_id_; }
	/*
	 * Post `job` (a close) to the host process now, or not at all (false:
	 * no host, or it has all it can take; the host is then told to leave
	 * the caller's cgroups as soon as it is idle, Host::leave_when_idle()).
	 * Never queued behind anything.
	 */
	[[nodiscard]] bool post_now(Job *job) CGL_EXCLUDES(mutex_);

private:
	void thread_main(std::stop_token stop) CGL_EXCLUDES(mutex_);
	/*
	 * The host for `job` on this thread (nullptr: run it here). A dead
	 * host is replaced, once, by asking the dispatcher's HostFn with the
	 * job (without the lock); meanwhile other threads run theirs here.
	 */
	std::shared_ptr<Host> host_for(const Job &job) CGL_EXCLUDES(mutex_);
	int spawn_locked() CGL_REQUIRES(mutex_);
	Job *pop_locked() CGL_REQUIRES(mutex_);
	void link_in_flight_locked(Job *job) CGL_REQUIRES(mutex_);
	void unlink_in_flight_locked(Job *job) CGL_REQUIRES(mutex_);
	Job *unqueue_head_locked() CGL_REQUIRES(mutex_);
	void requeue_head_locked(Job *job) CGL_REQUIRES(mutex_);
	/*
	 * The fast path of a worker with a host: hand `job` (in no list) to
	 * the host from the submitting thread, with no thread of ours in
	 * between (Job::post). Unlocks `l` meanwhile. `full`: the host has
	 * `depth` jobs in the works; `refused`: it cannot take this one (a
	 * thread of ours runs it).
	 */
	enum class PostResult { posted, full, refused };
	PostResult try_post(Job *job, MutexLocker &l) CGL_REQUIRES(mutex_)
		CGL_NO_THREAD_SAFETY_ANALYSIS; /* it cannot follow `l` (which holds mutex_) */
	/* Post the queued jobs, oldest first, while the host takes them; the last result. */
	PostResult pump_locked(MutexLocker &l) CGL_REQUIRES(mutex_) CGL_NO_THREAD_SAFETY_ANALYSIS;
	/*
	 * Collect the posted jobs their host is done with (or, with `ctx`,
	 * those that died with it, which may be run here on ctx): answer what
	 * is left, count them, release them. Unlocks `l` meanwhile; returns
	 * how many.
	 */
	size_t collect_posted(MutexLocker &l, WorkerContext *ctx)
		CGL_REQUIRES(mutex_) CGL_NO_THREAD_SAFETY_ANALYSIS;
	/* A posted job that no thread of its host has taken yet (or one being posted). */
	bool untaken_posted_locked() const CGL_REQUIRES(mutex_);
	/* Jobs are posted and nobody collects them: a thread should. */
	bool collector_wanted_locked() const CGL_REQUIRES(mutex_)
	{
		return posted_ > 0 && !collecting_;
	}

	Dispatcher &dispatcher_;
	const uint64_t cgroup_id_;
	const std::string path_;
	const std::shared_ptr<CgroupStats> stats_;
	const bool root_;

	/*
	 * Lock order: after Dispatcher::mutex_ (held or not); no other lock is
	 * taken under it, and jobs are run, answered and released without it.
	 */
	Mutex mutex_;
	ConditionVariable cv_;			     /* jobs queued, or stopping */
	ConditionVariable drained_;		     /* a thread ended */
	Job *head_ CGL_GUARDED_BY(mutex_) = nullptr; /* the queue, FIFO, through work_.next */
	Job *tail_ CGL_GUARDED_BY(mutex_) = nullptr;
	size_t queued_ CGL_GUARDED_BY(mutex_) = 0;
	Job *inflight_ CGL_GUARDED_BY(mutex_) = nullptr; /* running jobs, through work_.next/prev */
	size_t in_flight_ CGL_GUARDED_BY(mutex_) = 0;
	size_t idle_threads_ CGL_GUARDED_BY(mutex_) = 0;
	/* Spawned, not yet at their queue: count as free. */
	size_t starting_threads_ CGL_GUARDED_BY(mutex_) = 0;
	std::atomic<unsigned> finishing_{0}; /* threads past their job's answer */
	size_t live_threads_ CGL_GUARDED_BY(mutex_) = 0;
	uint64_t served_ CGL_GUARDED_BY(mutex_) = 0;
	int64_t last_active_ns_ CGL_GUARDED_BY(mutex_) = 0;
	bool stopping_ CGL_GUARDED_BY(mutex_) = false;
	std::vector<std::jthread> threads_ CGL_GUARDED_BY(mutex_);
	/* The host process (nullptr: this worker's threads serve), and whether one was wanted. */
	std::shared_ptr<Host> host_ CGL_GUARDED_BY(mutex_);
	bool hosted_ CGL_GUARDED_BY(mutex_) = false;
	bool rehosting_ CGL_GUARDED_BY(mutex_) = false; /* a thread is making a new host */
	uint64_t slots_ CGL_GUARDED_BY(mutex_) =
		0; /* slots taken (threads, posted jobs), a bit each */
	size_t posted_ CGL_GUARDED_BY(mutex_) = 0; /* posted jobs not collected yet */
	/* A thread collects posted jobs (it polls while any are out, and a little after). */
	bool collecting_ CGL_GUARDED_BY(mutex_) = false;
	int64_t last_post_ns_ CGL_GUARDED_BY(mutex_) = 0;
	int64_t last_collected_ns_ CGL_GUARDED_BY(mutex_) = 0;
	int64_t last_dying_check_ns_ CGL_GUARDED_BY(mutex_) = 0;
};

} /* namespace cgloopfs::dispatch */
