// SPDX-License-Identifier: GPL-3.0-or-later
#include "abi_layout.h"

#include <backbone/sdk.hpp>

static_assert(sizeof(backbone::sdk::Host) == 2 * sizeof(void*));
int main() {
  return 0;
}
