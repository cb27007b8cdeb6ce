/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "client.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

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

namespace {

/*
 * What find_socket asks of the mount: its real path (a lookup of the mount
 * point, which may ask the daemon for its attributes) and the control xattr.
 * Both wait for the daemon, and a stopped or stuck one would hold cgloopctl
 * for ever, deaf to Ctrl-C (a FUSE request waits for a fatal signal): they
 * run on a thread of their own, and cgloopctl gives up after
 * reply_timeout_ms, as it does on the socket.
 */
struct MountLookup {
	std::mutex mutex;
	std::condition_variable cv;
	bool done = false;
	std::string real;
	int real_errno = 0;
	std::string xattr;
	ssize_t xattr_len = -1;
	int xattr_errno = 0;
};

void look_up(const std::shared_ptr<MountLookup> &l, const std::string &mountpoint,
	     const std::vector<std::string> &mounts)
{
	char real[PATH_MAX];
	std::string path;
	int real_errno = 0, xattr_errno = 0;
	ssize_t n = -1;
	char buf[PATH_MAX];
	if (realpath(mountpoint.c_str(), real)) {
		path = real;
		/* Only a cgloopfs mount is asked for the xattr. */
		if (std::find(mounts.begin(), mounts.end(), path) != mounts.end()) {
			n = getxattr(real, control_xattr, buf, sizeof(buf) - 1);
			xattr_errno = n < 0 ? errno : 0;
		}
	} else {
		real_errno = errno;
	}
	std::lock_guard<std::mutex> g(l->mutex);
	l->real = path;
	l->real_errno = real_errno;
	l->xattr_len = n;
	l->xattr_errno = xattr_errno;
	if (n >= 0)
		l->xattr.assign(buf, static_cast<size_t>(n));
	l->done = true;
	l->cv.notify_all();
}

} /* namespace */

std::string find_socket(const std::string &mountpoint)
{
	auto mounts = cgloopfs_mounts();
	auto l = std::make_shared<MountLookup>();
	std::thread(look_up, l, mountpoint, mounts).detach();
	std::unique_lock<std::mutex> g(l->mutex);
	if (!l->cv.wait_for(g, std::chrono::milliseconds(reply_timeout_ms),
			    [&] { return l->done; }))
		throw ClientStuck(fmt::format("the cgloopfs daemon of \"{}\" did not answer within "
					      "10 s (stopped or stuck?)",
					      mountpoint));
	if (l->real.empty())
		throw ClientError(fmt::format("mount point \"{}\": {}", mountpoint,
					      std::strerror(l->real_errno)));
	const std::string &real = l->real;
	if (std::find(mounts.begin(), mounts.end(), real) == mounts.end())
		throw ClientError(fmt::format("\"{}\" is not a cgloopfs mount point", mountpoint));
	ssize_t n = l->xattr_len;
	errno = l->xattr_errno;
	if (n < 0) {
		if (errno == ENOTCONN)
			throw ClientError(fmt::format(
				"the cgloopfs daemon of \"{}\" is gone (the mount is dead; "
				"unmount it with: umount -l {})",
				mountpoint, real));
		throw ClientError(fmt::format("cannot find the control socket of \"{}\": {}",
					      mountpoint, std::strerror(errno)));
	}
	return l->xattr;
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
