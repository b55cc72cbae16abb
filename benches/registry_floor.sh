#!/usr/bin/env bash
# The floor of a push on this registry set-up: registry.sh's push phase with curl as a third
# client, the least any client can do (one POST and one PUT of the whole blob each, then the
# manifest). Prints curl/skopeo beside strata/skopeo and the registry's own CPU time per
# push: when curl's ratio is above 0.5, no client reaches the 0.5x goal here.
#   benches/registry_floor.sh                      # both cached images, 5 rounds
#   IMAGES=big ROUNDS=3 benches/registry_floor.sh  # registry.sh's other settings apply
set -euo pipefail
PHASES=push FLOOR=1 exec "$(dirname "${BASH_SOURCE[0]}")/registry.sh"
