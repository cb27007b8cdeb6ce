/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * common/task_signals: which callers' interrupts are acted on (a dying
 * caller's) and which are only noted (a caught signal, a stop, a freeze).
 */
#include <csignal>
#include <string>

#include <unistd.h>

#include <doctest/doctest.h>

#include "common/task_signals.hpp"

using namespace cgloopfs;

namespace {

std::string status(const char *state, const char *pnd, const char *shd, const char *blk,
		   const char *ign, const char *cgt)
{
	return std::string("Name:\tpython3\nUmask:\t0022\nState:\t") + state +
	       "\nTgid:\t7562\nSigQ:\t1/96362\nSigPnd:\t" + pnd + "\nShdPnd:\t" + shd +
	       "\nSigBlk:\t" + blk + "\nSigIgn:\t" + ign + "\nSigCgt:\t" + cgt +
	       "\nCapInh:\t0000000000000000\n";
}

constexpr const char *none = "0000000000000000";

} /* namespace */

TEST_CASE("a caught, harmless or blocked signal is not a dying caller")
{
	/* SIGUSR1 pending and caught (a python3 caller with a handler). */
	CHECK_FALSE(status_says_dying(status("D (disk sleep)", none, "0000000000000200", none,
					     "0000000001001006", "0000000000002200")));
	/* Nothing pending at all: the v1 freezer's wake-up. */
	CHECK_FALSE(status_says_dying(status("D (disk sleep)", none, none, none, none, none)));
	/* SIGTSTP and SIGCHLD pending, not caught: they stop or are ignored by default. */
	CHECK_FALSE(status_says_dying(status("D (disk sleep)", "0000000000080000",
					     "0000000000010000", none, none, none)));
	/* SIGTERM pending but blocked, or ignored. */
	CHECK_FALSE(status_says_dying(status("D (disk sleep)", none, "0000000000004000",
					     "0000000000004000", none, none)));
	CHECK_FALSE(status_says_dying(status("D (disk sleep)", none, "0000000000004000", none,
					     "0000000000004000", none)));
}

TEST_CASE("a kill, or a pending signal that ends the process, is a dying caller")
{
	/* SIGKILL in the thread's own set: the kernel puts it there for any fatal signal. */
	CHECK(status_says_dying(status("D (disk sleep)", "0000000000000100", none, none, none,
				       "0000000000002200")));
	CHECK(status_says_dying(
		status("D (disk sleep)", none, "0000000000000100", none, none, none)));
	/* SIGQUIT (dumps core: no SIGKILL is added) pending, not caught. */
	CHECK(status_says_dying(status("D (disk sleep)", none, "0000000000000004", none, none,
				       "0000000000000200")));
	/* A real-time signal with no handler ends the process. */
	CHECK(status_says_dying(
		status("S (sleeping)", none, "0000000400000000", none, none, none)));
	CHECK(status_says_dying(status("Z (zombie)", none, none, none, none, none)));
}

TEST_CASE("a status without the signal lines says nothing")
{
	CHECK_FALSE(status_says_dying("Name:\tx\nState:\tS (sleeping)\n"));
	CHECK_FALSE(status_says_dying(""));
	CHECK_FALSE(status_says_dying("SigPnd:\tzz\nShdPnd:\t0\n"));
}

TEST_CASE("task_dying on real tasks")
{
	CHECK_FALSE(task_dying(static_cast<int>(getpid())));
	CHECK(task_dying(0));
	/* A pid that cannot exist (above pid_max's ceiling) is gone. */
	CHECK(task_dying(1 << 30));
}
