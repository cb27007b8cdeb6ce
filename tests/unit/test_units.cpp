/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * config/units: parse_size, parse_uint, parse_mode, format_size.
 */
#include <cstdint>
#include <initializer_list>
#include <string>

#include <doctest/doctest.h>

#include "config/units.hpp"

using cgloopfs::config::check_mode;
using cgloopfs::config::format_size;
using cgloopfs::config::parse_mode;
using cgloopfs::config::parse_size;
using cgloopfs::config::parse_uint;

namespace {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = KiB * KiB;
constexpr uint64_t GiB = MiB * KiB;
constexpr uint64_t TiB = GiB * KiB;
constexpr uint64_t PiB = TiB * KiB;

/* parse_size must refuse `text` and give a reason. */
void check_size_refused(const std::string &text)
{
	CAPTURE(text);
	std::string why;
	CHECK_FALSE(parse_size(text, &why).has_value());
	CHECK_FALSE(why.empty());
	/* Callers that do not want the reason may pass nothing. */
	CHECK_FALSE(parse_size(text).has_value());
}

} /* namespace */

TEST_CASE("parse_size: plain numbers and bytes")
{
	CHECK(parse_size("0") == 0u);
	CHECK(parse_size("1") == 1u);
	CHECK(parse_size("4096") == 4096u);
	CHECK(parse_size("0004096") == 4096u);
	CHECK(parse_size("512B") == 512u);
	CHECK(parse_size("0B") == 0u);
	CHECK(parse_size("18446744073709551615") == UINT64_MAX);
	CHECK(parse_size("18446744073709551615B") == UINT64_MAX);
}

TEST_CASE("parse_size: binary suffixes K M G T P and KiB..PiB")
{
	CHECK(parse_size("1K") == KiB);
	CHECK(parse_size("1KiB") == KiB);
	CHECK(parse_size("512K") == 512 * KiB);
	CHECK(parse_size("3M") == 3 * MiB);
	CHECK(parse_size("3MiB") == 3 * MiB);
	CHECK(parse_size("2G") == 2 * GiB);
	CHECK(parse_size("2GiB") == 2 * GiB);
	CHECK(parse_size("5T") == 5 * TiB);
	CHECK(parse_size("5TiB") == 5 * TiB);
	CHECK(parse_size("7P") == 7 * PiB);
	CHECK(parse_size("7PiB") == 7 * PiB);
	CHECK(parse_size("0K") == 0u);
	CHECK(parse_size("0PiB") == 0u);
}

TEST_CASE("parse_size: decimal suffixes KB..PB")
{
	CHECK(parse_size("1KB") == 1000u);
	CHECK(parse_size("1MB") == 1000u * 1000);
	CHECK(parse_size("1GB") == 1000ull * 1000 * 1000);
	CHECK(parse_size("1TB") == 1000ull * 1000 * 1000 * 1000);
	CHECK(parse_size("1PB") == 1000ull * 1000 * 1000 * 1000 * 1000);
	CHECK(parse_size("18PB") == 18ull * 1000 * 1000 * 1000 * 1000 * 1000);
}

TEST_CASE("parse_size: the largest values of each suffix, and one more")
{
	/* 16383 PiB + ... fits; 16384 PiB is exactly 2^64. */
	CHECK(parse_size("16383PiB") == 16383 * PiB);
	CHECK(parse_size("16383P") == 16383 * PiB);
	check_size_refused("16384PiB");
	check_size_refused("16384P");
	CHECK(parse_size("16777215TiB") == 16777215 * TiB);
	check_size_refused("16777216TiB");
	CHECK(parse_size("17179869183GiB") == 17179869183 * GiB);
	check_size_refused("17179869184GiB");
	CHECK(parse_size("18014398509481983KiB") == 18014398509481983 * KiB);
	check_size_refused("18014398509481984KiB");
	/* 18446744073709551615 / 10^15 = 18446.7...: 18446 PB fits, 18447 PB does not. */
	CHECK(parse_size("18446PB") == 18446ull * 1000 * 1000 * 1000 * 1000 * 1000);
	check_size_refused("18447PB");
}

TEST_CASE("parse_size: overflow at exactly 2^64")
{
	std::string why;
	CHECK_FALSE(parse_size("18446744073709551616", &why).has_value());
	CHECK(why.find("large") != std::string::npos);

	why.clear();
	CHECK_FALSE(parse_size("16384PiB", &why).has_value());
	CHECK(why.find("large") != std::string::npos);

	check_size_refused("18446744073709551616B");
	check_size_refused("99999999999999999999999999");
	check_size_refused("99999999999999999999999999K");
}

TEST_CASE("parse_size: malformed values")
{
	check_size_refused("");
	check_size_refused("-1");
	check_size_refused("-0");
	check_size_refused("+1");
	check_size_refused(" 1");
	check_size_refused("  4096");
	check_size_refused("1 ");
	check_size_refused("1 K");
	check_size_refused("K");
	check_size_refused("KiB");
	check_size_refused("abc");
	check_size_refused("1.5G");
	check_size_refused("1e3");
	check_size_refused("0x10");
	check_size_refused("1X");
	check_size_refused("1KiBB");
	check_size_refused("1Ki");
	check_size_refused("1iB");
	check_size_refused("1EiB");
	check_size_refused(std::string("1\0K", 3));

	std::string why;
	CHECK_FALSE(parse_size("", &why).has_value());
	CHECK(why.find("empty") != std::string::npos);

	why.clear();
	CHECK_FALSE(parse_size("12Q", &why).has_value());
	CHECK(why.find("\"Q\"") != std::string::npos);
}

TEST_CASE("parse_size: ret_why is left alone on success")
{
	std::string why = "untouched";
	CHECK(parse_size("1M", &why) == MiB);
	CHECK(why == "untouched");
}

TEST_CASE("parse_uint: range")
{
	CHECK(parse_uint("0", 0, 10) == 0u);
	CHECK(parse_uint("10", 0, 10) == 10u);
	CHECK(parse_uint("1", 1, 1) == 1u);
	CHECK(parse_uint("007", 1, 10) == 7u);
	CHECK(parse_uint("18446744073709551615", 0, UINT64_MAX) == UINT64_MAX);

	std::string why;
	CHECK_FALSE(parse_uint("11", 0, 10, &why).has_value());
	CHECK(why.find("0..10") != std::string::npos);
	why.clear();
	CHECK_FALSE(parse_uint("0", 1, 10, &why).has_value());
	CHECK(why.find("1..10") != std::string::npos);
	CHECK_FALSE(parse_uint("86401", 1, 86400).has_value());
	CHECK(parse_uint("86400", 1, 86400) == 86400u);
}

TEST_CASE("parse_uint: malformed values and overflow")
{
	for (const char *bad : {"", "-1", "+1", " 1", "1 ", "1K", "abc", "1.0", "0x1", "1e2"}) {
		CAPTURE(bad);
		std::string why;
		CHECK_FALSE(parse_uint(bad, 0, UINT64_MAX, &why).has_value());
		CHECK_FALSE(why.empty());
	}
	std::string why;
	CHECK_FALSE(parse_uint("", 0, 10, &why).has_value());
	CHECK(why.find("empty") != std::string::npos);

	/* 2^64 and beyond overflow: refused, whatever the bounds. */
	CHECK_FALSE(parse_uint("18446744073709551616", 0, UINT64_MAX).has_value());
	CHECK_FALSE(parse_uint("99999999999999999999999", 0, UINT64_MAX).has_value());
}

/*
 * Regression (fixed; was: src/config/units.cpp, parse_digits() and parse_uint()): on
 * overflow parse_digits() returns false without setting *ret_len, so
 * parse_uint() sees len == 0 and says "not a number"; its "number too large"
 * branch is unreachable. The user of "-o idle_timeout=99999999999999999999"
 * is told the value is not a number.
 */
TEST_CASE("parse_uint: overflow is reported as too large")
{
	std::string why;
	CHECK_FALSE(parse_uint("99999999999999999999", 0, UINT64_MAX, &why).has_value());
	CHECK(why.find("large") != std::string::npos);
}

TEST_CASE("parse_mode: read and write bits only")
{
	CHECK(parse_mode("0660") == 0660u);
	CHECK(parse_mode("660") == 0660u);
	CHECK(parse_mode("0666") == 0666u);
	CHECK(parse_mode("0600") == 0600u);
	CHECK(parse_mode("0440") == 0440u);
	CHECK(parse_mode("0") == 0u);
	CHECK(parse_mode("0000") == 0u);
	CHECK(parse_mode("00644") == 0644u);

	for (const char *bad : {"0755", "0700", "0001", "0111", "4660", "2660", "1660", "7777", "9",
				"0668", "", "066x", "-660", " 660", "0o660", "000660", "0x1b4"}) {
		CAPTURE(bad);
		std::string why;
		CHECK_FALSE(parse_mode(bad, &why).has_value());
		CHECK_FALSE(why.empty());
	}

	std::string why;
	CHECK_FALSE(parse_mode("0755", &why).has_value());
	CHECK(why.find("0755") != std::string::npos);
}

TEST_CASE("format_size: exact units, else bytes")
{
	CHECK(format_size(0) == "0");
	CHECK(format_size(1) == "1");
	CHECK(format_size(512) == "512");
	CHECK(format_size(1000) == "1000");
	CHECK(format_size(1023) == "1023");
	CHECK(format_size(KiB) == "1KiB");
	CHECK(format_size(1536) == "1536");
	CHECK(format_size(3 * KiB) == "3KiB");
	CHECK(format_size(MiB) == "1MiB");
	CHECK(format_size(512 * MiB) == "512MiB");
	CHECK(format_size(MiB + KiB) == "1025KiB");
	CHECK(format_size(GiB) == "1GiB");
	CHECK(format_size(TiB) == "1TiB");
	CHECK(format_size(3 * TiB) == "3TiB");
	CHECK(format_size(PiB) == "1024TiB");
	CHECK(format_size(UINT64_MAX) == "18446744073709551615");
}

TEST_CASE("format_size output parses back to the same number")
{
	for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{511}, KiB, 7 * KiB + 1, MiB, 5 * GiB,
			   GiB + MiB, 9 * TiB, PiB, 16383 * PiB, UINT64_MAX, UINT64_MAX - 1}) {
		CAPTURE(v);
		CHECK(parse_size(format_size(v)) == v);
	}
}

TEST_CASE("check_mode: the one check of a mode's bits, parse_mode's too")
{
	CHECK_FALSE(check_mode(0660).has_value());
	CHECK_FALSE(check_mode(0).has_value());
	CHECK(check_mode(0755).value_or("").find("0755 has bits other than read and write") == 0);
	CHECK(check_mode(0100644).has_value());
	std::string why;
	CHECK_FALSE(parse_mode("4660", &why).has_value());
	CHECK(why == check_mode(04660).value_or(""));
}
