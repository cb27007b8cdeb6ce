/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * start_thread(): start a std::jthread with every signal blocked, so that
 * signals reach only the thread that waits for them (the daemon's main
 * thread, through a signalfd), as libfuse's fuse_start_thread() does.
 * Reentrant.
 */
#pragma once

#include <cerrno>
#include <csignal>
#include <system_error>
#include <thread>
#include <utility>

#include <pthread.h>

namespace cgloopfs {

/*
 * Start fn(stop_token) in ret_thread. Returns 0, or the positive errno of a
 * failed start (EAGAIN when the library gives none); ret_thread is then left
 * as it was.
 */
template <typename Fn> [[nodiscard]] int start_thread(std::jthread &ret_thread, Fn &&fn)
{
	sigset_t all, prev;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &prev);
	int err = 0;
	try {
		ret_thread = std::jthread(std::forward<Fn>(fn));
	} catch (const std::system_error &e) {
		err = e.code().value() > 0 ? e.code().value() : EAGAIN;
	}
	pthread_sigmask(SIG_SETMASK, &prev, nullptr);
	return err;
}

} /* namespace cgloopfs */
