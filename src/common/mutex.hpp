/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Mutexes the compiler checks: thin wrappers of std::mutex and
 * std::shared_mutex carrying clang's thread-safety attributes, after
 * libcamera's base/mutex.h. Under clang with -Wthread-safety, reading a
 * CGL_GUARDED_BY member without its mutex, calling a CGL_REQUIRES function
 * without it, or leaving a function with a lock still held is a warning
 * (an error with -Werror). Under gcc the attributes expand to nothing and
 * the wrappers cost nothing either: they inline to the std calls.
 *
 * Mutex, SharedMutex: lockable, not copyable. MutexLocker: a relockable
 * scoped lock of a Mutex (std::unique_lock inside); ConditionVariable waits
 * on a MutexLocker through that std::unique_lock, so a wait is exactly a
 * std::condition_variable wait. SharedLocker / ExclusiveLocker: scoped
 * locks of a SharedMutex. All are as thread-safe as their std counterparts.
 *
 * Lambdas are checked as functions of their own: a predicate that reads
 * guarded members says so, [&]() CGL_REQUIRES(mutex_) { ... }.
 * See https://clang.llvm.org/docs/ThreadSafetyAnalysis.html.
 */
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define CGL_TSA_ATTRIBUTE_(x) __attribute__((x))
#else
#define CGL_TSA_ATTRIBUTE_(x) /* gcc has no thread-safety analysis */
#endif

/* A type that is a lock (a "capability"). */
#define CGL_CAPABILITY(name) CGL_TSA_ATTRIBUTE_(capability(name))
/* An RAII type that holds a lock for its lifetime (or until unlocked). */
#define CGL_SCOPED_CAPABILITY CGL_TSA_ATTRIBUTE_(scoped_lockable)
/* A member read and written only with this lock held. */
#define CGL_GUARDED_BY(x) CGL_TSA_ATTRIBUTE_(guarded_by(x))
/* A pointer member whose target is read and written only with this lock held. */
#define CGL_PT_GUARDED_BY(x) CGL_TSA_ATTRIBUTE_(pt_guarded_by(x))
/* The caller holds the lock(s) (exclusively; _SHARED: at least shared). */
#define CGL_REQUIRES(...) CGL_TSA_ATTRIBUTE_(requires_capability(__VA_ARGS__))
#define CGL_REQUIRES_SHARED(...) CGL_TSA_ATTRIBUTE_(requires_shared_capability(__VA_ARGS__))
/* The function takes the lock(s) and returns with them held. */
#define CGL_ACQUIRE(...) CGL_TSA_ATTRIBUTE_(acquire_capability(__VA_ARGS__))
#define CGL_ACQUIRE_SHARED(...) CGL_TSA_ATTRIBUTE_(acquire_shared_capability(__VA_ARGS__))
/* The function releases the lock(s) the caller held. */
#define CGL_RELEASE(...) CGL_TSA_ATTRIBUTE_(release_capability(__VA_ARGS__))
#define CGL_RELEASE_SHARED(...) CGL_TSA_ATTRIBUTE_(release_shared_capability(__VA_ARGS__))
/* The caller must not hold the lock(s): the function takes them itself. */
#define CGL_EXCLUDES(...) CGL_TSA_ATTRIBUTE_(locks_excluded(__VA_ARGS__))
/* The function returns a reference to this lock. */
#define CGL_RETURN_CAPABILITY(x) CGL_TSA_ATTRIBUTE_(lock_returned(x))
/* Not checked: the function does what the analysis cannot follow (say why). */
#define CGL_NO_THREAD_SAFETY_ANALYSIS CGL_TSA_ATTRIBUTE_(no_thread_safety_analysis)

namespace cgloopfs {

class MutexLocker;
class SharedLocker;
class ExclusiveLocker;

class CGL_CAPABILITY("mutex") Mutex final
{
public:
	constexpr Mutex() noexcept = default;
	Mutex(const Mutex &) = delete;
	Mutex &operator=(const Mutex &) = delete;

	void lock() CGL_ACQUIRE() { mutex_.lock(); }
	void unlock() CGL_RELEASE() { mutex_.unlock(); }

private:
	friend class MutexLocker;
	class SharedLocker;
	class ExclusiveLocker;
	std::mutex mutex_;
};

/* Holds `mutex` from construction to destruction, unless unlocked in between. */
class CGL_SCOPED_CAPABILITY MutexLocker final
{
public:
	explicit MutexLocker(Mutex &mutex) CGL_ACQUIRE(mutex) : lock_(mutex.mutex_) {}
	~MutexLocker() CGL_RELEASE() = default;
	MutexLocker(const MutexLocker &) = delete;
	MutexLocker &operator=(const MutexLocker &) = delete;

	void lock() CGL_ACQUIRE() { lock_.lock(); }
	void unlock() CGL_RELEASE() { lock_.unlock(); }

	/* The std lock underneath, for ConditionVariable (and nothing else). */
	std::unique_lock<std::mutex> &get() CGL_NO_THREAD_SAFETY_ANALYSIS { return lock_; }

private:
	std::unique_lock<std::mutex> lock_;
};

/*
 * A std::condition_variable that waits on a MutexLocker. The analysis sees
 * the lock held across the wait, which is what the caller observes.
 */
class ConditionVariable final
{
public:
	ConditionVariable() = default;
	ConditionVariable(const ConditionVariable &) = delete;
	ConditionVariable &operator=(const ConditionVariable &) = delete;

	void notify_one() noexcept { cv_.notify_one(); }
	void notify_all() noexcept { cv_.notify_all(); }

	/* std::condition_variable::wait does not tell the analysis it relocks. */
	void wait(MutexLocker &locker) CGL_NO_THREAD_SAFETY_ANALYSIS { cv_.wait(locker.get()); }

	template <typename Pred>
	void wait(MutexLocker &locker, Pred pred) CGL_NO_THREAD_SAFETY_ANALYSIS
	{
		cv_.wait(locker.get(), pred);
	}

	template <typename Rep, typename Period>
	std::cv_status wait_for(MutexLocker &locker, const std::chrono::duration<Rep, Period> &rel)
		CGL_NO_THREAD_SAFETY_ANALYSIS
	{
		return cv_.wait_for(locker.get(), rel);
	}

	template <typename Rep, typename Period, typename Pred>
	bool wait_for(MutexLocker &locker, const std::chrono::duration<Rep, Period> &rel,
		      Pred pred) CGL_NO_THREAD_SAFETY_ANALYSIS
	{
		return cv_.wait_for(locker.get(), rel, pred);
	}

private:
	std::condition_variable cv_;
};

/* A std::shared_mutex: many readers or one writer. */
class CGL_CAPABILITY("shared mutex") SharedMutex final
{
public:
	SharedMutex() = default;
	SharedMutex(const SharedMutex &) = delete;
	SharedMutex &operator=(const SharedMutex &) = delete;

	void lock() CGL_ACQUIRE() { mutex_.lock(); }
	void unlock() CGL_RELEASE() { mutex_.unlock(); }
	void lock_shared() CGL_ACQUIRE_SHARED() { mutex_.lock_shared(); }
	void unlock_shared() CGL_RELEASE_SHARED() { mutex_.unlock_shared(); }

private:
	friend class SharedLocker;
	friend class ExclusiveLocker;
	std::shared_mutex mutex_;
};

/* Holds `mutex` shared for its lifetime. */
class CGL_SCOPED_CAPABILITY SharedLocker final
{
public:
	explicit SharedLocker(SharedMutex &mutex) CGL_ACQUIRE_SHARED(mutex) : lock_(mutex.mutex_) {}
	~SharedLocker() CGL_RELEASE() = default;
	SharedLocker(const SharedLocker &) = delete;
	SharedLocker &operator=(const SharedLocker &) = delete;

private:
	std::shared_lock<std::shared_mutex> lock_;
};

/* Holds `mutex` exclusively from construction to destruction, unless unlocked in between. */
class CGL_SCOPED_CAPABILITY ExclusiveLocker final
{
public:
	explicit ExclusiveLocker(SharedMutex &mutex) CGL_ACQUIRE(mutex) : lock_(mutex.mutex_) {}
	~ExclusiveLocker() CGL_RELEASE() = default;
	ExclusiveLocker(const ExclusiveLocker &) = delete;
	ExclusiveLocker &operator=(const ExclusiveLocker &) = delete;

	void lock() CGL_ACQUIRE() { lock_.lock(); }
	void unlock() CGL_RELEASE() { lock_.unlock(); }

private:
	std::unique_lock<std::shared_mutex> lock_;
};

} /* namespace cgloopfs */
