/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control protocol: one JSON object per line each way, over the mount's
 * Unix socket. Versioned. Pure functions; reentrant; no logging.
 *
 *   request:  {"version": 1, "command": "workers", "args": {...}}
 *   reply:    {"ok": true, "result": ...} or {"ok": false, "error": "why"}
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONTROL
#error "control/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include <sys/types.h>
#include <sys/un.h>

#include <nlohmann/json.hpp>

namespace cgloopfs::control {

inline constexpr int protocol_version = 1;
/* The longest message either side accepts, newline included. */
inline constexpr size_t max_message = 64 * 1024;
/* How deep arrays and objects may nest in a request (commands need 3). */
inline constexpr size_t max_nesting = 32;

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

/*
 * The framing of one connection: bytes in as they arrive, request lines out.
 * A line that reaches `limit` bytes without its newline is an overflow: the
 * connection answers "message too long" and reads the rest away. Reentrant
 * (one per connection).
 */
class LineReader
{
public:
	explicit LineReader(size_t limit = max_message) : limit_(limit) {}

	/* Add received bytes. */
	void append(std::string_view data);
	/* The next complete line, without its newline; nullopt when none is complete. */
	std::optional<std::string> next_line();
	/* The unfinished line has reached the limit (ask after next_line() ran dry). */
	bool overflow() const { return in_.size() - start_ >= limit_; }
	/* Part of a line waits for its end. */
	bool pending() const { return in_.size() > start_; }
	/* Forget everything buffered. */
	void clear();

private:
	size_t limit_;
	std::string in_;
	size_t start_ = 0;   /* where the unconsumed bytes begin */
	size_t scanned_ = 0; /* bytes from start_ known to hold no newline */
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

/*
 * The AF_UNIX address of the socket file at `path`, for bind(2) and
 * connect(2); nullopt when the path does not fit in sun_path.
 */
std::optional<sockaddr_un> socket_address(std::string_view path);

/* systemd-escape --path style escaping ("/srv/a b" -> "srv-a\x20b"). */
std::string escape_path(std::string_view path);

} /* namespace cgloopfs::control */
