/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon's answers to control requests (cgloopctl): each command turned
 * into JSON from the dispatcher and the image table. Runs on the control
 * server's thread; everything it reads is thread-safe.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DAEMON
#error "daemon/ is not a layer below this one (see src/meson.build)"
#endif

#include <nlohmann/json.hpp>

#include "control/server.hpp"
#include "fuse/ops.hpp"

namespace cgloopfs::daemon {

/*
 * The `stats` answer: per cgroup its figures, the dispatcher's totals, the
 * images; also what the metrics are made from (metrics/exposition.hpp).
 * Any thread.
 */
nlohmann::json stats_document(fuse::Filesystem &fs);

/* Throws control::ControlError for unknown commands and bad arguments. */
nlohmann::json handle_control(const control::Request &request, const control::Peer &peer,
			      fuse::Filesystem &fs);

} /* namespace cgloopfs::daemon */
