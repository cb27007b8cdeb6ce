/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control protocol: one JSON object per line each way, over the mount's
 * Unix socket. Versioned. Pure functions; reentrant; no logging.
 *
 *   request:  {"version": 1, "command": "workers", "args": {...}}
 *   reply:    {"ok": true, "result": ...} or {"ok": false, "error": "why"}
 */
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <variant>

#include <nlohmann/json.hpp>

namespace cgloopfs::control {

inline constexpr int protocol_version = 1;
/* The longest message either side accepts, newline included. */
inline constexpr size_t max_message = 64 * 1024;

struct Request {
	std::string command;
	nlohmann::json args = nlohmann::json::object();
};

/* A request the daemon refuses; what() goes back to the client. */
class ControlError : public std::runtime_error
{
public:
	using std::runtime_error::runtime_error;
};

/* Parse one request line (without its newline); an error message when malformed. */
std::variant<Request, std::string> parse_request(std::string_view line);

std::string format_request(const Request &request);
std::string ok_reply(const nlohmann::json &result);
std::string error_reply(std::string_view message);

/*
 * The control socket of `mountpoint` when none is given:
 * RUNSTATEDIR/cgloopfs/<escaped mount point>.sock for root,
 * /run/user/UID/cgloopfs/... for other users; a hash when too long.
 */
std::string default_socket_path(std::string_view runstatedir, std::string_view mountpoint,
				uid_t uid);

/* systemd-escape --path style escaping ("/srv/a b" -> "srv-a\x20b"). */
std::string escape_path(std::string_view path);

} /* namespace cgloopfs::control */
