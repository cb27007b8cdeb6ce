/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "worker.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <system_error>

#include <pthread.h>
#include <signal.h>

#include <fmt/core.h>

#include "common/sched.hpp"
#include "common/thread.hpp"

namespace cgloopfs::dispatch {

void ExpiredJobs::add_dropped(Job *job, int err, const std::shared_ptr<CgroupStats> &stats)
{
	job->work_.expire_err = err;
	job->work_.expire_stats = stats;
	job->work_.expire_dropped = true;
	job->work_.expired_next = head_;
	head_ = job;
}

bool ExpiredJobs::add_running(Job *job, int err, const std::shared_ptr<CgroupStats> &stats)
{
	/* Pinned by another expirer already: that one answers it. */
	if (job->work_.hold.load(std::memory_order_relaxed) != 0)
		return false;
	job->work_.hold.store(Job::held_pinned, std::memory_order_relaxed);
	job->work_.expire_err = err;
	job->work_.expire_stats = stats;
	job->work_.expire_dropped = false;
	job->work_.expired_next = head_;
	head_ = job;
	return true;
}

ExpiredJobs::Answered ExpiredJobs::answer() noexcept
{
	Answered a;
	while (head_) {
		Job *job = head_;
		head_ = job->work_.expired_next;
		int err = job->work_.expire_err;
		/* Taken before the job may go back to its owner (released below). */
		std::shared_ptr<CgroupStats> stats = std::move(job->work_.expire_stats);
		if (err == done)
			(void)job->cancel(0);
		else if (err != 0 && job->cancel(err)) {
			bool intr = err == EINTR;
			(intr ? a.interrupted : a.timeouts)++;
			if (stats)
				(intr ? stats->interrupted : stats->timeouts)
					.fetch_add(1, std::memory_order_relaxed);
		}
		if (job->work_.expire_dropped) {
			job->release();
			continue;
		}
		/* Unpin; if its thread is done with it, releasing it falls to us. */
		uint8_t was = job->work_.hold.fetch_and(static_cast<uint8_t>(~Job::held_pinned),
							std::memory_order_acq_rel);
		if (was & Job::held_finished) {
			job->work_.hold.store(0, std::memory_order_relaxed);
			job->release();
		}
	}
	return a;
}

Worker::Worker(Dispatcher &dispatcher, uint64_t cgroup_id, std::string path,
	       std::shared_ptr<CgroupStats> stats, bool root, std::shared_ptr<Host> host)
	: dispatcher_(dispatcher), cgroup_id_(cgroup_id), path_(std::move(path)),
	  stats_(std::move(stats)), root_(root)
{
	MutexLocker l(mutex_);
	last_active_ns_ = dispatcher_.clock_.now_ns();
	hosted_ = host != nullptr;
	host_ = std::move(host);
}

std::shared_ptr<Host> Worker::host_for(const Job &job)
{
	MutexLocker l(mutex_);
	if (!host_ || !(host_->dead() || host_->retired()))
		return host_;
	if (rehosting_)
		return nullptr; /* another thread makes the new one; this job runs here */
	rehosting_ = true;
	std::shared_ptr<Host> dead = std::move(host_);
	l.unlock();
	dead.reset(); /* collects the dead process (a leaving one: its jobs still hold it) */
	std::shared_ptr<Host> fresh =
		dispatcher_.make_host_ ? dispatcher_.make_host_(job) : nullptr;
	l.lock();
	rehosting_ = false;
	host_ = fresh;
	return fresh;
}

Worker::~Worker()
{
	/* Threads were joined (or, when stuck, this Worker was leaked on purpose). */
	for (auto &t : threads_)
		if (t.joinable())
			t.join();
}

int Worker::start()
{
	MutexLocker l(mutex_);
	return spawn_locked();
}

int Worker::spawn_locked()
{
	if (!dispatcher_.spawn_allowed())
		return EAGAIN;
	try {
		threads_.reserve(threads_.size() + 1); /* the push_back below cannot throw */
	} catch (const std::bad_alloc &) {
		return ENOMEM;
	}
	std::jthread thread;
	if (int err = start_thread(thread, [this](std::stop_token st) { thread_main(st); }))
		return err;
	threads_.push_back(std::move(thread));
	live_threads_++;
	starting_threads_++;
	return 0;
}

bool Worker::post_now(Job *job)
{
	MutexLocker l(mutex_);
	if (!stopping_ && !head_ && try_post(job, l) == PostResult::posted)
		return true;
	/* Stopping, or the host has all it can take, or no thread of it is free for the slot. */
	if (host_ && !stopping_)
		host_->leave_when_idle();
	return false;
}

bool Worker::enqueue(Job *job)
{
	MutexLocker l(mutex_);
	if (stopping_)
		return false; /* shutdown, or reaped after its last job: take nothing new */
	job->work_.next = nullptr;
	if (tail_)
		tail_->work_.next = job;
	else
		head_ = job;
	tail_ = job;
	queued_++;
	/* A host takes what it can at once; what it refuses (fsync...) a thread runs. */
	if (host_ && pump_locked(l) != PostResult::refused)
		return true;
	size_t free_threads =
		idle_threads_ + starting_threads_ + finishing_.load(std::memory_order_relaxed);
	if (queued_ > free_threads && threads_.size() < dispatcher_.depth_.load())
		(void)spawn_locked(); /* a failure leaves the job to the running threads */
	bool wake = idle_threads_ > 0;
	l.unlock();
	/* Signalled after the unlock, so the woken thread does not wait for our mutex. */
	if (wake)
		cv_.notify_one();
	return true;
}

Job *Worker::pop_locked()
{
	Job *job = unqueue_head_locked();
	link_in_flight_locked(job);
	return job;
}

void Worker::link_in_flight_locked(Job *job)
{
	job->work_.next = inflight_;
	job->work_.prev = nullptr;
	if (inflight_)
		inflight_->work_.prev = job;
	inflight_ = job;
	in_flight_++;
}

void Worker::unlink_in_flight_locked(Job *job)
{
	Job::Bookkeeping &w = job->work_;
	if (w.prev)
		w.prev->work_.next = w.next;
	else
		inflight_ = w.next;
	if (w.next)
		w.next->work_.prev = w.prev;
	in_flight_--;
}

Job *Worker::unqueue_head_locked()
{
	Job *job = head_;
	head_ = job->work_.next;
	if (!head_)
		tail_ = nullptr;
	queued_--;
	return job;
}

void Worker::requeue_head_locked(Job *job)
{
	job->work_.next = head_;
	head_ = job;
	if (!tail_)
		tail_ = job;
	queued_++;
}

Worker::PostResult Worker::pump_locked(MutexLocker &l)
{
	PostResult r = PostResult::posted;
	while (head_) {
		Job *job = unqueue_head_locked();
		r = try_post(job, l);
		if (r != PostResult::posted) {
			requeue_head_locked(job);
			break;
		}
	}
	return r;
}

Worker::PostResult Worker::try_post(Job *job, MutexLocker &l)
{
	/* Jobs the host finished hold a slot (and a thread there) until collected: now. */
	if (posted_ > 0)
		(void)collect_posted(l, nullptr);
	/* No host (a thread runs it, and makes a new host for a dead one). */
	if (!host_ || rehosting_ || host_->dead() || host_->retired())
		return PostResult::refused;
	size_t depth = dispatcher_.depth_.load();
	/*
	 * At most `depth` jobs in the works: those run by threads, and the
	 * posted ones the host has not answered yet (an answer may be what
	 * brought this request).
	 */
	size_t busy = in_flight_ - posted_;
	for (Job *j = inflight_; j && busy < depth; j = j->work_.next) {
		Job::Bookkeeping &w = j->work_;
		if (w.slot >= 0 && (w.posting.load(std::memory_order_relaxed) ||
				    !w.host->answering(static_cast<unsigned>(w.slot))))
			busy++;
	}
	/*
	 * And at most twice `depth` posted, answered ones not collected yet
	 * included (their host threads are still finishing them): a host has
	 * a thread per slot it was given, each counted in its cgroup's
	 * pids.max (a burst posted faster than it is collected took 20 of them
	 * with a depth of 4). Counting the slots of this worker's own threads
	 * too cost random 4 KiB I/O from four callers 5-12%.
	 */
	if (busy >= depth || posted_ >= 2 * depth || slots_ == ~uint64_t{0})
		return PostResult::full; /* the next submission or collection posts it */
	auto slot = static_cast<unsigned>(std::countr_one(slots_));
	Job::Bookkeeping &w = job->work_;
	slots_ |= uint64_t{1} << slot;
	w.host = host_;
	w.slot = static_cast<int>(slot);
	w.collecting = false;
	w.posting.store(true, std::memory_order_relaxed);
	link_in_flight_locked(job);
	posted_++;
	last_post_ns_ = dispatcher_.clock_.now_ns();
	/* An idle thread collects it; one that collects already polls. */
	bool wake = collector_wanted_locked() && idle_threads_ > 0;
	Host *host = w.host.get(); /* held by the job until it is collected */
	l.unlock();
	if (job->post(*host, slot)) {
		/* From here on the job may be collected and released: not touched again. */
		w.posting.store(false, std::memory_order_release);
		if (wake)
			cv_.notify_one();
		l.lock();
		return PostResult::posted;
	}
	/* Not posted (no thread for the slot in the host; fsync...): a thread runs it. */
	l.lock();
	unlink_in_flight_locked(job);
	posted_--;
	slots_ &= ~(uint64_t{1} << slot);
	w.slot = -1;
	w.posting.store(false, std::memory_order_relaxed);
	std::shared_ptr<Host> unused = std::move(w.host);
	l.unlock();
	unused.reset(); /* not under the lock: the last reference ends a dead host's process */
	l.lock();
	return PostResult::refused;
}

bool Worker::untaken_posted_locked() const
{
	for (const Job *j = inflight_; j; j = j->work_.next) {
		const Job::Bookkeeping &w = j->work_;
		if (w.slot >= 0 && (w.posting.load(std::memory_order_acquire) ||
				    !w.host->taken(static_cast<unsigned>(w.slot))))
			return true;
	}
	return false;
}

namespace {

/* What collect() of a job the host finished gets: it runs nothing, so never uses it. */
WorkerContext &spare_context()
{
	static thread_local WorkerContext spare;
	return spare;
}

} /* namespace */

size_t Worker::collect_posted(MutexLocker &l, WorkerContext *ctx)
{
	const Clock &clock = dispatcher_.clock_;
	/* A host that answers nothing for this long is looked at: killed, stuck? */
	constexpr int64_t overdue_ns = 100 * 1000000LL;
	/* A job the host has not taken after this long has it woken again (Host::nudge()). */
	constexpr int64_t nudge_after_ns = 1000000LL;
	int64_t now = clock.now_ns();
	bool look = ctx && now - last_dying_check_ns_ >= overdue_ns;
	std::array<Job *, 64> batch;
	std::array<bool, 64> lost;
	size_t n = 0;
	for (Job *job = inflight_; job && n < batch.size(); job = job->work_.next) {
		Job::Bookkeeping &w = job->work_;
		if (w.slot < 0 || w.collecting || w.posting.load(std::memory_order_acquire))
			continue;
		bool done = w.host->finished(static_cast<unsigned>(w.slot));
		/*
		 * Lost with its host: one that died (its pidfd, looked at every
		 * 5 ms at most), one leaving that will not begin it (refused():
		 * run here), or one killed but stuck in the kernel (dying(), a
		 * read of /proc: only for jobs overdue). A process exiting
		 * waits for its close on this (a flush), as at cgroup.kill.
		 */
		bool gone = !done && ctx && now - w.submitted_ns >= nudge_after_ns &&
			    (w.host->dead() || w.host->refused(static_cast<unsigned>(w.slot)) ||
			     (look && now - w.submitted_ns >= overdue_ns && w.host->dying()));
		if (!done && !gone) {
			/* Left to a host thread that is slow to come to it? */
			if (now - w.submitted_ns >= nudge_after_ns)
				w.host->nudge(static_cast<unsigned>(w.slot));
			continue;
		}
		w.collecting = true;
		lost[n] = gone;
		batch[n++] = job;
	}
	if (look)
		last_dying_check_ns_ = now;
	if (n == 0)
		return 0;
	l.unlock();
	for (size_t i = 0; i < n; i++) {
		Job::Bookkeeping &w = batch[i]->work_;
		/* Only a lost job may need `ctx` (to be run here), and only a collector looks for them. */
		JobOutcome outcome = batch[i]->collect(*w.host, static_cast<unsigned>(w.slot),
						       lost[i] ? *ctx : spare_context(), lost[i]);
		int64_t end = clock.now_ns();
		/* The host's reading of when it answered, if it is a sane one. */
		if (outcome.finished_ns > w.submitted_ns && outcome.finished_ns < end)
			end = outcome.finished_ns;
		stats_->record(outcome,
			       static_cast<uint64_t>(std::max<int64_t>(end - w.submitted_ns, 0)),
			       end);
	}
	std::array<std::shared_ptr<Host>, 64> hosts;
	l.lock();
	now = clock.now_ns();
	for (size_t i = 0; i < n; i++) {
		Job *job = batch[i];
		Job::Bookkeeping &w = job->work_;
		unlink_in_flight_locked(job);
		posted_--;
		served_++;
		slots_ &= ~(uint64_t{1} << w.slot);
		w.slot = -1;
		w.collecting = false;
		hosts[i] = std::move(w.host);
		/* Pinned by an expirer answering it: the later of the two releases it. */
		if (w.hold.load(std::memory_order_acquire) != 0 &&
		    (w.hold.fetch_or(Job::held_finished, std::memory_order_acq_rel) &
		     Job::held_pinned))
			batch[i] = nullptr;
	}
	if (!head_ && in_flight_ == 0)
		last_active_ns_ = now;
	last_collected_ns_ = now;
	l.unlock();
	for (size_t i = 0; i < n; i++) {
		if (batch[i])
			batch[i]->release();
		hosts[i].reset();
	}
	l.lock();
	return n;
}

void Worker::thread_main(std::stop_token)
{
	std::string name = root_ ? "cgl-root" : fmt::format("cgl:{}", cgroup_id_);
	if (name.size() > 15)
		name.resize(15);
	pthread_setname_np(pthread_self(), name.c_str());
	request_short_slice();

	WorkerContext ctx;
	ctx.finishing_ = &finishing_;
	const Clock &clock = dispatcher_.clock_;
	Job *done = nullptr; /* the last job: released after the next one is taken */
	MutexLocker l(mutex_);
	starting_threads_--;
	/* The lowest free slot: a host process has one per thread of its worker. */
	while (ctx.slot < 63 && (slots_ & (uint64_t{1} << ctx.slot)))
		ctx.slot++;
	slots_ |= uint64_t{1} << ctx.slot;
	bool hosted = hosted_;
	bool collector = false; /* this thread is the one that collects posted jobs */
	for (;;) {
		if (done && (!head_ || hosted)) {
			/* Nothing to take (or a host takes it): give the job back before going on. */
			l.unlock();
			done->release();
			done = nullptr;
			l.lock();
			continue;
		}
		/* With a host, a thread runs only what the host refuses (fsync...). */
		bool runnable = head_ != nullptr;
		if (runnable && hosted)
			runnable = pump_locked(l) == PostResult::refused;
		if (!runnable && hosted && (collector || collector_wanted_locked())) {
			/*
			 * Collect what the host finished. Its answers are on
			 * their way already, so this only polls, for 20 ms
			 * after the last post, so a busy cgroup's submitters
			 * need not wake a thread each (and each post collects
			 * what is done): every 1 ms while a posted job waits
			 * for a thread of the host (nudged after 1 ms), every
			 * 5 ms while the host has taken them all (a lost host
			 * is looked for every 5 ms at most anyway), every
			 * 10 ms when the host finished nothing for 10 ms. A
			 * stream of requests is not slowed by a wake-up of
			 * this thread for each.
			 */
			collector = collecting_ = true;
			size_t got = collect_posted(l, &ctx);
			int64_t now = clock.now_ns();
			bool lingering = now - last_post_ns_ < 20 * 1000000LL;
			bool empty = posted_ == 0 && !head_;
			if (got == 0 && !(empty && (!lingering || stopping_))) {
				bool busy = now - last_collected_ns_ < 10 * 1000000LL;
				int wait_ms = !busy ? 10 : untaken_posted_locked() ? 1 : 5;
				idle_threads_++;
				cv_.wait_for(l, std::chrono::milliseconds(wait_ms));
				idle_threads_--;
			} else if (got == 0 && empty) {
				collector = collecting_ = false;
			}
			continue;
		}
		if (!runnable) {
			if (stopping_ && !head_ && posted_ == 0)
				break; /* stopping, the queue is drained and nothing is out */
			idle_threads_++;
			if (head_) /* the host is full: its collector posts them, or we do */
				cv_.wait_for(l, std::chrono::milliseconds(10));
			else
				cv_.wait(l);
			idle_threads_--;
			continue;
		}
		if (collector) {
			/* Off to run a job: another idle thread collects meanwhile. */
			collector = collecting_ = false;
			if (collector_wanted_locked() && idle_threads_ > 0)
				cv_.notify_one();
		}
		Job *job = pop_locked();
		/* Several of this cgroup's requests at once: a heavy user, let lighter ones go first. */
		bool heavy = in_flight_ + queued_ >= 2;
		l.unlock();
		if (done)
			done->release();
		if (heavy != ctx.yielding_)
			ctx.yielding_ = yield_cpu(heavy);

		std::shared_ptr<Host> host = hosted ? host_for(*job) : nullptr;
		ctx.host = host.get();
		JobOutcome outcome = job->run(ctx);
		ctx.host = nullptr;
		host.reset();
		int64_t now = clock.now_ns();
		int64_t latency = now - job->work_.submitted_ns;
		stats_->record(outcome, latency > 0 ? static_cast<uint64_t>(latency) : 0, now);

		/* One lock per job: take it off the in-flight list, then look for the next. */
		l.lock();
		if (ctx.announced_) {
			finishing_.fetch_sub(1, std::memory_order_relaxed);
			ctx.announced_ = false;
		}
		Job::Bookkeeping &w = job->work_;
		unlink_in_flight_locked(job);
		served_++;
		if (!head_ && in_flight_ == 0)
			last_active_ns_ = now;
		/*
		 * Pinned by an expirer answering it (set under this mutex, so
		 * seen here): the later of the two releases it.
		 */
		if (w.hold.load(std::memory_order_acquire) != 0 &&
		    (w.hold.fetch_or(Job::held_finished, std::memory_order_acq_rel) &
		     Job::held_pinned))
			done = nullptr;
		else
			done = job;
	}
	slots_ &= ~(uint64_t{1} << ctx.slot);
	live_threads_--;
	cv_.notify_all(); /* the others may be waiting for the collector that ends here */
	drained_.notify_all();
}

void Worker::collect_expired(int64_t now_ns, int64_t timeout_ns, int64_t interrupt_grace_ns,
			     ExpiredJobs &out)
{
	auto overdue = [&](const Job *job) {
		return timeout_ns > 0 && now_ns - job->work_.submitted_ns >= timeout_ns;
	};
	MutexLocker l(mutex_);
	bool dropped = false;
	Job *prev = nullptr;
	for (Job *job = head_; job;) {
		Job *next = job->work_.next;
		/* Answered already (interrupted while queued) or overdue: out of the queue. */
		bool answered = job->answered();
		if (answered || overdue(job)) {
			if (prev)
				prev->work_.next = next;
			else
				head_ = next;
			if (tail_ == job)
				tail_ = prev;
			queued_--;
			out.add_dropped(job, answered ? 0 : EIO, stats_);
			dropped = true;
		} else {
			prev = job;
		}
		job = next;
	}
	for (Job *job = inflight_; job; job = job->work_.next) {
		if (job->answered())
			continue;
		int64_t intr = job->work_.interrupted_ns.load(std::memory_order_relaxed);
		int64_t done_after = job->done_after_ns();
		if (overdue(job))
			(void)out.add_running(job, EIO, stats_);
		else if (intr > 0 && now_ns - intr >= interrupt_grace_ns)
			(void)out.add_running(job, EINTR, stats_);
		else if (done_after > 0 && now_ns - job->work_.submitted_ns >= done_after)
			(void)out.add_running(job, ExpiredJobs::done, stats_);
	}
	if (!head_ && in_flight_ == 0 && dropped)
		last_active_ns_ = now_ns;
}

bool Worker::idle_since(int64_t since_ns)
{
	MutexLocker l(mutex_);
	return !head_ && in_flight_ == 0 && last_active_ns_ <= since_ns;
}

bool Worker::stop_and_join(int64_t grace_ns)
{
	ExpiredJobs orphans;
	std::vector<std::jthread> threads;
	bool drained;
	{
		MutexLocker l(mutex_);
		stopping_ = true;
		cv_.notify_all();
		drained = drained_.wait_for(
			l, std::chrono::nanoseconds(grace_ns),
			[&]() CGL_REQUIRES(mutex_) { return live_threads_ == 0; });
		if (drained) {
			threads = std::move(threads_);
		} else {
			/* Stuck in backing I/O: answer everyone (after the unlock), leave the threads. */
			while (head_) {
				Job *job = head_;
				head_ = job->work_.next;
				queued_--;
				orphans.add_dropped(job, EIO);
			}
			tail_ = nullptr;
			for (Job *job = inflight_; job; job = job->work_.next)
				(void)orphans.add_running(job, EIO);
			for (auto &t : threads_)
				t.detach();
		}
	}
	if (!drained) {
		(void)orphans.answer();
		return false;
	}
	for (auto &t : threads)
		t.join();
	return true;
}

WorkerInfo Worker::info()
{
	MutexLocker l(mutex_);
	WorkerInfo i;
	i.cgroup_id = cgroup_id_;
	i.path = path_;
	i.unit = stats_->unit;
	i.machine = stats_->machine;
	i.root = root_;
	i.state = (head_ || in_flight_) ? WorkerState::active : WorkerState::idle;
	i.queued = queued_;
	i.in_flight = in_flight_;
	i.threads = live_threads_;
	i.pid = host_ ? host_->pid() : 0;
	i.charged = host_ != nullptr && !host_->dead() && !host_->retired();
	i.served = served_;
	i.last_active_ns = last_active_ns_;
	return i;
}

} /* namespace cgloopfs::dispatch */
