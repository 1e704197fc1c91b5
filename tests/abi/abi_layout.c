/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "abi_layout.h"
int main(void) {
  return 0;
}
