/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ControlServer: the mount's control socket. One thread polls the listening
 * socket and up to max_clients connections; each line received is a
 * request, answered by the handler. Only root and the mounting user get in
 * (SO_PEERCRED). Malformed, oversized or slow messages get an error reply
 * and the connection is closed; the server keeps serving.
 * start()/stop() from one thread; the handler runs on the server thread.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CONTROL
#error "control/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/types.h>

#include "common/unique_fd.hpp"
#include "protocol.hpp"

namespace cgloopfs::control {

struct Peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

class ControlServer
{
public:
	/* Returns the result, or throws ControlError with the reply's message. */
	using Handler = std::function<nlohmann::json(const Request &, const Peer &)>;

	static constexpr size_t max_clients = 16;
	static constexpr int client_timeout_ms = 5000;

	ControlServer(std::string path, uid_t owner, Handler handler);
	~ControlServer();
	ControlServer(const ControlServer &) = delete;
	ControlServer &operator=(const ControlServer &) = delete;

	/*
	 * Create the socket (its directory 0700 if missing, the socket 0600),
	 * replacing a stale one; refuse when a live daemon answers on it.
	 * Returns 0 or -errno with *ret_why set. No thread yet (safe before fork).
	 */
	int bind_socket(std::string *ret_why);
	/* Start serving on a thread; returns 0 or -errno with *ret_why set. */
	int start(std::string *ret_why);
	/*
	 * Stop serving and remove the socket, if the path still names the one
	 * bind_socket() made (another daemon may have bound it since).
	 */
	void stop();
	const std::string &path() const { return path_; }

private:
	struct Client;

	int remove_stale_socket(const sockaddr_un &addr, std::string *ret_why);
	void loop(std::stop_token stop);
	int poll_set(const std::vector<Client> &clients, std::vector<pollfd> &ret_pfds) const;
	void serve_client(Client &c, short revents, int64_t now);
	void receive(Client &c, int64_t now);
	void answer(Client &c, std::string_view line);
	void drop_clients(std::vector<Client> &clients, int64_t now);
	void accept_clients(std::vector<Client> &clients);
	void remove_socket();

	std::string path_;
	uid_t owner_;
	Handler handler_;
	UniqueFd listen_fd_;
	UniqueFd wake_fd_;
	std::jthread thread_;
	bool bound_ = false;   /* the socket file at path_ is ours: */
	dev_t socket_dev_ = 0; /* its st_dev and st_ino, when bound_ */
	ino_t socket_ino_ = 0;
};

} /* namespace cgloopfs::control */
