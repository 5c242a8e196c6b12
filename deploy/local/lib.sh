# Shared helpers of deploy/local scripts. Sourced, not executed.
# Installs only what is missing, quietly; fails with a clear message when something cannot be had.

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

say() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

_apt_updated=0
# ensure_packages PKG... : installs the Debian packages that are not installed yet.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing Debian packages: ${missing[*]}; run as root or install them: apt-get install -y ${missing[*]}"
    sudo="sudo -n"
  fi
  say "installing ${missing[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  if [ $_apt_updated -eq 0 ]; then
    $sudo apt-get update -qq >/dev/null || die "apt-get update failed; cannot install ${missing[*]}"
    _apt_updated=1
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "could not install ${missing[*]} with apt-get"
}

ensure_dotnet() {
  command -v dotnet >/dev/null 2>&1 || die "the .NET SDK 10 is required (dotnet not on PATH); see https://learn.microsoft.com/dotnet/core/install/linux-debian"
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
}

# The CLI assembly built by build_cli.
cli_dll() { printf '%s/engine/Streaming.Host/bin/Release/net10.0/Streaming.dll' "$(repo_root)"; }

# ensure_console_assets: installs the web console's front-end packages (engine/Streaming.Host/console: Apache ECharts)
# exactly as package-lock.json pins them, with `npm ci` (no resolution, no lock-file change; the npm cache first).
# Skipped when node_modules already holds that lock file's install. Installs Debian's nodejs and npm if npm is missing.
ensure_console_assets() {
  local dir want stamp log
  dir="$(repo_root)/engine/Streaming.Host/console"
  stamp="$dir/node_modules/.installed-lock.sha256"
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$dir/node_modules/echarts/dist/echarts.min.js" ]; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm
  say "installing the console's npm packages from package-lock.json (npm ci) ..."
  log=$(mktemp)
  if ! (cd "$dir" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts --loglevel=error) >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    die "npm ci failed in $dir: the console's chart library (echarts) cannot be installed"
  fi
  rm -f "$log"
  printf '%s\n' "$want" >"$stamp"
}

# build_cli: builds the CLI (Release) when any source is newer than the last build.
build_cli() {
  local root dll stamp
  root=$(repo_root)
  dll=$(cli_dll)
  ensure_console_assets
  if [ -f "$dll" ] && [ -z "$(find "$root/engine" "$root/connectors" "$root"/Directory.*.props "$root/global.json" \
        \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' -o -name '*.json' -o -name '*.yaml' -o -name '*.js' -o -name '*.css' \) \
        -not -path '*/bin/*' -not -path '*/obj/*' -not -path '*/node_modules/*' -newer "$dll" -print -quit 2>/dev/null)" ]; then
    return 0
  fi
  say "building streaming (Release) ..."
  local log
  log=$(mktemp)
  if ! dotnet build "$root/engine/Streaming.Host/Streaming.Host.csproj" -c Release -nologo -v q >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    die "build failed"
  fi
  rm -f "$log"
  touch "$dll"
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  local port i
  for i in $(seq 1 200); do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s' "$port"
      return 0
    fi
  done
  die "no free loopback port found"
}

# wait_for_port PORT SECONDS NAME
wait_for_port() {
  local port=$1 seconds=$2 name=$3 deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "$name did not listen on 127.0.0.1:$port within ${seconds}s"
    sleep 0.2
  done
}

default_data_dir() {
  local root
  root=$(repo_root)
  if [ -z "${STREAMING_DATA_DIR:-}" ] && [ -f "$root/../shared/data/online_retail_2010_2011.csv.gz" ]; then
    STREAMING_DATA_DIR=$(cd "$root/../shared/data" && pwd)
    export STREAMING_DATA_DIR
  fi
}

# start_postgres DIR: a throwaway PostgreSQL cluster in DIR/pg on a free loopback port (trust authentication, reachable
# on 127.0.0.1 only). Sets PG_DATA, PG_PORT and PG_CONNECTION (Npgsql form); stop it with stop_postgres.
# PostgreSQL refuses to run as root: run by root, the cluster belongs to the postgres user.
start_postgres() {
  local dir=$1
  ensure_packages postgresql
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$PG_BIN" ] || die "PostgreSQL server binaries not found after installing postgresql"
  PG_AS=()
  [ "$(id -u)" -ne 0 ] || PG_AS=(runuser -u postgres --)
  PG_PORT=$(free_port)
  PG_DATA="$dir/pg"
  mkdir -p "$PG_DATA"
  if [ ${#PG_AS[@]} -gt 0 ]; then
    chmod 755 "$dir"
    chown postgres:postgres "$PG_DATA"
  fi
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres >/dev/null || die "initdb failed"
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 30 \
    -o "-p $PG_PORT -h 127.0.0.1 -k $PG_DATA -F" start >/dev/null || die "PostgreSQL did not start (see $PG_DATA/server.log)"
  PG_CONNECTION="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres"
}

# stop_postgres: stops the cluster start_postgres started (fast shutdown); nothing when none was started.
stop_postgres() {
  [ -n "${PG_DATA:-}" ] || return 0
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true
  PG_DATA=""
}

# wait_for_http URL SECONDS NAME [PID]: until URL answers 200; fails at the deadline, or at once when process PID ends.
wait_for_http() {
  local url=$1 seconds=$2 name=$3 pid=${4:-} deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      die "$name exited before $url answered"
    fi
    [ $SECONDS -lt $deadline ] || die "$name: $url did not answer 200 within ${seconds}s"
    sleep 0.5
  done
}
