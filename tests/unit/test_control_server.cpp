/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * control/server: a ControlServer on a socket in a temporary directory,
 * talked to as cgloopctl would. Good requests get the handler's result;
 * malformed, oversized and unfinished ones get an error reply while the
 * server goes on serving; stop() is prompt and removes only its own socket.
 */
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "common/unique_fd.hpp"
#include "control/server.hpp"
#include "temp_dir.hpp"

using namespace cgloopfs;
using namespace cgloopfs::control;

namespace {

/* echo: the args and the peer's uid; refuse: a ControlError; boom: another exception. */
nlohmann::json handle(const Request &r, const Peer &p)
{
	if (r.command == "refuse")
		throw ControlError("refused on purpose");
	if (r.command == "boom")
		throw std::runtime_error("kaboom");
	return {{"args", r.args}, {"uid", p.uid}};
}

/* A server bound and started at `path`. */
void start(ControlServer &s)
{
	std::string why;
	REQUIRE_MESSAGE(s.bind_socket(&why) == 0, why);
	REQUIRE_MESSAGE(s.start(&why) == 0, why);
}

UniqueFd connect_to(const std::string &path)
{
	UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	REQUIRE(fd);
	auto addr = socket_address(path);
	REQUIRE(addr);
	REQUIRE(connect(fd.get(), reinterpret_cast<sockaddr *>(&*addr), sizeof(*addr)) == 0);
	return fd;
}

void send_all(int fd, std::string_view data)
{
	while (!data.empty()) {
		ssize_t w = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
		REQUIRE(w > 0);
		data.remove_prefix(static_cast<size_t>(w));
	}
}

/* The next reply line, parsed; nullopt at EOF or after `timeout_ms`. */
std::optional<nlohmann::json> read_reply(int fd, int timeout_ms = 10000)
{
	std::string line;
	char c;
	for (;;) {
		pollfd p{fd, POLLIN, 0};
		if (poll(&p, 1, timeout_ms) != 1)
			return std::nullopt;
		ssize_t n = recv(fd, &c, 1, 0);
		if (n <= 0)
			return std::nullopt;
		if (c == '\n')
			return nlohmann::json::parse(line);
		line += c;
	}
}

nlohmann::json ask(int fd, const std::string &command,
		   nlohmann::json args = nlohmann::json::object())
{
	send_all(fd, format_request(Request{command, std::move(args)}));
	auto reply = read_reply(fd);
	REQUIRE(reply);
	return *reply;
}

/* The error of a refusal reply (fails the test on an ok one). */
std::string error_of(const nlohmann::json &reply)
{
	CHECK(reply["ok"] == false);
	return reply.value("error", std::string());
}

} /* namespace */

TEST_CASE("a good request gets the handler's result, with the peer's credentials")
{
	TempDir dir("control-server");
	/* Its directory is made, 0700; the socket is 0600. */
	std::string path = dir.path + "/run/cgloopfs/ctl.sock";
	ControlServer server(path, getuid(), handle);
	start(server);
	struct stat st;
	REQUIRE(stat(path.c_str(), &st) == 0);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK((st.st_mode & 0777) == 0600);
	REQUIRE(stat((dir.path + "/run/cgloopfs").c_str(), &st) == 0);
	CHECK((st.st_mode & 0777) == 0700);

	UniqueFd c = connect_to(path);
	auto reply = ask(c.get(), "echo", {{"x", 1}});
	CHECK(reply["ok"] == true);
	CHECK(reply["result"]["args"] == nlohmann::json{{"x", 1}});
	CHECK(reply["result"]["uid"] == getuid());
	/* The connection serves the next request too. */
	CHECK(ask(c.get(), "echo")["ok"] == true);
	server.stop();
	CHECK(access(path.c_str(), F_OK) != 0);
}

TEST_CASE("malformed requests and handler errors get an error reply; serving goes on")
{
	TempDir dir("control-server");
	std::string path = dir.path + "/ctl.sock";
	ControlServer server(path, getuid(), handle);
	start(server);
	UniqueFd c = connect_to(path);

	send_all(c.get(), "this is not json\n");
	auto reply = read_reply(c.get());
	REQUIRE(reply);
	CHECK_FALSE(error_of(*reply).empty());
	send_all(c.get(), "{\"version\": 99, \"command\": \"echo\"}\n");
	reply = read_reply(c.get());
	REQUIRE(reply);
	CHECK_FALSE(error_of(*reply).empty());

	CHECK(error_of(ask(c.get(), "refuse")) == "refused on purpose");
	CHECK(error_of(ask(c.get(), "boom")) == "internal error: kaboom");
	/* The same connection still answers. */
	CHECK(ask(c.get(), "echo")["ok"] == true);
}

TEST_CASE("an oversized message gets an error reply; the server goes on serving")
{
	TempDir dir("control-server");
	std::string path = dir.path + "/ctl.sock";
	ControlServer server(path, getuid(), handle);
	start(server);
	{
		UniqueFd c = connect_to(path);
		send_all(c.get(), std::string(max_message + 1000, 'x'));
		auto reply = read_reply(c.get());
		REQUIRE(reply);
		CHECK(error_of(*reply) == "message too long");
		/* The rest of that connection is read away, even a valid request. */
		send_all(c.get(), "\n" + format_request(Request{"echo", {}}));
		CHECK_FALSE(read_reply(c.get(), 300));
	}
	UniqueFd c = connect_to(path);
	CHECK(ask(c.get(), "echo")["ok"] == true);
}

TEST_CASE("a message that never ends times out with an error reply")
{
	TempDir dir("control-server");
	std::string path = dir.path + "/ctl.sock";
	ControlServer server(path, getuid(), handle);
	start(server);
	UniqueFd slow = connect_to(path);
	send_all(slow.get(), "{\"version\": 1,");
	/* Others are served while it waits. */
	UniqueFd other = connect_to(path);
	CHECK(ask(other.get(), "echo")["ok"] == true);

	auto t0 = std::chrono::steady_clock::now();
	auto reply = read_reply(slow.get(), ControlServer::client_timeout_ms + 5000);
	auto waited = std::chrono::steady_clock::now() - t0;
	REQUIRE(reply);
	CHECK(error_of(*reply) == "timed out waiting for the end of the message");
	CHECK(waited < std::chrono::milliseconds(ControlServer::client_timeout_ms + 3000));
	/* Then the connection is closed. */
	CHECK_FALSE(read_reply(slow.get(), 2000));
}

TEST_CASE("stop() returns promptly with clients connected, and removes its socket")
{
	TempDir dir("control-server");
	std::string path = dir.path + "/ctl.sock";
	ControlServer server(path, getuid(), handle);
	start(server);
	UniqueFd idle = connect_to(path);
	UniqueFd partial = connect_to(path);
	send_all(partial.get(), "{");
	auto t0 = std::chrono::steady_clock::now();
	server.stop();
	CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1));
	CHECK(access(path.c_str(), F_OK) != 0);
	/* The connections were closed. */
	CHECK_FALSE(read_reply(idle.get(), 2000));
	server.stop(); /* twice is harmless */
}

TEST_CASE("bind_socket: a live server's socket is refused, a stale one replaced")
{
	TempDir dir("control-server");
	std::string path = dir.path + "/ctl.sock";
	ControlServer live(path, getuid(), handle);
	start(live);
	ControlServer second(path, getuid(), handle);
	std::string why;
	CHECK(second.bind_socket(&why) == -EADDRINUSE);
	CHECK(why.find("another cgloopfs is serving it") != std::string::npos);
	live.stop();

	/* A socket file nobody listens on any more (its daemon was killed). */
	{
		UniqueFd dead(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		auto addr = socket_address(path);
		REQUIRE(bind(dead.get(), reinterpret_cast<sockaddr *>(&*addr), sizeof(*addr)) == 0);
	}
	ControlServer next(path, getuid(), handle);
	start(next);
	UniqueFd c = connect_to(path);
	CHECK(ask(c.get(), "echo")["ok"] == true);

	ControlServer too_long(dir.path + "/" + std::string(200, 'x'), getuid(), handle);
	CHECK(too_long.bind_socket(&why) == -ENAMETOOLONG);
}

TEST_CASE("stop() leaves alone a socket another server has bound at its path since")
{
	TempDir dir("control-server");
	std::string path = dir.path + "/ctl.sock";
	ControlServer first(path, getuid(), handle);
	start(first);
	/* Someone removes the first server's socket; a second one binds the path. */
	REQUIRE(unlink(path.c_str()) == 0);
	ControlServer second(path, getuid(), handle);
	start(second);
	first.stop();
	REQUIRE(access(path.c_str(), F_OK) == 0);
	UniqueFd c = connect_to(path);
	CHECK(ask(c.get(), "echo")["ok"] == true);
	second.stop();
	CHECK(access(path.c_str(), F_OK) != 0);
}
