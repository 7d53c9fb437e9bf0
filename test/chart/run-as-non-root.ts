// The kubelet's check before it starts a container whose effective securityContext says
// runAsNonRoot (verifyRunAsNonRoot in pkg/kubelet/kuberuntime): Pod Security admission cannot make
// it, because only the kubelet knows the image's user. Restated here so a test can apply it to the
// chart's pod spec and the image's USER without a kubelet.

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
}

/** The image's user as the runtime reports it: a numeric uid, or a name it cannot verify. */
export function imageUser(user: string): { uid?: number; username?: string } {
  const name = user.split(":")[0] ?? "";
  if (name === "") return { uid: 0 }; // no USER: the runtime starts the process as root
  return /^\d+$/.test(name) ? { uid: Number(name) } : { username: name };
}

/** The kubelet's error, or undefined when it would start the container. */
export function verifyRunAsNonRoot(pod: SecurityContext | undefined, container: SecurityContext | undefined, user: string): string | undefined {
  const runAsNonRoot = container?.runAsNonRoot ?? pod?.runAsNonRoot;
  if (runAsNonRoot !== true) return undefined;
  const runAsUser = container?.runAsUser ?? pod?.runAsUser;
  if (runAsUser !== undefined) return runAsUser === 0 ? "container's runAsUser breaks non-root policy" : undefined;
  const { uid, username } = imageUser(user);
  if (uid === 0) return "container has runAsNonRoot and image will run as root";
  if (uid === undefined) return `container has runAsNonRoot and image has non-numeric user (${username}), cannot verify user is non-root`;
  return undefined;
}
