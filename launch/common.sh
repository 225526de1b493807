# Shared by launch/tpu_pod.sh and launch/slurm.sh (sourced).

die() { echo "error: $*" >&2; exit 2; }

# Shell-quotes its arguments onto one line (only where needed), so printed commands can be pasted.
q() {
  local a out=()
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+=("$a"); else out+=("'${a//\'/\'\\\'\'}'"); fi
  done
  printf '%s\n' "${out[*]}"
}
