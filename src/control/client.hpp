/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Client side of the control socket, for cgloopctl: find a mount's socket
 * and send one request. Errors are thrown as ClientError with one clear line.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONTROL
#error "control/ is not a layer below this one (see src/meson.build)"
#endif

#include <stdexcept>
#include <string>
#include <vector>

#include "protocol.hpp"

namespace cgloopfs::control {

class ClientError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/*
 * The daemon did not answer through its mount point, and a thread of ours is
 * still waiting in the mount: the program should end with _exit() once it
 * has said so (exit()'s handlers, such as a leak checker that stops every
 * thread, would wait for that one).
 */
class ClientStuck : public ClientError
{
public:
	using ClientError::ClientError;
};

/* The cgloopfs mount points in /proc/self/mountinfo, in mount order. */
std::vector<std::string> cgloopfs_mounts();

/*
 * The control socket of the cgloopfs mounted at `mountpoint`: the path the
 * daemon shows as the user.cgloopfs.control xattr of the mount's root.
 */
std::string find_socket(const std::string &mountpoint);

/* Send `request` to `socket_path`; the result of an ok reply. */
nlohmann::json call(const std::string &socket_path, const Request &request);

} /* namespace cgloopfs::control */
