// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Boost.Beast as every kernel file that uses it must see it: inline code
// compiled differently in two translation units breaks the one-definition
// rule, so the configuration lives here and nowhere else.
//
// Beast's string_view is std::string_view.
#define BOOST_BEAST_USE_STD_STRING_VIEW
#include <boost/beast/core.hpp>
// Beast before 1.86 asserts on a legal split of a chunked body's last chunk
// ("0\r\n", then "\r"), so any client could abort a build with assertions;
// the code after the assertion handles it (boostorg/beast#2861). The request
// parser is compiled without Boost assertions, as in a release build.
#include <boost/version.hpp>
#if BOOST_VERSION < 108600
#define BOOST_DISABLE_ASSERTS
#include <boost/beast/http/basic_parser.hpp>
#undef BOOST_DISABLE_ASSERTS
#include <boost/assert.hpp>
#endif
#include <boost/beast/http.hpp>
