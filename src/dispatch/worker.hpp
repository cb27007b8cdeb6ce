/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Worker: the queue of one cgroup (or the root queue) and the threads that
 * serve it, up to `depth` of them, started on demand. Internal to the
 * dispatcher, which owns every Worker and calls it with its own mutex held
 * (lock order: Dispatcher::mutex_, then Worker::mutex_).
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DISPATCH
#error "dispatch/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dispatcher.hpp"

namespace cgloopfs::dispatch {

class Worker
{
public:
	Worker(Dispatcher &dispatcher, uint64_t cgroup_id, std::string path,
	       std::shared_ptr<CgroupStats> stats, bool root);
	~Worker();
	Worker(const Worker &) = delete;
	Worker &operator=(const Worker &) = delete;

	/* Start the first thread; 0, or the errno when it cannot be created. */
	[[nodiscard]] int start();
	/* Queue a job; starts another thread when all are busy and depth allows. */
	void enqueue(Job *job);
	/* What expire() answered. */
	struct Expired {
		uint64_t timeouts = 0, interrupted = 0;
	};
	/* See Dispatcher::expire(). */
	Expired expire(int64_t now_ns, int64_t timeout_ns, int64_t interrupt_grace_ns);
	/* Idle (nothing queued or running) since at least `since_ns`? */
	bool idle_since(int64_t since_ns);
	/* Let the threads drain the queue and end; wait up to grace_ns. */
	bool stop_and_join(int64_t grace_ns);
	WorkerInfo info();

	uint64_t cgroup_id() const { return cgroup_id_; }

private:
	void thread_main(std::stop_token stop);
	int spawn_locked();
	Job *pop_locked();

	Dispatcher &dispatcher_;
	const uint64_t cgroup_id_;
	const std::string path_;
	const std::shared_ptr<CgroupStats> stats_;
	const bool root_;

	std::mutex mutex_;
	std::condition_variable cv_;      /* jobs queued, or stopping */
	std::condition_variable drained_; /* a thread ended */
	Job *head_ = nullptr;		  /* queue, guarded by mutex_ */
	Job *tail_ = nullptr;
	size_t queued_ = 0;
	Job *inflight_ = nullptr; /* running jobs, guarded by mutex_ */
	size_t in_flight_ = 0;
	size_t idle_threads_ = 0;
	size_t starting_threads_ = 0; /* spawned, not yet at their queue: count as free */
	std::atomic<unsigned> finishing_{0}; /* threads past their job's answer */
	size_t live_threads_ = 0;
	uint64_t served_ = 0;
	int64_t last_active_ns_ = 0;
	bool stopping_ = false;
	std::vector<std::jthread> threads_; /* guarded by mutex_ */
};

} /* namespace cgloopfs::dispatch */
