# Sourced by bench-fetch.sh: an emulated WAN link between the fetching
# tools and a static server (root only).
#
#   client (root namespace) -> delay-proxy.py on 127.0.0.1 (adds the RTT)
#     -> veth pair, tc tbf at the link rate in both directions
#     -> nginx in its own network namespace
#
# netem, the usual way to add delay, is missing from some kernels, hence
# the proxy; tbf shapes the bandwidth of the veth pair (the proxy's own
# connections carry the data through it).
#
# wan_up W ROOT: the namespace, veth pair, nginx serving ROOT and the
#   delay proxy; sets WAN_URL (http://127.0.0.1:PORT, ROOT's top) and
#   WAN_LOG (nginx's access log: "port uri status body-bytes").
# wan_link RATE RTT_MS: (re)shapes the link: RATE as tc writes it (8mbit,
#   500kbit) and a round-trip time; restarts the proxy with RTT_MS / 2 each
#   way.
# wan_down: removes all of it (also from an EXIT trap).
# rate_bps RATE: RATE in bit/s.

WAN_NS= WAN_DIR= WAN_PROXY_PID=

rate_bps () {
  local r=$1 n unit
  n=${r%%[a-zA-Z]*} unit=${r#"$n"}
  case $unit in
    bit | "") echo "$n" ;;
    kbit) echo $((n * 1000)) ;;
    mbit) echo $((n * 1000000)) ;;
    gbit) echo $((n * 1000000000)) ;;
    *) echo "unknown rate unit in $r" >&2; return 1 ;;
  esac
}

wan_up () {
  local w=$1 root=$2 net try
  command -v ip >/dev/null && command -v tc >/dev/null || { echo "wan: ip and tc (iproute2) are needed" >&2; return 1; }
  WAN_DIR=$w/wan
  mkdir -p "$WAN_DIR"
  WAN_NS=dfwan$$
  net=$((RANDOM % 200 + 20))
  ip netns add "$WAN_NS"
  ip link add "dfw$$c" type veth peer name "dfw$$s" netns "$WAN_NS"
  ip addr add "10.199.$net.1/24" dev "dfw$$c"
  ip link set "dfw$$c" up
  ip -n "$WAN_NS" addr add "10.199.$net.2/24" dev "dfw$$s"
  ip -n "$WAN_NS" link set "dfw$$s" up
  ip -n "$WAN_NS" link set lo up
  WAN_SERVER=10.199.$net.2
  cat >"$WAN_DIR/nginx.conf" <<CONF
daemon on;
worker_processes 2;
pid $WAN_DIR/nginx.pid;
error_log $WAN_DIR/error.log;
events { worker_connections 256; }
http {
  log_format bytes '\$server_port \$request_uri \$status \$body_bytes_sent';
  access_log $WAN_DIR/access.log bytes;
  client_body_temp_path $WAN_DIR/body; proxy_temp_path $WAN_DIR/proxy; fastcgi_temp_path $WAN_DIR/fastcgi;
  uwsgi_temp_path $WAN_DIR/uwsgi; scgi_temp_path $WAN_DIR/scgi;
  types { }
  default_type application/octet-stream;
  server { listen $WAN_SERVER:80; root $root; }
}
CONF
  ip netns exec "$WAN_NS" nginx -c "$WAN_DIR/nginx.conf" -p "$WAN_DIR" || { echo "wan: nginx did not start" >&2; return 1; }
  WAN_LOG=$WAN_DIR/access.log
  touch "$WAN_LOG"
}

wan_link () {
  local rate=$1 rtt=$2 dev burst
  # A burst of 1/100 s of the rate (at least 16 KiB), a queue of 200 ms.
  burst=$(($(rate_bps "$rate") / 800))
  [ "$burst" -lt 16384 ] && burst=16384
  tc qdisc replace dev "dfw$$c" root tbf rate "$rate" burst "$burst" latency 200ms
  ip netns exec "$WAN_NS" tc qdisc replace dev "dfw$$s" root tbf rate "$rate" burst "$burst" latency 200ms
  if [ -n "$WAN_PROXY_PID" ]; then kill "$WAN_PROXY_PID" 2>/dev/null; wait "$WAN_PROXY_PID" 2>/dev/null || true; fi
  rm -f "$WAN_DIR/proxy.port"
  python3 "$(dirname "${BASH_SOURCE[0]}")/delay-proxy.py" "$WAN_DIR/proxy.port" "$WAN_SERVER" 80 $((rtt / 2)) &
  WAN_PROXY_PID=$!
  for _ in $(seq 100); do [ -s "$WAN_DIR/proxy.port" ] && break; sleep 0.05; done
  [ -s "$WAN_DIR/proxy.port" ] || { echo "wan: the delay proxy did not start" >&2; return 1; }
  WAN_URL=http://127.0.0.1:$(cat "$WAN_DIR/proxy.port")
}

wan_down () {
  # Every step may find its part gone already; none may stop the rest.
  if [ -n "$WAN_PROXY_PID" ]; then kill "$WAN_PROXY_PID" 2>/dev/null || true; wait "$WAN_PROXY_PID" 2>/dev/null || true; fi
  WAN_PROXY_PID=
  if [ -n "$WAN_DIR" ] && [ -f "$WAN_DIR/nginx.pid" ]; then kill "$(cat "$WAN_DIR/nginx.pid")" 2>/dev/null || true; fi
  if [ -n "$WAN_NS" ]; then
    ip link del "dfw$$c" 2>/dev/null || true
    ip netns del "$WAN_NS" 2>/dev/null || true
  fi
  WAN_NS=
  return 0
}
