#!/usr/bin/env bash
# Blue-green releases of one service of the mesh (k8s/README.md, "Blue-green").
#
# A service has two tracks, told apart by the pod label harsha.dev/track: blue
# is the manifests' Deployment (harsha-SERVICE), green a copy this script keeps
# (harsha-SERVICE-green). The Service selects one track; the other keeps its
# pods, so switching back is immediate.
#
#   scripts/blue_green.sh deploy SERVICE TAG   the idle track runs image TAG; once
#                                              its rollout is done, it serves
#   scripts/blue_green.sh rollback SERVICE     the other track serves again
#   scripts/blue_green.sh status SERVICE       the serving track and both Deployments
#   scripts/blue_green.sh migrate TAG          the migration Job on image TAG, waited for
#
# SERVICE is customer, inventory, pricing, auth, sync, order or edge.
# Options:
#   --repo REPOSITORY   the image repository (default: the serving track's; for
#                       migrate, the one in k8s/base/migrate-job.yaml)
#   --timeout DURATION  how long to wait for a rollout or the Job (default 10m)
#   --dry-run           print the kubectl commands instead of running them; the
#                       reads are printed as comments and answered as if the
#                       --current track served with two replicas of harsha-mesh
#   --current TRACK     for --dry-run: the track taken to be serving (blue)
# KUBECTL names the kubectl to run (default kubectl). Needs jq.
set -euo pipefail

NS=harsha
SERVICES=(customer inventory pricing auth sync order edge)
TRACK_LABEL=harsha.dev/track
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KUBECTL=${KUBECTL:-kubectl}
REPO=""
TIMEOUT=10m
DRY_RUN=0
CURRENT=blue

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
die() { echo "blue_green: $*" >&2; exit 1; }

# fd 3 is the script's output even inside $(...): notes and dry-run comments.
exec 3>&1

# Prints its arguments as one shell command line, quoting where needed.
quote() {
  local out="" arg
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
      out+="$arg "
    else
      out+="'${arg//\'/\'\\\'\'}' "
    fi
  done
  printf '%s\n' "${out% }"
}

note() {
  if ((DRY_RUN)); then printf '# %s\n' "$*" >&3; else printf '==> %s\n' "$*" >&2; fi
}

# A kubectl command that changes something: printed in a dry run, run otherwise.
run() {
  if ((DRY_RUN)); then quote "$KUBECTL" -n "$NS" "$@" >&3; else "$KUBECTL" -n "$NS" "$@"; fi
}

# A kubectl read (DEFAULT, then its arguments): a dry run prints it as a
# comment and answers DEFAULT.
query() {
  local default=$1
  shift
  if ((DRY_RUN)); then
    printf '# %s\n' "$(quote "$KUBECTL" -n "$NS" "$@")" >&3
    printf '%s' "$default"
  else
    "$KUBECTL" -n "$NS" "$@"
  fi
}

other_track() { if [[ $1 == blue ]]; then echo green; else echo blue; fi; }
deployment_of() { if [[ $2 == blue ]]; then echo "harsha-$1"; else echo "harsha-$1-green"; fi; }

check_service() {
  local s
  for s in "${SERVICES[@]}"; do [[ $1 == "$s" ]] && return 0; done
  die "unknown service '$1' (one of: ${SERVICES[*]})"
}

check_tag() {
  [[ $1 =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "'$1' is not an image tag"
}

# The track the Service selects; a Service without the label serves blue.
serving_track() {
  local track
  track=$(query "$CURRENT" get service "harsha-$1" -o "jsonpath={.spec.selector.harsha\\.dev/track}")
  case "${track:-blue}" in
    blue | green) echo "${track:-blue}" ;;
    *) die "service harsha-$1 selects unknown track '$track'" ;;
  esac
}

# REPOSITORY:TAG, the repository being --repo or that of IMAGE (a reference).
image_with_tag() {
  local repo=${REPO:-${1%@*}}
  if [[ -z $REPO && ${repo##*/} == *:* ]]; then repo=${repo%:*}; fi
  echo "$repo:$2"
}

# Reads a Deployment (JSON) and prints the same Deployment for TRACK, running
# IMAGE with REPLICAS replicas: the name gains or loses -green, the selector,
# pod labels and labels carry the track, and nothing the cluster added remains.
render_track() {
  local track=$1 image=$2 replicas=$3
  [[ $track == blue || $track == green ]] || die "unknown track '$track'"
  [[ $replicas =~ ^[0-9]+$ ]] || die "'$replicas' is not a replica count"
  jq --arg track "$track" --arg image "$image" --argjson replicas "$replicas" '
    (.metadata.name | sub("-green$"; "")) as $base
    | {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: {
          name: (if $track == "green" then $base + "-green" else $base end),
          namespace: .metadata.namespace,
          labels: ((.metadata.labels // {}) + {"harsha.dev/track": $track})
        },
        spec: (.spec
          | .replicas = $replicas
          | .selector.matchLabels["harsha.dev/track"] = $track
          | .template.metadata.labels["harsha.dev/track"] = $track
          | .template.spec.containers |= map(.image = $image)
          | del(.template.metadata.creationTimestamp))
      }'
}

# Points the Service, and the autoscaler where there is one (prod), at TRACK.
switch_to() {
  local service=$1 track=$2 deployment=$3 hpa
  run patch service "harsha-$service" --type merge \
    -p "{\"spec\":{\"selector\":{\"$TRACK_LABEL\":\"$track\"}}}"
  # A failed read stops the script (set -e) rather than skipping the autoscaler.
  hpa=$(query "horizontalpodautoscaler.autoscaling/harsha-$service" \
    get hpa "harsha-$service" --ignore-not-found -o name)
  if [[ -n $hpa ]]; then
    run patch hpa "harsha-$service" --type merge \
      -p "{\"spec\":{\"scaleTargetRef\":{\"name\":\"$deployment\"}}}"
  fi
  note "harsha-$service serves from $track ($deployment)"
  if [[ $track == green ]]; then
    note "kubectl apply -k would switch harsha-$service back to blue: see k8s/README.md before applying"
  fi
}

cmd_deploy() {
  local service=$1 tag=$2 current next from to replicas image
  check_service "$service"
  check_tag "$tag"
  current=$(serving_track "$service")
  next=$(other_track "$current")
  from=$(deployment_of "$service" "$current")
  to=$(deployment_of "$service" "$next")
  replicas=$(query 2 get deployment "$from" -o 'jsonpath={.spec.replicas}')
  image=$(image_with_tag "$(query harsha-mesh:0.1.0 get deployment "$from" \
    -o 'jsonpath={.spec.template.spec.containers[0].image}')" "$tag")
  note "$from ($current) serves; $to ($next) gets $image and $replicas replicas"
  if [[ $next == green ]]; then
    # Green is always a fresh copy of the serving blue Deployment.
    if ((DRY_RUN)); then
      printf '%s | %s | %s\n' "$(quote "$KUBECTL" -n "$NS" get deployment "$from" -o json)" \
        "$(quote "$0" render-track green "$image" "$replicas")" \
        "$(quote "$KUBECTL" -n "$NS" apply -f -)" >&3
    else
      command -v jq >/dev/null || die "jq is needed to copy $from"
      "$KUBECTL" -n "$NS" get deployment "$from" -o json |
        render_track green "$image" "$replicas" |
        "$KUBECTL" -n "$NS" apply -f -
    fi
  else
    # Blue stays the Deployment `kubectl apply -k` manages: only its image and size change.
    run set image "deployment/$to" "*=$image"
    run scale "deployment/$to" "--replicas=$replicas"
  fi
  run rollout status "deployment/$to" "--timeout=$TIMEOUT"
  switch_to "$service" "$next" "$to"
  note "$from keeps its pods for rollback: scripts/blue_green.sh rollback $service"
}

cmd_rollback() {
  local service=$1 current back from to found replicas
  check_service "$service"
  current=$(serving_track "$service")
  back=$(other_track "$current")
  from=$(deployment_of "$service" "$current")
  to=$(deployment_of "$service" "$back")
  found=$(query "deployment.apps/$to" get deployment "$to" --ignore-not-found -o name)
  [[ -n $found ]] || die "harsha-$service has no $back track ($to) to roll back to"
  replicas=$(query 2 get deployment "$from" -o 'jsonpath={.spec.replicas}')
  # In case the idle track was scaled down since.
  run scale "deployment/$to" "--replicas=$replicas"
  run rollout status "deployment/$to" "--timeout=$TIMEOUT"
  switch_to "$service" "$back" "$to"
}

cmd_status() {
  local service=$1
  check_service "$service"
  note "harsha-$service serves from $(serving_track "$service")"
  run get deployments -l "app.kubernetes.io/name=harsha-$service" -L "$TRACK_LABEL" -o wide
}

cmd_migrate() {
  local tag=$1 manifest="$ROOT/k8s/base/migrate-job.yaml" image
  check_tag "$tag"
  image=$(image_with_tag "$(sed -n 's/^ *image: *//p' "$manifest" | head -n1)" "$tag")
  note "migrations on $image, before any track runs it"
  run delete job harsha-migrate --ignore-not-found
  if ((DRY_RUN)); then
    printf '%s | %s\n' "$(quote "$KUBECTL" set image --local -f "$manifest" "migrate=$image" -o yaml)" \
      "$(quote "$KUBECTL" -n "$NS" apply -f -)" >&3
  else
    "$KUBECTL" set image --local -f "$manifest" "migrate=$image" -o yaml | "$KUBECTL" -n "$NS" apply -f -
  fi
  run wait --for=condition=complete job/harsha-migrate "--timeout=$TIMEOUT"
}

args=()
while (($#)); do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --current)
      CURRENT=${2:?--current needs a track}
      shift
      ;;
    --repo)
      REPO=${2:?--repo needs a repository}
      shift
      ;;
    --timeout)
      TIMEOUT=${2:?--timeout needs a duration}
      shift
      ;;
    -h | --help) usage ;;
    -*) die "unknown option $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[[ $CURRENT == blue || $CURRENT == green ]] || die "--current is blue or green"
set -- "${args[@]}"

case "${1:-}:$#" in
  deploy:3) cmd_deploy "$2" "$3" ;;
  rollback:2) cmd_rollback "$2" ;;
  status:2) cmd_status "$2" ;;
  migrate:2) cmd_migrate "$2" ;;
  # Used by deploy: a Deployment (JSON on stdin) for another track.
  render-track:4) render_track "$2" "$3" "$4" ;;
  *) usage ;;
esac
