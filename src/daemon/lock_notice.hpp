/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the daemon says about an image's locks (image/image_lock.hpp): image/
 * does not log, so an image served unlocked under lock=auto is reported
 * here, once, when it is mounted or attached. Main program code (logs);
 * reentrant.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DAEMON
#error "daemon/ is not a layer below this one (see src/meson.build)"
#endif

#include "image/backing_image.hpp"

namespace cgloopfs::daemon {

/* Say so when `image` is served without locks its file system cannot hold. */
void note_lock_state(const image::BackingImage &image);

} /* namespace cgloopfs::daemon */
