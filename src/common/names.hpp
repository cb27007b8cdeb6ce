/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Names the daemon and cgloopctl must agree on, written once. Here, in
 * common/, because both fuse/ (which shows them) and control/ (which reads
 * them) see common/ and neither sees the other.
 */
#pragma once

namespace cgloopfs {

/* The xattr of the mount's root directory that names its control socket. */
inline constexpr const char *control_xattr = "user.cgloopfs.control";

} /* namespace cgloopfs */
