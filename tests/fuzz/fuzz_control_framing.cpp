/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer harness: the control server's line framing (control::LineReader)
 * against the plainest possible model of it. The input chooses the line
 * limit and how the byte stream is cut into recv() chunks; both must yield
 * the same lines, overflows and pending state after every chunk. After an
 * overflow both are cleared and go on (the server stops reading instead).
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "control/protocol.hpp"

using cgloopfs::control::LineReader;
using cgloopfs::control::max_message;

namespace {

[[noreturn]] void broken(const char *what, size_t chunk)
{
	std::fprintf(stderr, "fuzz_control_framing: %s after chunk %zu\n", what, chunk);
	std::abort();
}

/* The model: find, erase, compare sizes. */
struct Model {
	size_t limit;
	std::string in;

	void feed(const std::string &data, std::vector<std::string> &events)
	{
		in += data;
		size_t nl;
		while ((nl = in.find('\n')) != std::string::npos) {
			events.push_back("line:" + in.substr(0, nl));
			in.erase(0, nl + 1);
		}
		if (in.size() >= limit) {
			events.emplace_back("overflow");
			in.clear();
		}
	}
};

} /* namespace */

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzedDataProvider fdp(data, size);
	size_t limit = fdp.ConsumeBool() ? max_message : fdp.ConsumeIntegralInRange<size_t>(1, 300);
	LineReader reader(limit);
	Model model{limit, {}};
	std::vector<std::string> got, want;

	for (size_t chunk = 0; fdp.remaining_bytes() > 0; chunk++) {
		std::string bytes =
			fdp.ConsumeBytesAsString(fdp.ConsumeIntegralInRange<size_t>(0, 512));
		reader.append(bytes);
		while (auto line = reader.next_line())
			got.push_back("line:" + *line);
		if (reader.overflow()) {
			got.emplace_back("overflow");
			reader.clear();
		}
		model.feed(bytes, want);
		if (got != want)
			broken("different lines or overflows", chunk);
		if (reader.pending() != !model.in.empty())
			broken("different pending state", chunk);
		if (reader.overflow())
			broken("still overflowing after clear", chunk);
	}
	return 0;
}
