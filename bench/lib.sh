# Shared pieces of the bench/ harnesses; source it, don't run it.

# umbra_config PROXY_PORT ADMIN_PORT STORE_URL API_PORT SHADOW_PORT SHADOW [STORE_EXTRA]
# prints the umbra config every harness uses: one route `api` over PathPrefix(`/`) to the
# service on API_PORT, a service `shadow` on SHADOW_PORT, 2 workers, no access log.
# SHADOW is the route's shadow inline table (`{ service = "shadow", ... }`), or "" for none;
# STORE_EXTRA is more lines for [store] (e.g. `keep_same = 1.0`).
umbra_config() {
  cat <<CONF
[proxy]
listen = "127.0.0.1:$1"
workers = 2
[admin]
listen = "127.0.0.1:$2"
[store]
url = "$3"
${7:-}
[log]
access = false
level = "warn"
[services.api]
servers = ["http://127.0.0.1:$4"]
[services.shadow]
servers = ["http://127.0.0.1:$5"]
[[routes]]
name = "api"
rule = "PathPrefix(\`/\`)"
service = "api"
CONF
  if [[ -n $6 ]]; then echo "shadow = $6"; fi
}

# nginx config pieces; $1 = the instance's prefix dir.
nginx_common() {  # $1 = prefix dir
  cat <<CONF
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 8192; }
CONF
}
nginx_http_common() {  # $1 = prefix dir
  cat <<CONF
  access_log off;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path $1/tmp_body;
  proxy_temp_path $1/tmp_proxy;
  fastcgi_temp_path $1/tmp_fcgi;
  uwsgi_temp_path $1/tmp_uwsgi;
  scgi_temp_path $1/tmp_scgi;
CONF
}

# start_fast_upstream NAME PORT -> echoes pid: an nginx (1 worker) under $WORK/NAME that
# answers every GET with a small JSON body.
start_fast_upstream() {
  local dir="$WORK/$1"
  mkdir -p "$dir"
  { nginx_common "$dir"
    echo "worker_processes 1;"
    echo "http {"
    nginx_http_common "$dir"
    cat <<CONF
  server {
    listen 127.0.0.1:$2;
    location / {
      default_type application/json;
      return 200 '{"ok":true,"items":[1,2,3]}';
    }
  }
}
CONF
  } >"$dir/nginx.conf"
  nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  echo $!
}

# bench_prelude NAME WORK [ROUNDS] [UMBRA_BINARY]: the side-by-side harnesses' set-up. Sets
# ROUNDS (default 5) and UMBRA (default the release build), checks nginx, wrk, curl and the
# binary, empties WORK, and kills the processes listed in `pids` on exit.
bench_prelude() {
  local name=$1 t
  ROUNDS=${3:-5}
  UMBRA=${4:-${CARGO_TARGET_DIR:-$ROOT/target}/release/umbra}
  for t in nginx wrk curl; do command -v "$t" >/dev/null || { echo "$name: $t not installed" >&2; exit 1; }; done
  [[ -x $UMBRA ]] || { echo "$name: no umbra at $UMBRA (cargo build --release -p umbra)" >&2; exit 1; }
  rm -rf "$2"; mkdir -p "$2"
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null' EXIT
}
