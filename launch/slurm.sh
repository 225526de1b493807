#!/usr/bin/env bash
# Train flowjax on several GPU nodes of a Slurm cluster: write an sbatch script that runs main.py under srun,
# and submit it. See launch/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: launch/slurm.sh --nodes=N --gpus_per_node=G --config=FILE --workdir=DIR
                       [--per=gpu|node] [--partition=P] [--time=T] [--account=A] [--venv=DIR]
                       [--job_name=NAME] [--requeue] [--dry-run] [-- MAIN_PY_ARGS...]

  --nodes          number of nodes
  --gpus_per_node  GPUs per node
  --per            gpu (default): one process per GPU; node: one process per node, driving all its GPUs
  --partition, --time (e.g. 48:00:00), --account   passed to sbatch
  --config         config file relative to the repository root, e.g. configs/lmm_imagenet64.py[:ARG]
  --workdir        checkpoints and results, on a filesystem every node sees; rerunning resumes
  --venv           virtual environment to activate on the nodes (default: the python on the nodes' PATH)
  --job_name       Slurm job name (default: the config's name)
  --requeue        requeue the job when it is preempted or reaches --time: main.py gets SIGTERM 120 s
                   before, saves a checkpoint and exits 143, and the job resumes from it when it runs again
  --dry-run        print the sbatch script and the sbatch command; write and run nothing
  after --         arguments passed to main.py, e.g. -- --config.training.batch_size=512

The sbatch script and the job's log go to DIR/slurm/. The repository is
used where it is: it must be on the shared filesystem too.
EOF
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=launch/common.sh
source "$root/launch/common.sh"
nodes="" gpus_per_node="" per=gpu partition="" time="" account="" config="" workdir="" venv="" job_name=""
requeue=0 dry=0 passthrough=()
options=" nodes gpus_per_node per partition time account config workdir venv job_name "  # each --OPTION=VALUE sets the variable OPTION
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --requeue) requeue=1 ;;
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

for arg in nodes gpus_per_node config workdir; do
  [[ -n ${!arg} ]] || die "--$arg is required (see --help)"
done
for arg in nodes gpus_per_node; do
  [[ ${!arg} =~ ^[1-9][0-9]*$ ]] || die "--$arg=${!arg} must be a positive integer"
done
[[ $per == gpu || $per == node ]] || die "--per=$per must be gpu or node"
[[ -f $root/${config%%:*} ]] || die "--config=$config: no such file in $root"
if [[ -n $venv ]]; then
  [[ -f $venv/bin/activate ]] || die "--venv=$venv has no bin/activate"
  venv=$(cd "$venv" && pwd)
fi
# The job runs in the repository root: a relative workdir means the one relative to here.
case $workdir in
  *://*) die "--workdir=$workdir: main.py writes a local or shared-filesystem path (mount a bucket with gcsfuse)" ;;
  /*) logdir=$workdir/slurm ;;
  *) workdir=$PWD/$workdir; logdir=$workdir/slurm ;;
esac
if [[ -z $job_name ]]; then
  job_name=$(basename "${config%%:*}" .py)
  [[ $config != *:* ]] || job_name+="_${config#*:}"
fi
[[ $job_name =~ ^[A-Za-z0-9_.,=+-]+$ ]] || die "--job_name=$job_name: use letters, digits and _.,=+- only"

if [[ $per == gpu ]]; then
  tasks=$gpus_per_node
else
  tasks=1
fi
main=(python main.py --config="$config" --workdir="$workdir" --distributed=on ${passthrough[@]+"${passthrough[@]}"})

sbatch_script() {
  echo "#!/bin/bash"
  echo "#SBATCH --job-name=$job_name"
  echo "#SBATCH --nodes=$nodes"
  echo "#SBATCH --ntasks-per-node=$tasks"
  # Every task sees all the node's GPUs: JAX's Slurm detection gives task SLURM_LOCALID the GPU of that number
  # among the visible ones, which --gpus-per-task=1 would renumber to 0.
  echo "#SBATCH --gpus-per-node=$gpus_per_node"
  echo "#SBATCH --output=$logdir/%x-%j.out"
  [[ -z $partition ]] || echo "#SBATCH --partition=$partition"
  [[ -z $time ]] || echo "#SBATCH --time=$time"
  [[ -z $account ]] || echo "#SBATCH --account=$account"
  if ((requeue)); then printf '%s\n' "#SBATCH --requeue" "#SBATCH --signal=TERM@120"; fi
  echo "set -euo pipefail"
  echo "cd $(q "$root")"
  [[ -z $venv ]] || echo "source $(q "$venv/bin/activate")"
  # One process per node drives all its GPUs, not only the one JAX's Slurm detection would give it.
  [[ $per == gpu ]] || echo "export JAX_LOCAL_DEVICE_IDS=$(seq -s, 0 $((gpus_per_node - 1)))"
  if ((requeue)); then
    echo "rc=0"
    echo "srun $(q "${main[@]}") || rc=\$?"
    # 143: main.py saved a checkpoint on SIGTERM. Slurm requeues a preempted job by itself, not one at its time limit.
    echo "if [ \"\$rc\" -eq 143 ]; then scontrol requeue \"\$SLURM_JOB_ID\" || true; fi"
    echo "exit \"\$rc\""
  else
    echo "srun $(q "${main[@]}")"
  fi
}

file=$logdir/$job_name.sbatch
if ((dry)); then
  q mkdir -p "$logdir"
  echo "cat > $(q "$file") <<'EOF'"
  sbatch_script
  echo "EOF"
  q sbatch "$file"
else
  command -v sbatch >/dev/null || { echo "error: sbatch not found: run this on the cluster's login node" >&2; exit 1; }
  mkdir -p "$logdir"
  sbatch_script >"$file"
  echo "Wrote $file; the job's log: $logdir/$job_name-<job id>.out" >&2
  sbatch "$file"
fi
