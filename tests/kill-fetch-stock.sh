#!/bin/bash
# tests/kill-fetch.sh against a server that holds only a stock delta.
DF_KILL_DELTA=stock exec bash "$(dirname "$0")/kill-fetch.sh"
