/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "dispatcher.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>

#include <pthread.h>
#include <signal.h>

#include "common/log.hpp"
#include "worker.hpp"

namespace cgloopfs::dispatch {

Dispatcher::Dispatcher(Config config, const Clock &clock, PathFn path_of)
	: mode_(config.mode), reaper_thread_(config.reaper_thread),
	  request_timeout_ns_(config.request_timeout_ns),
	  interrupt_grace_ns_(config.interrupt_grace_ns), clock_(clock),
	  path_of_(std::move(path_of)), config_(config), depth_(std::max(1u, config.worker_depth)),
	  idle_timeout_ns_(config.idle_timeout_ns)
{
}

Dispatcher::~Dispatcher()
{
	if (!stopped_.load())
		(void)shutdown(5LL * 1000000000);
}

bool Dispatcher::start()
{
	std::shared_ptr<CgroupStats> stats;
	{
		ExclusiveLocker l(mutex_);
		stats = stats_for(0, "/");
	}
	root_ = std::make_unique<Worker>(*this, 0, "/", std::move(stats), true);
	root_raw_ = root_.get();
	if (int err = root_->start(); err != 0) {
		errno = err;
		return false;
	}
	if (reaper_thread_) {
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		try {
			reaper_ = std::jthread([this](std::stop_token st) { reaper_main(st); });
		} catch (const std::system_error &) {
			pthread_sigmask(SIG_SETMASK, &old, nullptr);
			return false;
		}
		pthread_sigmask(SIG_SETMASK, &old, nullptr);
	}
	return true;
}

bool Dispatcher::spawn_allowed()
{
	unsigned n = fail_spawns_.load();
	while (n > 0) {
		if (fail_spawns_.compare_exchange_weak(n, n - 1))
			return false;
	}
	return true;
}

void Dispatcher::fail_next_spawns(unsigned n)
{
	fail_spawns_.store(n);
}

std::shared_ptr<CgroupStats> Dispatcher::stats_for(uint64_t id, const CgroupName &name)
{
	auto it = stats_.find(id);
	if (it != stats_.end())
		return it->second;
	if (stats_.size() >= config_.max_stats) {
		/* Drop the entry idle longest that no live worker uses (never the root's). */
		auto victim = stats_.end();
		for (auto s = stats_.begin(); s != stats_.end(); ++s) {
			if (s->first == 0 || workers_.count(s->first))
				continue;
			if (victim == stats_.end() || s->second->last_active_ns.load() <
							      victim->second->last_active_ns.load())
				victim = s;
		}
		if (victim != stats_.end())
			stats_.erase(victim);
	}
	auto stats = std::make_shared<CgroupStats>(id, name);
	stats->last_active_ns.store(clock_.now_ns());
	stats_.emplace(id, stats);
	return stats;
}

void Dispatcher::refuse(Job *job) noexcept
{
	job->cancel(EIO);
	job->release();
}

bool Dispatcher::submit_hosted(Job *job)
{
	if (mode_ != Mode::cgroup || job->cgroup_id == 0)
		return false;
	SharedLocker shared(mutex_);
	auto it = workers_.find(job->cgroup_id);
	if (it == workers_.end())
		return false;
	job->work_.submitted_ns = clock_.now_ns();
	job->work_.interrupted_ns.store(0, std::memory_order_relaxed);
	return it->second->post_now(job);
}

Dispatcher::Route Dispatcher::route_locked(Job *job)
{
	auto it = workers_.find(job->cgroup_id);
	if (it != workers_.end())
		return it->second->enqueue(job) ? Route::queued : Route::refused;
	if (!stopping_ && std::ranges::count(making_, job->cgroup_id) > 0)
		return Route::being_made;
	if (stopping_ || workers_.size() + reaping_ + making_.size() >= config_.max_workers) {
		totals_.root_fallbacks++;
		return Route::root;
	}
	return Route::new_worker;
}

/* The wait unlocks and relocks through ExclusiveLocker's own lock() and unlock(). */
void Dispatcher::wait_made(ExclusiveLocker &l) CGL_NO_THREAD_SAFETY_ANALYSIS
{
	made_cv_.wait(l);
}

void Dispatcher::made_locked(uint64_t cgroup_id)
{
	std::erase(making_, cgroup_id);
	made_cv_.notify_all();
}

void Dispatcher::submit(Job *job)
{
	job->work_.submitted_ns = clock_.now_ns();
	job->work_.interrupted_ns.store(0, std::memory_order_relaxed);
	if (mode_ == Mode::single || job->cgroup_id == 0) {
		if (!root_raw_->enqueue(job))
			refuse(job);
		return;
	}

	{
		/* The common case: the cgroup has a worker. Submitters do not wait on each other. */
		SharedLocker shared(mutex_);
		auto it = workers_.find(job->cgroup_id);
		if (it != workers_.end()) {
			bool queued = it->second->enqueue(job);
			if (queued)
				return;
		}
	}
	/* (A worker refusing the job is stopping: it leaves the map, look again.) */

	ExclusiveLocker l(mutex_);
	const uint64_t cgroup_id = job->cgroup_id;
	Route route = route_locked(job);
	/*
	 * One submitter makes a cgroup's worker; the others of that cgroup wait
	 * for it rather than each fork a host process that would be thrown away.
	 */
	while (route == Route::being_made) {
		wait_made(l);
		route = route_locked(job);
	}
	/* Declared here: one made for nothing (shutdown began meanwhile) goes after the unlock. */
	std::shared_ptr<Host> host;
	if (route == Route::new_worker) {
		making_.push_back(cgroup_id); /* counts against max_workers meanwhile */
		/* Name the cgroup without the lock held (it reads /proc), then look again. */
		l.unlock();
		CgroupName name;
		try {
			name = path_of_ ? path_of_(*job) : CgroupName();
			/* So is its host process made: a fork, no exec (fuse/charge.hpp). */
			host = make_host_ ? make_host_(*job) : nullptr;
		} catch (...) {
			/* (No memory.) The cgroup's other submitters must not wait for ever. */
			l.lock();
			made_locked(cgroup_id);
			throw;
		}
		l.lock();
		made_locked(cgroup_id);
		route = route_locked(job);
		if (route == Route::new_worker) {
			auto stats = stats_for(job->cgroup_id, name);
			auto worker =
				std::make_unique<Worker>(*this, job->cgroup_id, name.path,
							 std::move(stats), false, std::move(host));
			if (int err = worker->start(); err != 0) {
				totals_.spawn_failures++;
				last_spawn_error_ = err;
				last_spawn_name_ = std::move(name);
				totals_.root_fallbacks++;
				route = Route::root;
			} else {
				totals_.workers_created++;
				/* Once queued the job may be answered and reused: key by the worker. */
				uint64_t id = worker->cgroup_id();
				route = worker->enqueue(job) ? Route::queued : Route::refused;
				workers_.emplace(id, std::move(worker));
			}
		}
	}
	l.unlock();
	if (route == Route::root && root_raw_->enqueue(job))
		return;
	if (route != Route::queued)
		refuse(job);
}

size_t Dispatcher::reap()
{
	int64_t cutoff = clock_.now_ns() - idle_timeout_ns_.load();
	std::vector<std::unique_ptr<Worker>> dead;
	std::optional<SpawnTrouble> trouble;
	{
		ExclusiveLocker l(mutex_);
		for (auto it = workers_.begin(); it != workers_.end();) {
			/* Under both locks: no job can be queued to it after this check. */
			if (it->second->idle_since(cutoff)) {
				dead.push_back(std::move(it->second));
				it = workers_.erase(it);
			} else {
				++it;
			}
		}
		totals_.workers_reaped += dead.size();
		reaping_ += dead.size();
		trouble = spawn_trouble_locked();
	}
	if (trouble && on_spawn_trouble_)
		on_spawn_trouble_(*trouble);
	for (auto &w : dead) {
		(void)w->stop_and_join(INT64_MAX / 2); /* idle: its threads end at once */
		w.reset();
		ExclusiveLocker l(mutex_);
		reaping_--;
	}
	return dead.size();
}

void Dispatcher::collect_expired_locked(int64_t now_ns, ExpiredJobs &out)
{
	for (auto &[id, w] : workers_)
		w->collect_expired(now_ns, request_timeout_ns_, interrupt_grace_ns_, out);
	root_raw_->collect_expired(now_ns, request_timeout_ns_, interrupt_grace_ns_, out);
}

void Dispatcher::expire()
{
	int64_t now = clock_.now_ns();
	/* Collected under the locks, answered after them. */
	ExpiredJobs expired;
	{
		SharedLocker l(mutex_);
		if (stopped_.load())
			return;
		collect_expired_locked(now, expired);
	}
	ExpiredJobs::Answered total = expired.answer();
	if (total.timeouts == 0 && total.interrupted == 0)
		return;
	{
		ExclusiveLocker l(mutex_);
		totals_.timeouts += total.timeouts;
		totals_.interrupted += total.interrupted;
	}
	if (total.timeouts > 0 && timeout_log_.allow())
		log::warning("{} request(s) unanswered after {} s were answered EIO",
			     total.timeouts, request_timeout_ns_ / 1000000000);
}

std::optional<SpawnTrouble> Dispatcher::spawn_trouble_locked()
{
	std::optional<SpawnTrouble> event;
	bool failed = totals_.spawn_failures > trouble_seen_failures_;
	bool created = totals_.workers_created > trouble_seen_created_;
	if (!spawn_trouble_ && failed) {
		spawn_trouble_ = true;
		trouble_base_failures_ = trouble_seen_failures_;
		event = SpawnTrouble{true,
				     last_spawn_error_,
				     last_spawn_name_.path,
				     totals_.spawn_failures - trouble_base_failures_,
				     last_spawn_name_.unit,
				     last_spawn_name_.machine};
	} else if (spawn_trouble_ && !failed && created) {
		spawn_trouble_ = false;
		event = SpawnTrouble{false,
				     last_spawn_error_,
				     last_spawn_name_.path,
				     totals_.spawn_failures - trouble_base_failures_,
				     last_spawn_name_.unit,
				     last_spawn_name_.machine};
	}
	trouble_seen_failures_ = totals_.spawn_failures;
	trouble_seen_created_ = totals_.workers_created;
	return event;
}

void Dispatcher::reaper_main(std::stop_token stop)
{
	pthread_setname_np(pthread_self(), "cgl-reaper");
	/* Expiry runs every 250 ms; reaping at a quarter of idle_timeout (0.1 .. 1 s). */
	constexpr int64_t expire_period = 250000000;
	int64_t next_reap = clock_.now_ns();
	MutexLocker l(reaper_mutex_);
	while (!stop.stop_requested()) {
		int64_t reap_period =
			std::clamp<int64_t>(idle_timeout_ns_.load() / 4, 100000000, 1000000000);
		int64_t wait = std::min(reap_period, expire_period);
		reaper_cv_.wait_for(l.get(), stop, std::chrono::nanoseconds(wait),
				    [] { return false; });
		if (stop.stop_requested())
			break;
		l.unlock();
		expire();
		if (on_tick_)
			on_tick_();
		if (clock_.now_ns() >= next_reap) {
			(void)reap();
			next_reap = clock_.now_ns() + reap_period;
		}
		l.lock();
	}
}

bool Dispatcher::shutdown(int64_t grace_ns)
{
	if (stopped_.exchange(true))
		return true;
	std::vector<std::unique_ptr<Worker>> all;
	{
		ExclusiveLocker l(mutex_);
		stopping_ = true;
		for (auto &[id, w] : workers_)
			all.push_back(std::move(w));
		workers_.clear();
	}
	if (reaper_.joinable()) {
		reaper_.request_stop();
		reaper_.join();
	}
	int64_t deadline = clock_.now_ns() + grace_ns;
	bool clean = true;
	auto stop_one = [&](std::unique_ptr<Worker> &w) {
		int64_t left = std::max<int64_t>(deadline - clock_.now_ns(), 0);
		if (!w->stop_and_join(left)) {
			clean = false;
			(void)w.release(); /* its threads are stuck in I/O and still use it */
		}
	};
	for (auto &w : all)
		stop_one(w);
	if (root_)
		stop_one(root_);
	return clean;
}

std::vector<WorkerInfo> Dispatcher::workers() const
{
	std::vector<WorkerInfo> out;
	SharedLocker l(mutex_);
	if (root_ && !stopped_.load())
		out.push_back(root_->info());
	for (const auto &[id, w] : workers_)
		out.push_back(w->info());
	std::sort(out.begin() + (out.empty() ? 0 : 1), out.end(),
		  [](const WorkerInfo &a, const WorkerInfo &b) { return a.path < b.path; });
	return out;
}

std::vector<std::shared_ptr<const CgroupStats>> Dispatcher::stats() const
{
	std::vector<std::shared_ptr<const CgroupStats>> out;
	SharedLocker l(mutex_);
	for (const auto &[id, s] : stats_)
		out.push_back(s);
	/* The root queue first, then by path. */
	std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) {
		return std::make_pair(a->id != 0, a->path) < std::make_pair(b->id != 0, b->path);
	});
	return out;
}

Config Dispatcher::config() const
{
	SharedLocker l(mutex_);
	return config_;
}

DispatchTotals Dispatcher::totals() const
{
	SharedLocker l(mutex_);
	return totals_;
}

void Dispatcher::set_limits(int64_t idle_timeout_ns, unsigned max_workers, unsigned worker_depth)
{
	{
		ExclusiveLocker l(mutex_);
		idle_timeout_ns_.store(idle_timeout_ns);
		config_.idle_timeout_ns = idle_timeout_ns;
		config_.max_workers = max_workers;
		config_.worker_depth = worker_depth;
		depth_.store(std::max(1u, worker_depth));
	}
	reaper_cv_.notify_all();
}

} /* namespace cgloopfs::dispatch */
