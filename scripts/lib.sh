# Shared by scripts/run and scripts/test (sourced, not run): finds tools and installs
# the Debian packages that are missing, as root or with password-less sudo; otherwise
# stops with one line naming the packages to install.

# Where Debian puts system tools, whatever PATH the caller has.
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
me=$(basename "$0")
wanted=()

# find_tool <name>: its path, from PATH or the system directories; fails if absent.
find_tool() {
  (PATH="$PATH:$SYSTEM_PATH" command -v "$1") 2>/dev/null
}

# server_bin: the newest PostgreSQL server programs' directory (Debian's layout, or
# initdb on PATH); fails if there are none.
server_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -n1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  dir=$(find_tool initdb) && dirname "$(readlink -f "$dir")"
}

# need <file-or-command> <package>: <package> is installed unless the file exists or
# the command is found.
need() {
  if [ ! -e "$1" ] && ! find_tool "$1" >/dev/null; then wanted+=("$2"); fi
}

need_server() {
  server_bin >/dev/null || wanted+=(postgresql)
}

# install_wanted: installs what need/need_server found missing, with one apt-get.
install_wanted() {
  [ ${#wanted[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if find_tool sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      echo "error: missing: ${wanted[*]}; install with: sudo apt-get install ${wanted[*]}" >&2
      exit 1
    fi
  fi
  if ! find_tool apt-get >/dev/null; then
    echo "error: missing: ${wanted[*]} (Debian's names); install them with your package manager" >&2
    exit 1
  fi
  echo "$me: installing ${wanted[*]} (apt-get)" >&2
  "${sudo[@]}" env PATH="$SYSTEM_PATH" DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env PATH="$SYSTEM_PATH" DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq "${wanted[@]}" >/dev/null
  wanted=()
}
