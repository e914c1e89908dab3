#!/bin/sh
# What `make bench` needs: the test packages plus Nchan (the comparison) and gnuplot (the
# chart); tests/deps.sh keeps the one list.
exec sh "$(dirname "$0")/../tests/deps.sh" bench
