#!/bin/bash
# tests/kill-fetch.sh against a server that holds only a stock delta. The
# kill paths are the same code as the native delta's (the part store, the
# session's staging); fewer kills here keep CI within its time.
DF_KILL_DELTA=stock DF_KILLS=${DF_KILLS:-20} DF_KILLS_AT_ONCE=${DF_KILLS_AT_ONCE:-10} \
  exec bash "$(dirname "$0")/kill-fetch.sh"
