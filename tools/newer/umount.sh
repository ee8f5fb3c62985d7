#!/usr/bin/env bash
# Undo tools/newer/setup.sh's mounts (the chroot's files stay for reuse).
# Run this before deleting the chroot: it has the checkout mounted inside.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/newer/env.sh
newer_umount
