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
