# The request both bench scripts send, per ENDPOINT (forward-auth or
# ext-authz): sets `path` and `headers` for the API key in `$key`.
# Sourced by http_bench.sh and callgrind_bench.sh.
case "${ENDPOINT:-forward-auth}" in
  forward-auth)
    path=/v1/forward-auth
    headers=(-H "x-api-key: $key" -H "x-forwarded-method: GET" -H "x-forwarded-uri: /v1/charges/ch_1"
             -H "x-forwarded-host: api.example.com" -H "x-forwarded-proto: https"
             -H "x-forwarded-for: 198.51.100.7") ;;
  ext-authz)
    path=/v1/ext-authz/v1/charges/ch_1
    headers=(-H "x-api-key: $key" -H "Host: api.example.com" -H "x-forwarded-for: 198.51.100.7") ;;
  *) echo "ENDPOINT must be forward-auth or ext-authz" >&2; exit 1 ;;
esac
