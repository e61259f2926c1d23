#!/usr/bin/env bash
# A throwaway single-node Ceph radosgw (S3) on 127.0.0.1 for trying pytvix against S3 by hand;
# prints the endpoint, credentials and an objectstore+s3:// URL, and stops on Ctrl-C.
# The tests start their own (tests/servers/ceph.py). Needs: ceph-mon ceph-osd radosgw ceph-common
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
exec "$PY" -m tests.servers.ceph "$@"
