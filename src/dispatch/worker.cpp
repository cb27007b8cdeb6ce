/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "worker.hpp"

#include "common/sched.hpp"
#include "common/thread.hpp"

#include <cerrno>
#include <chrono>
#include <signal.h>
#include <system_error>

#include <pthread.h>

#include <fmt/core.h>

namespace cgloopfs::dispatch {

Worker::Worker(Dispatcher &dispatcher, uint64_t cgroup_id, std::string path,
	       std::shared_ptr<CgroupStats> stats, bool root)
	: dispatcher_(dispatcher), cgroup_id_(cgroup_id), path_(std::move(path)),
	  stats_(std::move(stats)), root_(root)
{
	last_active_ns_ = dispatcher_.clock_.now_ns();
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
	std::lock_guard<std::mutex> l(mutex_);
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

void Worker::enqueue(Job *job)
{
	std::unique_lock<std::mutex> l(mutex_);
	if (stopping_) {
		/* Stopping (shutdown, or reaped after its last job): take nothing new. */
		l.unlock();
		job->cancel(EIO);
		job->release();
		return;
	}
	job->next_ = nullptr;
	if (tail_)
		tail_->next_ = job;
	else
		head_ = job;
	tail_ = job;
	queued_++;
	size_t free_threads =
		idle_threads_ + starting_threads_ + finishing_.load(std::memory_order_relaxed);
	if (queued_ > free_threads && threads_.size() < dispatcher_.depth_.load() && !stopping_)
		(void)spawn_locked(); /* a failure leaves the job to the running threads */
	bool wake = idle_threads_ > 0;
	l.unlock();
	/* Signalled after the unlock, so the woken thread does not wait for our mutex. */
	if (wake)
		cv_.notify_one();
}

Job *Worker::pop_locked()
{
	Job *job = head_;
	head_ = job->next_;
	if (!head_)
		tail_ = nullptr;
	queued_--;
	job->next_ = inflight_;
	job->prev_ = nullptr;
	if (inflight_)
		inflight_->prev_ = job;
	inflight_ = job;
	in_flight_++;
	return job;
}

void Worker::thread_main(std::stop_token)
{
	std::string name = root_ ? "cgl-root" : fmt::format("cgl:{}", cgroup_id_);
	if (name.size() > 15)
		name.resize(15);
	pthread_setname_np(pthread_self(), name.c_str());
	request_short_slice();

	WorkerContext ctx;
	ctx.finishing = &finishing_;
	const Clock &clock = dispatcher_.clock_;
	Job *done = nullptr; /* the last job: released after the next one is taken */
	std::unique_lock<std::mutex> l(mutex_);
	starting_threads_--;
	for (;;) {
		if (!head_ && done) {
			/* Nothing to take: give the job back before sleeping. */
			l.unlock();
			done->release();
			done = nullptr;
			l.lock();
			continue;
		}
		while (!head_ && !stopping_) {
			idle_threads_++;
			cv_.wait(l);
			idle_threads_--;
		}
		if (!head_)
			break; /* stopping, and the queue is drained */
		Job *job = pop_locked();
		/* Several of this cgroup's requests at once: a heavy user, let lighter ones go first. */
		bool heavy = in_flight_ + queued_ >= 2;
		l.unlock();
		if (done)
			done->release();
		if (heavy != ctx.yielding)
			ctx.yielding = yield_cpu(heavy);

		JobOutcome outcome = job->run(ctx);
		int64_t now = clock.now_ns();
		int64_t latency = now - job->submitted_ns;
		stats_->record(outcome, latency > 0 ? static_cast<uint64_t>(latency) : 0, now);

		/* One lock per job: take it off the in-flight list, then look for the next. */
		l.lock();
		if (ctx.announced) {
			finishing_.fetch_sub(1, std::memory_order_relaxed);
			ctx.announced = false;
		}
		if (job->prev_)
			job->prev_->next_ = job->next_;
		else
			inflight_ = job->next_;
		if (job->next_)
			job->next_->prev_ = job->prev_;
		in_flight_--;
		served_++;
		if (!head_ && in_flight_ == 0)
			last_active_ns_ = now;
		done = job;
	}
	live_threads_--;
	drained_.notify_all();
}

Worker::Expired Worker::expire(int64_t now_ns, int64_t timeout_ns, int64_t interrupt_grace_ns)
{
	Expired ex;
	auto overdue = [&](const Job *job) {
		return timeout_ns > 0 && now_ns - job->submitted_ns >= timeout_ns;
	};
	/* Unlinked from the queue, answered (unless they were) after the unlock. */
	Job *dropped = nullptr;
	std::unique_lock<std::mutex> l(mutex_);
	Job *prev = nullptr;
	for (Job *job = head_; job;) {
		Job *next = job->next_;
		/* Answered already (interrupted while queued) or overdue: out of the queue. */
		if (job->answered() || overdue(job)) {
			job->expired_ = !job->answered();
			if (prev)
				prev->next_ = next;
			else
				head_ = next;
			if (tail_ == job)
				tail_ = prev;
			queued_--;
			job->next_ = dropped;
			dropped = job;
		} else {
			prev = job;
		}
		job = next;
	}
	for (Job *job = inflight_; job; job = job->next_) {
		int64_t intr = job->interrupted_ns.load(std::memory_order_relaxed);
		if (job->answered())
			continue;
		if (overdue(job)) {
			if (job->cancel(EIO))
				ex.timeouts++;
		} else if (intr > 0 && now_ns - intr >= interrupt_grace_ns) {
			if (job->cancel(EINTR))
				ex.interrupted++;
		}
	}
	if (!head_ && in_flight_ == 0 && dropped)
		last_active_ns_ = now_ns;
	l.unlock();
	while (dropped) {
		Job *job = dropped;
		dropped = job->next_;
		if (job->expired_ && job->cancel(EIO))
			ex.timeouts++;
		job->release();
	}
	return ex;
}

bool Worker::idle_since(int64_t since_ns)
{
	std::lock_guard<std::mutex> l(mutex_);
	return !head_ && in_flight_ == 0 && last_active_ns_ <= since_ns;
}

bool Worker::stop_and_join(int64_t grace_ns)
{
	std::unique_lock<std::mutex> l(mutex_);
	stopping_ = true;
	cv_.notify_all();
	bool drained = drained_.wait_for(l, std::chrono::nanoseconds(grace_ns),
					 [&] { return live_threads_ == 0; });
	if (!drained) {
		/* Stuck in backing I/O: answer everyone now, leave the threads behind. */
		while (head_) {
			Job *job = head_;
			head_ = job->next_;
			queued_--;
			job->cancel(EIO);
			job->release();
		}
		tail_ = nullptr;
		for (Job *job = inflight_; job; job = job->next_)
			job->cancel(EIO);
		for (auto &t : threads_)
			t.detach();
		return false;
	}
	std::vector<std::jthread> threads = std::move(threads_);
	l.unlock();
	for (auto &t : threads)
		t.join();
	return true;
}

WorkerInfo Worker::info()
{
	std::lock_guard<std::mutex> l(mutex_);
	WorkerInfo i;
	i.cgroup_id = cgroup_id_;
	i.path = path_;
	i.root = root_;
	i.state = (head_ || in_flight_) ? WorkerState::active : WorkerState::idle;
	i.queued = queued_;
	i.in_flight = in_flight_;
	i.threads = live_threads_;
	i.served = served_;
	i.last_active_ns = last_active_ns_;
	return i;
}

} /* namespace cgloopfs::dispatch */
