#!/usr/bin/env bash
# Fails on any cppcheck warning in src/.
cd "$1" || exit 1
exec cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	--inline-suppr -D_GNU_SOURCE -DVIREO_VERSION='"test"' -I src \
	--suppress=missingIncludeSystem src
