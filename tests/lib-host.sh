# SPDX-License-Identifier: GPL-2.0
#
# KTAP helpers for the tests that run on the host (no VM, no module load):
# the kernel's ktap_helpers.sh, found through $KTAP_HELPERS.
if [ -z "${KTAP_HELPERS:-}" ] || [ ! -r "$KTAP_HELPERS" ]; then
	echo "1..0 # SKIP KTAP_HELPERS must point to the kernel's ktap_helpers.sh"
	exit 4
fi
# shellcheck source=/dev/null
. "$KTAP_HELPERS"
