#!/usr/bin/env bash
# Patches a copy of kwok's module so that its pod-delete stage deletes the pod it saw, not whatever
# pod holds that name now: the delete carries the pod's UID as a precondition, as a kubelet's final
# delete does. kwok v0.8.0 deletes by name only, and it replays stale pod-delete jobs after its pod
# watch is cut and resumed; each replay then deleted the replacement that a rollout had created under
# the same name (a BatchRollout update replaces pods name for name), and every recreate fed the churn
# that cut kwok's watch again. With the precondition a stale job gets a 409 and is dropped.
#
#   pod-delete-uid.sh MODULE_DIR     # edits MODULE_DIR/pkg/kwok/controllers/pod_controller.go in place
set -euo pipefail
file="$1/pkg/kwok/controllers/pod_controller.go"
old='err := c.typedClient.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, deleteOpt)'
new='opt := deleteOpt; opt.Preconditions = metav1.NewUIDPreconditions(string(pod.UID)); err := c.typedClient.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, opt)'
grep -qF "$old" "$file" || { echo "pod-delete-uid.sh: kwok's deleteResource changed; review the patch" >&2; exit 1; }
grep -q 'metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"' "$file" || { echo "pod-delete-uid.sh: metav1 is not imported in $file" >&2; exit 1; }
sed -i "s|$old|$new|" "$file"
