/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "server.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fmt/core.h>

#include "common/clock.hpp"
#include "common/thread.hpp"

namespace cgloopfs::control {

/* One connection. Thread-bound: only the server thread touches it. */
struct ControlServer::Client {
	UniqueFd fd;
	Peer peer{};
	LineReader in;
	std::string out;
	int64_t deadline_ms = 0;
	bool closing = false;	 /* close once `out` is sent */
	bool discarding = false; /* after an oversized message: drop input until EOF */

	/* Close at once, dropping what is not sent yet. */
	void close_now()
	{
		closing = true;
		out.clear();
		deadline_ms = 0;
	}
};

namespace {

int64_t now_ms()
{
	return monotonic_ns() / 1000000;
}

int make_dirs(const std::string &dir)
{
	if (dir.empty())
		return 0;
	struct stat st;
	if (stat(dir.c_str(), &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	auto slash = dir.find_last_of('/');
	if (slash != std::string::npos && slash > 0) {
		int r = make_dirs(dir.substr(0, slash));
		if (r < 0)
			return r;
	}
	if (mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Why a new connection is refused ("" when it is let in). */
std::string refusal(int fd, uid_t owner, size_t clients, ucred *ret_cred)
{
	socklen_t len = sizeof(*ret_cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ret_cred, &len) < 0)
		return "cannot identify the peer";
	if (ret_cred->uid != 0 && ret_cred->uid != owner)
		return fmt::format(
			"permission denied: uid {} is neither root nor the mounting user",
			ret_cred->uid);
	if (clients >= ControlServer::max_clients)
		return "busy: too many control connections";
	return "";
}

/* A last word to a peer about to be dropped; never blocks. */
void send_last(int fd, std::string_view message)
{
	std::string r = error_reply(message);
	(void)send(fd, r.data(), r.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

} /* namespace */

ControlServer::ControlServer(std::string path, uid_t owner, Handler handler)
	: path_(std::move(path)), owner_(owner), handler_(std::move(handler))
{
}

ControlServer::~ControlServer()
{
	stop();
}

int ControlServer::bind_socket(std::string *ret_why)
{
	auto fail = [&](int err, std::string why) {
		if (ret_why)
			*ret_why = std::move(why);
		return -err;
	};
	auto addr = socket_address(path_);
	if (path_.empty() || !addr)
		return fail(ENAMETOOLONG,
			    fmt::format("control socket \"{}\": path too long", path_));
	auto slash = path_.find_last_of('/');
	std::string dir = slash == std::string::npos ? "" : path_.substr(0, slash);
	if (int r = make_dirs(dir); r < 0)
		return fail(-r, fmt::format("control socket directory \"{}\": {}", dir,
					    std::strerror(-r)));

	if (int r = remove_stale_socket(*addr, ret_why); r < 0)
		return r;

	listen_fd_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (!listen_fd_)
		return fail(errno, fmt::format("control socket: {}", std::strerror(errno)));
	mode_t old = umask(0177);
	int r = bind(listen_fd_.get(), reinterpret_cast<sockaddr *>(&*addr), sizeof(*addr));
	int err = errno;
	umask(old);
	if (r < 0)
		return fail(err,
			    fmt::format("control socket \"{}\": {}", path_, std::strerror(err)));
	/* Which file is ours, so that stop() removes that one and no other. */
	struct stat st;
	if (lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
		bound_ = true;
		socket_dev_ = st.st_dev;
		socket_ino_ = st.st_ino;
	}
	if (listen(listen_fd_.get(), 16) < 0)
		return fail(errno,
			    fmt::format("control socket \"{}\": {}", path_, std::strerror(errno)));
	wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (!wake_fd_)
		return fail(errno, fmt::format("control socket: {}", std::strerror(errno)));
	return 0;
}

/*
 * A socket file already at the path: in use by a live daemon (refused), or
 * stale from a dead one (removed). Returns 0 or -errno with *ret_why set.
 */
int ControlServer::remove_stale_socket(const sockaddr_un &addr, std::string *ret_why)
{
	auto fail = [&](int err, std::string why) {
		if (ret_why)
			*ret_why = std::move(why);
		return -err;
	};
	struct stat st;
	if (lstat(path_.c_str(), &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return fail(EEXIST, fmt::format("control socket \"{}\": exists and is not a socket",
						path_));
	UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (probe &&
	    connect(probe.get(), reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) == 0)
		return fail(EADDRINUSE, fmt::format("control socket \"{}\": another cgloopfs is "
						    "serving it",
						    path_));
	(void)unlink(path_.c_str());
	return 0;
}

int ControlServer::start(std::string *ret_why)
{
	auto fail = [&](int err, std::string why) {
		if (ret_why)
			*ret_why = std::move(why);
		return -err;
	};
	if (!listen_fd_)
		return fail(EBADF, "control socket: not bound");
	if (int err = start_thread(thread_, [this](std::stop_token st) { loop(st); }))
		return fail(err, fmt::format("control socket: cannot start its thread: {}",
					     std::strerror(err)));
	return 0;
}

void ControlServer::stop()
{
	if (thread_.joinable()) {
		thread_.request_stop();
		uint64_t one = 1;
		(void)!::write(wake_fd_.get(), &one, sizeof(one));
		thread_.join();
	}
	remove_socket();
	listen_fd_.reset();
}

/*
 * Unlink the socket file only while its path still names the inode we
 * bound: after ours was removed, another daemon may have bound a new socket
 * there, and unlinking that would leave it unreachable. Another daemon that
 * binds between the lstat and the unlink still loses its socket; that window
 * is two system calls wide, and closing it would take a lock both share.
 */
void ControlServer::remove_socket()
{
	if (!bound_)
		return;
	bound_ = false;
	struct stat st;
	if (lstat(path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_)
		(void)unlink(path_.c_str());
}

void ControlServer::loop(std::stop_token stop)
{
	pthread_setname_np(pthread_self(), "cgl-control");
	std::vector<Client> clients;
	std::vector<pollfd> pfds;
	while (!stop.stop_requested()) {
		int timeout = poll_set(clients, pfds);
		int n = poll(pfds.data(), pfds.size(), timeout);
		if (n < 0 && errno != EINTR)
			break;
		if (stop.stop_requested())
			break;
		int64_t now = now_ms();
		for (size_t i = 0; i < clients.size(); i++)
			serve_client(clients[i], pfds[i + 2].revents, now);
		drop_clients(clients, now);
		if (pfds[1].revents & POLLIN)
			accept_clients(clients);
	}
}

/*
 * What to wait for: the wake eventfd, the listening socket, then each client
 * in order. Returns the poll timeout: until the nearest client deadline.
 */
int ControlServer::poll_set(const std::vector<Client> &clients, std::vector<pollfd> &ret_pfds) const
{
	ret_pfds.clear();
	ret_pfds.push_back({wake_fd_.get(), POLLIN, 0});
	ret_pfds.push_back({listen_fd_.get(), POLLIN, 0});
	int64_t now = now_ms();
	int timeout = -1;
	for (const auto &c : clients) {
		short ev = c.out.empty() || c.discarding ? POLLIN : POLLOUT;
		if (c.discarding && !c.out.empty())
			ev |= POLLOUT;
		ret_pfds.push_back({c.fd.get(), ev, 0});
		int left = static_cast<int>(std::max<int64_t>(c.deadline_ms - now, 0));
		timeout = timeout < 0 ? left : std::min(timeout, left);
	}
	return timeout;
}

/* Send what is pending to one client, then read from it. */
void ControlServer::serve_client(Client &c, short revents, int64_t now)
{
	if (revents & (POLLERR | POLLHUP | POLLNVAL) && c.out.empty()) {
		c.close_now();
		return;
	}
	if ((revents & POLLOUT) && !c.out.empty()) {
		ssize_t w = send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
		if (w > 0)
			c.out.erase(0, static_cast<size_t>(w));
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			c.close_now();
		/* A reply is answered in full before the next request is read. */
		if (!c.discarding)
			return;
	}
	if (revents & POLLIN)
		receive(c, now);
}

/* Read what a client sent and answer each complete request line. */
void ControlServer::receive(Client &c, int64_t now)
{
	char buf[8192];
	ssize_t r = recv(c.fd.get(), buf, sizeof(buf), 0);
	if (r <= 0) {
		if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			c.closing = true;
			c.deadline_ms = 0;
		}
		return;
	}
	c.deadline_ms = now + client_timeout_ms;
	if (c.discarding)
		return;
	c.in.append(std::string_view(buf, static_cast<size_t>(r)));
	while (auto line = c.in.next_line())
		answer(c, *line);
	if (c.in.overflow()) {
		/* Answer, then read the rest away so the peer sees the answer. */
		c.out += error_reply("message too long");
		c.in.clear();
		c.discarding = true;
	}
}

/* Queue the reply to one request line: the handler's result, or why not. */
void ControlServer::answer(Client &c, std::string_view line)
{
	auto parsed = parse_request(line);
	if (auto *why = std::get_if<std::string>(&parsed)) {
		c.out += error_reply(*why);
		return;
	}
	try {
		c.out += ok_reply(handler_(std::get<Request>(parsed), c.peer));
	} catch (const ControlError &e) {
		c.out += error_reply(e.what());
	} catch (const std::exception &e) {
		c.out += error_reply(fmt::format("internal error: {}", e.what()));
	}
}

/* Drop finished, closed and timed-out clients. */
void ControlServer::drop_clients(std::vector<Client> &clients, int64_t now)
{
	for (size_t i = clients.size(); i-- > 0;) {
		Client &c = clients[i];
		bool done = c.closing && c.out.empty();
		bool expired = now >= c.deadline_ms;
		if (expired && !done && c.out.empty() && !c.closing && c.in.pending())
			send_last(c.fd.get(), "timed out waiting for the end of the message");
		if (done || expired)
			clients.erase(clients.begin() + static_cast<long>(i));
	}
}

/* Take every waiting connection; refuse strangers and the one too many. */
void ControlServer::accept_clients(std::vector<Client> &clients)
{
	for (;;) {
		UniqueFd fd(
			accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
		if (!fd)
			return;
		struct ucred cred = {};
		if (std::string why = refusal(fd.get(), owner_, clients.size(), &cred);
		    !why.empty()) {
			send_last(fd.get(), why);
			continue;
		}
		Client c;
		c.fd = std::move(fd);
		c.peer = {cred.pid, cred.uid, cred.gid};
		c.deadline_ms = now_ms() + client_timeout_ms;
		clients.push_back(std::move(c));
	}
}

} /* namespace cgloopfs::control */
