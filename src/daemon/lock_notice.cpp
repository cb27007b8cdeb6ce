/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "lock_notice.hpp"

#include "common/log.hpp"

namespace cgloopfs::daemon {

void note_lock_state(const image::BackingImage &image)
{
	if (image.lock_state() != image::LockState::unsupported)
		return;
	const auto &spec = image.spec();
	log::notice("{}\"{}\" is on a file system without open file description locks: "
		    "serving it without image locks (lock=auto)",
		    config::describe(spec.origin, spec.name), spec.path);
}

} /* namespace cgloopfs::daemon */
