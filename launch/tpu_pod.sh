#!/usr/bin/env bash
# Train flowjax on a Cloud TPU VM or pod slice: create it (or reuse it), install the project on every
# worker, and run main.py on all workers at once. See launch/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/tpu_pod.sh --name=TPU --zone=ZONE --accelerator=TYPE --config=FILE --workdir=gs://BUCKET/DIR
                         [--project=P] [--version=V] [--repo=GIT_URL|PATH] [--data_dir=DIR]
                         [--spot | --preemptible] [--dry-run] [-- MAIN_PY_ARGS...]

  --name         TPU VM name; an existing READY one is reused, a preempted one is deleted and recreated
  --zone         zone with quota for the accelerator, e.g. us-central2-b
  --accelerator  accelerator type, e.g. v4-32 (a pod slice: one worker per 4 chips)
  --version      TPU software version (default: tpu-ubuntu2204-base for v2-v4, v2-alpha-tpuv5-lite
                 for v5e, v2-alpha-tpuv5 for v5p, v2-alpha-tpuv6e for v6e)
  --project      GCP project (default: gcloud's configured project)
  --config       config file relative to the repository root, e.g. configs/lmm_imagenet64.py[:ARG]
  --workdir      gs:// directory for checkpoints and results; rerunning the same command resumes from it.
                 main.py writes a local path: every worker mounts the bucket with gcsfuse at /mnt/gcs/BUCKET,
                 and the run's workdir is /mnt/gcs/BUCKET/DIR there
  --repo         code to run: a git URL, cloned (or pulled) into ~/flowjax on every worker, or a local git
                 checkout, whose tracked and untracked-but-not-ignored files are copied there with
                 `gcloud compute tpus tpu-vm scp` (default: the checkout this script is in)
  --data_dir     passed as --config.data.data_dir (the TFDS data dir, e.g. gs://BUCKET/tensorflow_datasets)
  --spot, --preemptible   create a Spot / preemptible TPU
  --dry-run      print every command, one per line, and run nothing
  after --       arguments passed to main.py, e.g. -- --config.training.batch_size=512 --mode=pairs
EOF
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=launch/common.sh
source "$root/launch/common.sh"
name="" zone="" accelerator="" version="" project="" config="" workdir="" repo="$root" data_dir=""
capacity="" dry=0 passthrough=()
options=" name zone accelerator version project config workdir repo data_dir "  # each --OPTION=VALUE sets the variable OPTION
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --spot | --preemptible) capacity=$1 ;;
    --dry-run) dry=1 ;;
    --) shift; passthrough=("$@"); break ;;
    --?*=*)
      key=${1%%=*}; key=${key#--}
      [[ $key =~ ^[a-z_]+$ && $options == *" $key "* ]] || die "unknown argument $1 (see --help)"
      printf -v "$key" '%s' "${1#*=}" ;;
    *)
      [[ $1 != --* || $options != *" ${1#--} "* ]] || die "$1 needs a value: $1=VALUE"
      die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

for arg in name zone accelerator config workdir; do
  [[ -n ${!arg} ]] || die "--$arg is required (see --help)"
done
[[ $workdir == gs://?* ]] || die "--workdir=$workdir must be a gs:// path (every worker writes to it)"
[[ $accelerator =~ ^v[0-9][a-z0-9]*-[1-9][0-9]*$ ]] || die "--accelerator=$accelerator is not a type like v4-32"
if [[ $repo == *://* || $repo == git@* ]]; then
  src=$root  # the config is checked against this checkout; the workers clone the URL
else
  git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1 || die "--repo=$repo is not a git checkout or URL"
  src=$(cd "$repo" && git rev-parse --show-toplevel)
fi
[[ -f $src/${config%%:*} ]] || die "--config=$config: no such file in $src"
if [[ -z $version ]]; then
  case $accelerator in
    v6e-*) version=v2-alpha-tpuv6e ;;
    v5p-*) version=v2-alpha-tpuv5 ;;
    v5litepod-* | v5e-*) version=v2-alpha-tpuv5-lite ;;
    *) version=tpu-ubuntu2204-base ;;
  esac
fi

((dry)) || command -v gcloud >/dev/null || { echo "error: gcloud not found (install the Google Cloud CLI)" >&2; exit 1; }
run() { if ((dry)); then q "$@"; else "$@"; fi; }
gc=(gcloud compute tpus tpu-vm)
where=(--zone="$zone")
[[ -z $project ]] || where+=(--project="$project")

# 1. The TPU: a preempted or terminated TPU VM cannot be restarted, only deleted and created again.
describe=("${gc[@]}" describe "$name" "${where[@]}" --format=value\(state\))
create=("${gc[@]}" create "$name" "${where[@]}" --accelerator-type="$accelerator" --version="$version" ${capacity:+"$capacity"})
delete=("${gc[@]}" delete "$name" "${where[@]}" --quiet)
if ((dry)); then
  q "${describe[@]}"
  echo "# unless it is READY (if PREEMPTED or TERMINATED, first: $(q "${delete[@]}"))"
  q "${create[@]}"
else
  state=$("${describe[@]}" 2>/dev/null || true)
  echo "TPU $name: ${state:-not found}" >&2
  case $state in
    READY) ;;
    PREEMPTED | TERMINATED) "${delete[@]}"; "${create[@]}" ;;
    "") "${create[@]}" ;;
    *) echo "error: TPU $name is $state; wait until it is READY, or delete it" >&2; exit 1 ;;
  esac
fi

# 2. The code, into ~/flowjax on every worker, then the install. pip is rerun on every launch (quick when
# nothing changed) so that a recreated TPU gets it too. [data] brings tensorflow-datasets and grain, which
# read the image data sets, and TensorFlow, which lets TFDS read gs:// paths.
install='cd ~/flowjax && python3 -m pip install -U pip && python3 -m pip install "jax[tpu]" && python3 -m pip install -e ".[data]"'
# gcsfuse, from Google's apt repository, for the workdir's bucket (main.py writes its workdir with local file calls).
gcsfuse_install='command -v gcsfuse >/dev/null || { echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-$(lsb_release -c -s) main" | sudo tee /etc/apt/sources.list.d/gcsfuse.list && curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null && sudo apt-get update -q && sudo apt-get install -y -q gcsfuse; }'
bucket=${workdir#gs://}; bucket=${bucket%%/*}
mount_dir=/mnt/gcs/$bucket
local_workdir=$mount_dir${workdir#gs://"$bucket"}
mount="sudo mkdir -p $(q "$mount_dir") && sudo chown \$USER $(q "$mount_dir") && { mountpoint -q $(q "$mount_dir") || gcsfuse --implicit-dirs $(q "$bucket") $(q "$mount_dir"); }"
if [[ $repo == *://* || $repo == git@* ]]; then
  fetch="if [ -d ~/flowjax/.git ]; then git -C ~/flowjax pull --ff-only; else rm -rf ~/flowjax && git clone $(q "$repo") ~/flowjax; fi"
else
  tarball=${TMPDIR:-/tmp}/flowjax-src-$name.tgz
  if ((dry)); then
    echo "git -C $(q "$src") ls-files -z --cached --others --exclude-standard | tar -czf $(q "$tarball") -C $(q "$src") --null -T -"
  else
    trap 'rm -f "$tarball"' EXIT
    git -C "$src" ls-files -z --cached --others --exclude-standard | tar -czf "$tarball" -C "$src" --null -T -
  fi
  run "${gc[@]}" scp "$tarball" "$name:flowjax-src.tgz" --worker=all "${where[@]}"
  fetch="rm -rf ~/flowjax && mkdir ~/flowjax && tar -xzf ~/flowjax-src.tgz -C ~/flowjax"
fi
run "${gc[@]}" ssh "$name" --worker=all "${where[@]}" --command="set -e; $fetch; $install; $gcsfuse_install; $mount"

# 3. The run: every worker starts the same command; jax.distributed.initialize() finds the pod's other workers.
main=(python3 main.py --config="$config" --workdir="$local_workdir" --distributed=on)
[[ -z $data_dir ]] || main+=(--config.data.data_dir="$data_dir")
main+=(${passthrough[@]+"${passthrough[@]}"})
run "${gc[@]}" ssh "$name" --worker=all "${where[@]}" --command="cd ~/flowjax && $(q "${main[@]}")"
