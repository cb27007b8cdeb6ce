/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * control/protocol: parse_request (what it accepts and how it refuses),
 * replies, and the server's line framing (LineReader).
 */
#include <string>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "control/json_text.hpp"
#include "control/protocol.hpp"

using namespace cgloopfs::control;

namespace {

/* The refusal of `line`; fails the test when it is accepted. */
std::string refusal(const std::string &line)
{
	auto r = parse_request(line);
	if (auto *why = std::get_if<std::string>(&r))
		return *why;
	FAIL_CHECK("accepted: " << line);
	return "";
}

std::string nested(size_t depth)
{
	return R"({"version":1,"command":"x","args":{"a":)" + std::string(depth - 2, '[') +
	       std::string(depth - 2, ']') + "}}";
}

/* Feed `chunks` to a reader with `limit`; lines as they come, "!" for an overflow. */
std::vector<std::string> frame(const std::vector<std::string> &chunks, size_t limit)
{
	LineReader reader(limit);
	std::vector<std::string> out;
	for (const auto &c : chunks) {
		reader.append(c);
		while (auto line = reader.next_line())
			out.push_back(*line);
		if (reader.overflow()) {
			out.emplace_back("!");
			reader.clear();
		}
	}
	return out;
}

} /* namespace */

TEST_CASE("parse_request: a request and its round trip")
{
	auto r = parse_request(R"({"version": 1, "command": "attach", "args": {"path": "/a"}})");
	REQUIRE(std::holds_alternative<Request>(r));
	const auto &req = std::get<Request>(r);
	CHECK(req.command == "attach");
	CHECK(req.args["path"] == "/a");
	std::string line = format_request(req);
	CHECK(line.back() == '\n');
	line.pop_back();
	auto again = parse_request(line);
	REQUIRE(std::holds_alternative<Request>(again));
	CHECK(std::get<Request>(again).args == req.args);
	/* No args: an empty object. */
	r = parse_request(R"({"version":1,"command":"status"})");
	REQUIRE(std::holds_alternative<Request>(r));
	CHECK(std::get<Request>(r).args.is_object());
}

TEST_CASE("parse_request: refusals")
{
	CHECK(refusal("") == "malformed message: not JSON");
	CHECK(refusal("[1]") == "malformed message: not a JSON object");
	CHECK(refusal(R"({"command":"x"})") == "malformed message: no version");
	CHECK(refusal(R"({"version":"1","command":"x"})") == "malformed message: no version");
	CHECK(refusal(R"({"version":1,"command":""})") == "malformed message: no command");
	CHECK(refusal(R"({"version":1,"command":"x","args":[]})") ==
	      "malformed message: args must be an object");
	CHECK(refusal(std::string(max_message, ' ')) == "message too long");
	/* The version as it was sent, not wrapped to a signed number. */
	CHECK(refusal(R"({"version":18446744073709551615,"command":"x"})") ==
	      "unsupported protocol version 18446744073709551615 (this daemon speaks 1)");
	CHECK(refusal(R"({"version":2,"command":"x"})").find("version 2 ") != std::string::npos);
}

/*
 * Regression (fixed; found by tests/fuzz/fuzz_control_request): a request
 * nested 30000 deep, within max_message, overflowed the stack when its args
 * were copied (the ASan build's control thread crashed).
 */
TEST_CASE("parse_request: nesting is bounded")
{
	CHECK(std::holds_alternative<Request>(parse_request(nested(max_nesting))));
	CHECK(refusal(nested(max_nesting + 1)) == "malformed message: nested more than 32 deep");
	CHECK(refusal(nested(30000)) == "malformed message: nested more than 32 deep");
	/* Brackets in strings do not count, escaped quotes do not end them. */
	std::string in_strings = R"({"version":1,"command":"[[[[","args":{"a":"\"[[[[)" +
				 std::string(100, '{') + R"("}})";
	CHECK(std::holds_alternative<Request>(parse_request(in_strings)));
}

TEST_CASE("replies are one line of JSON, whatever bytes they carry, exactly")
{
	for (std::string text : {std::string("plain"), std::string("line\nbreak"),
				 std::string("\xff\xfe invalid UTF-8"), std::string(1, '\0')}) {
		for (const std::string &reply : {error_reply(text), ok_reply(text)}) {
			CAPTURE(reply);
			CHECK(reply.back() == '\n');
			CHECK(reply.find('\n') == reply.size() - 1);
			auto j = parse_json(reply);
			REQUIRE_FALSE(j.is_discarded());
			CHECK(j.value(j["ok"].get<bool>() ? "result" : "error", "") == text);
		}
	}
	/* Invalid UTF-8 goes as PEP 383 lone surrogates, one per byte. */
	CHECK(error_reply("\xff\xfe") == "{\"error\":\"\\udcff\\udcfe\",\"ok\":false}\n");
}

TEST_CASE("requests carry any bytes too: a path with invalid UTF-8 and controls")
{
	std::string path = "/srv/a\tb\x1b[2J\\c\xc3\x28\xe2\x82";
	std::string line = format_request({"attach", {{"path", path}}});
	line.pop_back();
	auto r = parse_request(line);
	REQUIRE(std::holds_alternative<Request>(r));
	CHECK(std::get<Request>(r).args["path"] == path);
}

TEST_CASE("parse_json: strings exactly, the structure as nlohmann::json reads it")
{
	auto j = parse_json(
		R"({"b":["x\u0041\ud83d\ude00\udc80",1,2.5,null,true],"a":{"k\"":"\/"}})");
	REQUIRE_FALSE(j.is_discarded());
	CHECK(j["b"][0] == std::string("xA\xf0\x9f\x98\x80\x80"));
	CHECK(j["b"][2] == 2.5);
	CHECK(j["a"]["k\""] == "/");
	/* Duplicate keys: the last wins, as in nlohmann::json. */
	auto d = parse_json(
		R"({"k":1,"a":0,"b":0,"c":0,"d":0,"e":0,"f":0,"g":0,"h":0,"i":0,"k":2})");
	CHECK(d["k"] == 2);
	for (const char *bad :
	     {R"({"a":"\ud800"})", R"({"a":"\udc7f"})", R"({"a":"\ude00"})", R"({"a":"x)",
	      "{\"a\":\"\t\"}", R"({"a":"\q"})", R"({"a":"\u12"})", R"({"a" "b"})", R"(["a",])"})
		CHECK_MESSAGE(parse_json(bad).is_discarded(), bad);
	/* dump_json writes what nlohmann::json writes, for valid text. */
	nlohmann::json v = {{"a", {1, 2, "x"}},
			    {"b", nlohmann::json::object()},
			    {"c", nlohmann::json::array()},
			    {"d", "\u00e9\t"}};
	CHECK(dump_json(v) == v.dump());
	CHECK(dump_json(v, 2) == v.dump(2));
	CHECK(parse_json(dump_json(v, 2)) == v);
}

TEST_CASE("LineReader: lines across chunks, several in one")
{
	CHECK(frame({"ab", "c\nd", "e\n\nf\ng", "\n"}, 100) ==
	      std::vector<std::string>{"abc", "de", "", "f", "g"});
	LineReader r(100);
	CHECK_FALSE(r.pending());
	r.append("half");
	CHECK_FALSE(r.next_line());
	CHECK(r.pending());
	r.append(" a line\nnext");
	CHECK(r.next_line() == "half a line");
	CHECK_FALSE(r.next_line());
	CHECK(r.pending());
	r.clear();
	CHECK_FALSE(r.pending());
	r.append("\r\n");
	CHECK(r.next_line() == "\r");
}

TEST_CASE("LineReader: an unfinished line at the limit overflows")
{
	/* 4 bytes without a newline reach a limit of 4; "abc\n" is a line. */
	CHECK(frame({"abc\n", "abcd"}, 4) == std::vector<std::string>{"abc", "!"});
	CHECK(frame({"ab", "cd", "ef\n"}, 4) == std::vector<std::string>{"!", "ef"});
	/* A long line that arrives whole, newline included, is a line (parse_request refuses it). */
	CHECK(frame({"abcdefgh\n"}, 4) == std::vector<std::string>{"abcdefgh"});
	LineReader big;
	big.append(std::string(max_message - 1, 'x'));
	CHECK_FALSE(big.next_line());
	CHECK_FALSE(big.overflow());
	big.append("x");
	CHECK(big.overflow());
}

TEST_CASE("LineReader: many short lines in one chunk")
{
	std::string chunk;
	for (int i = 0; i < 10000; i++)
		chunk += std::to_string(i) + "\n";
	LineReader r;
	r.append(chunk);
	int n = 0;
	while (auto line = r.next_line())
		CHECK(*line == std::to_string(n++));
	CHECK(n == 10000);
	CHECK_FALSE(r.pending());
}
