#!/bin/bash
# tests/fetch-hostile.sh against a server that holds only stock deltas.
DF_HOSTILE_DELTA=stock exec bash "$(dirname "$0")/fetch-hostile.sh"
