/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "client.hpp"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <poll.h>
#include <sys/socket.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <fmt/core.h>

#include "common/mountinfo.hpp"
#include "common/names.hpp"
#include "common/unique_fd.hpp"
#include "json_text.hpp"

namespace cgloopfs::control {

namespace {

constexpr size_t max_reply = 64 * 1024 * 1024;
constexpr int reply_timeout_ms = 10000;

} /* namespace */

std::vector<std::string> cgloopfs_mounts()
{
	std::vector<std::string> out;
	for (auto &m : parse_mountinfo(read_mountinfo()))
		if (m.fstype == "fuse.cgloopfs")
			out.push_back(std::move(m.mountpoint));
	return out;
}

std::string find_socket(const std::string &mountpoint)
{
	char real[PATH_MAX];
	if (!realpath(mountpoint.c_str(), real))
		throw ClientError(
			fmt::format("mount point \"{}\": {}", mountpoint, std::strerror(errno)));
	bool mounted = false;
	for (const auto &m : cgloopfs_mounts())
		if (m == real)
			mounted = true;
	if (!mounted)
		throw ClientError(fmt::format("\"{}\" is not a cgloopfs mount point", mountpoint));
	char buf[PATH_MAX];
	ssize_t n = getxattr(real, control_xattr, buf, sizeof(buf) - 1);
	if (n < 0) {
		if (errno == ENOTCONN)
			throw ClientError(fmt::format(
				"the cgloopfs daemon of \"{}\" is gone (the mount is dead; "
				"unmount it with: umount -l {})",
				mountpoint, real));
		throw ClientError(fmt::format("cannot find the control socket of \"{}\": {}",
					      mountpoint, std::strerror(errno)));
	}
	return std::string(buf, static_cast<size_t>(n));
}

namespace {

UniqueFd connect_to(const std::string &socket_path)
{
	UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd)
		throw ClientError(fmt::format("socket: {}", std::strerror(errno)));
	auto addr = socket_address(socket_path);
	if (!addr)
		throw ClientError(fmt::format("control socket \"{}\": path too long", socket_path));
	if (connect(fd.get(), reinterpret_cast<sockaddr *>(&*addr), sizeof(*addr)) == 0)
		return fd;
	int err = errno;
	if (err == ENOENT || err == ECONNREFUSED)
		throw ClientError(fmt::format("no cgloopfs daemon answers on \"{}\" ({})",
					      socket_path, std::strerror(err)));
	if (err == EACCES)
		throw ClientError(fmt::format("control socket \"{}\": permission denied "
					      "(only root and the mounting user may use it)",
					      socket_path));
	throw ClientError(
		fmt::format("control socket \"{}\": {}", socket_path, std::strerror(err)));
}

void send_message(int fd, const std::string &msg, const std::string &socket_path)
{
	size_t sent = 0;
	while (sent < msg.size()) {
		ssize_t w = send(fd, msg.data() + sent, msg.size() - sent, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return; /* refused before it read us: its answer says why */
		if (w <= 0)
			throw ClientError(fmt::format("control socket \"{}\": {}", socket_path,
						      std::strerror(errno)));
		sent += static_cast<size_t>(w);
	}
}

/* The first line the daemon answers, without its newline. */
std::string receive_line(int fd)
{
	std::string reply;
	char buf[65536];
	for (;;) {
		pollfd p{fd, POLLIN, 0};
		int r = poll(&p, 1, reply_timeout_ms);
		if (r == 0)
			throw ClientError("the cgloopfs daemon did not answer within 10 s");
		if (r < 0 && errno == EINTR)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && reply.empty())
			throw ClientError("the cgloopfs daemon closed the connection");
		if (n < 0)
			throw ClientError(fmt::format("control socket: {}", std::strerror(errno)));
		if (n == 0)
			break;
		reply.append(buf, static_cast<size_t>(n));
		if (reply.find('\n') != std::string::npos)
			break;
		if (reply.size() > max_reply)
			throw ClientError("the daemon's reply is too long");
	}
	auto nl = reply.find('\n');
	if (nl == std::string::npos)
		throw ClientError("the daemon closed the connection without an answer");
	reply.resize(nl);
	return reply;
}

} /* namespace */

nlohmann::json call(const std::string &socket_path, const Request &request)
{
	UniqueFd fd = connect_to(socket_path);
	send_message(fd.get(), format_request(request), socket_path);
	auto j = parse_json(receive_line(fd.get()));
	if (j.is_discarded() || !j.is_object() || !j.contains("ok"))
		throw ClientError("the daemon's answer is malformed");
	if (!j["ok"].get<bool>())
		throw ClientError(j.value("error", std::string("refused")));
	return j.value("result", nlohmann::json());
}

} /* namespace cgloopfs::control */
