#!/usr/bin/env bash
# Fails when clang-format (with the repository's .clang-format) would change any C file.
cd "$1" || exit 1
find src tests/unit -name '*.[ch]' -print0 | xargs -0 clang-format --dry-run -Werror
