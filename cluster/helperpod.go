package cluster

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// Labels on Bootyard's helper pods, so drains leave them alone and operators can find them.
const (
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "bootyard"
	labelPurpose   = "bootyard.io/purpose"
	labelNode      = "bootyard.io/node"
)

// helperPurpose is what a privileged helper pod does on the host.
type helperPurpose string

const (
	purposeNetboot   helperPurpose = "netboot"
	purposeUninstall helperPurpose = "uninstall"
)

// efiNetworkEntryAWK picks the first network boot entry from efibootmgr's listing
// ("Boot0003* UEFI PXEv4 (MAC:525400123456)") and prints its number. The hex digits are
// spelled out: mawk, Debian's awk, has no {4} intervals.
const efiNetworkEntryAWK = `toupper($0) ~ /^BOOT[0-9A-F][0-9A-F][0-9A-F][0-9A-F]/ && toupper($0) ~ /(PXE|NETWORK|IPV4|IPV6|HTTP)/ { print substr($1, 5, 4); exit }`

// netbootScript runs in the host's namespaces. With UEFI and efibootmgr it makes a network
// entry the next boot (BootNext, one boot only); otherwise it clears the 0x55AA boot
// signature of the disk holding the OS, so the firmware finds nothing bootable there and
// falls through to the network. Then it reboots through systemd, which finishes the
// reboot even when this pod is killed on the way down.
const netbootScript = `set -u
done=""
if [ -d /sys/firmware/efi ] && command -v efibootmgr >/dev/null 2>&1; then
	entry=$(efibootmgr | awk '` + efiNetworkEntryAWK + `')
	if [ -n "$entry" ] && efibootmgr --bootnext "$entry" >/dev/null; then
		echo "bootyard: next boot is network entry Boot$entry"
		done=1
	fi
fi
if [ -z "$done" ]; then
	for m in / /boot /boot/efi /run/initramfs/cos-state /oem; do
		src=$(findmnt -no SOURCE "$m" 2>/dev/null | head -n1)
		[ -b "$src" ] || continue
		disk=$(lsblk -ndo PKNAME "$src" 2>/dev/null | head -n1)
		[ -n "$disk" ] || continue
		printf '\000\000' | dd of="/dev/$disk" bs=1 seek=510 count=2 conv=notrunc,fsync 2>/dev/null &&
			echo "bootyard: cleared the boot signature of /dev/$disk" && done=1 && break
	done
fi
[ -n "$done" ] || echo "bootyard: found no network boot entry and no boot disk; rebooting anyway" >&2
sync
systemctl reboot 2>/dev/null || reboot
`

// uninstallHostScript is the uninstall itself: LLMOS's uninstall script, found where
// LLMOS's installer puts it, then Bootyard's removal of the join data. Tests run it
// against a directory (ROOT) and a loop device (DISKS).
//
//go:embed uninstall.sh
var uninstallHostScript string

// uninstallEnvVar carries the host script into the pod; the pod's own script writes it to
// the host.
const uninstallEnvVar = "BOOTYARD_UNINSTALL"

// uninstallPodScript runs in the host's namespaces and exits with the uninstall's exit
// status, its output being the pod's log (and, on failure, its termination message).
// The uninstall runs as a transient host unit, not in the pod: LLMOS's script stops k3s
// and kills every container on the host, this pod included, and whatever happens to the
// pod, the uninstall and the cleanup after it must finish. The pod waits for the unit and
// reports its status while the kubelet is there to report it; the host keeps the log in
// /var/log/bootyard-uninstall.log. $ signs stay out of systemd-run's arguments, which
// systemd would expand itself.
const uninstallPodScript = `set -u
dir=/run/bootyard-uninstall
mkdir -p "$dir" || exit 125
rm -f "$dir/status" "$dir/log"
printf '%s\n' "$` + uninstallEnvVar + `" >"$dir/uninstall.sh" || exit 125
cat >"$dir/run.sh" <<'EOF'
BOOTYARD_UNINSTALL_LOG=/run/bootyard-uninstall/log sh /run/bootyard-uninstall/uninstall.sh >/run/bootyard-uninstall/log 2>&1
echo $? >/run/bootyard-uninstall/status
cat /run/bootyard-uninstall/log >>/var/log/bootyard-uninstall.log
EOF
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then
	systemd-run --quiet --wait --collect --unit="bootyard-uninstall-$(date +%s)" /bin/sh "$dir/run.sh"
else
	sh "$dir/run.sh"
fi
cat "$dir/log" 2>/dev/null
rc=$(cat "$dir/status" 2>/dev/null)
if [ -z "$rc" ]; then
	echo "bootyard: the uninstall left no exit status; see /var/log/bootyard-uninstall.log on the host" >&2
	exit 125
fi
exit "$rc"
`

// uninstallEnv renders the installer settings the host script looks at (where LLMOS put
// its binary and its unit) as shell assignments ahead of the script.
func uninstallEnv(installEnv map[string]string) string {
	var b strings.Builder
	for _, k := range []string{"INSTALL_LLMOS_BIN_DIR", "INSTALL_LLMOS_SYSTEMD_DIR"} {
		if v := installEnv[k]; v != "" {
			b.WriteString("export " + k + "='" + strings.ReplaceAll(v, "'", `'\''`) + "'\n")
		}
	}
	return b.String()
}

// helperPodName is stable for a node and generation, so a resumed deletion finds the
// pod an earlier attempt created, and a later life of the same machine does not.
func helperPodName(purpose helperPurpose, nodeName string, generation int) string {
	name := fmt.Sprintf("bootyard-%s-%s-g%d", purpose, nodeName, generation)
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-.")
	}
	return name
}

// helperPod is a privileged pod pinned to k8sNode (nodeName bypasses the scheduler, so
// the cordon does not keep it off) that enters the host's namespaces through PID 1 and
// runs script there with the host's own tools.
func helperPod(namespace, image string, purpose helperPurpose, bootyardName, k8sNode string, generation int, script string, env ...corev1.EnvVar) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      helperPodName(purpose, bootyardName, generation),
			Namespace: namespace,
			Labels:    map[string]string{labelManagedBy: managedBy, labelPurpose: string(purpose), labelNode: bootyardName},
		},
		Spec: corev1.PodSpec{
			NodeName:                      k8sNode,
			HostPID:                       true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			// Tolerate everything: the node is cordoned and may be NotReady or tainted.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:            string(purpose),
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--", "sh", "-c", script},
				Env:             env,
				// A failure's message is the end of the script's output: what failed and why,
				// with no kubectl logs needed on a node that may be gone.
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				SecurityContext:          &corev1.SecurityContext{Privileged: ptr.To(true)},
			}},
		},
	}
}

// podOutcome is how far a helper pod got within its wait.
type podOutcome int

const (
	podNeverRan podOutcome = iota // still pending: the node is down, or the image could not be pulled
	podRunning                    // started (a reboot kills it before it can finish)
	podSucceeded
	podFailed
)

// runHelperPod creates pod (or adopts one from an earlier attempt) and waits up to
// timeout until it reaches want: podRunning for the reboot, podSucceeded for the
// uninstall. It returns the furthest outcome seen, with the pod's message on failure.
// settled, if set, is asked on every look too: once it says the outcome is known some
// other way (the host's own report), the wait ends.
func (c *Controller) runHelperPod(ctx context.Context, pod *corev1.Pod, want podOutcome, timeout time.Duration, settled func(context.Context) bool) (podOutcome, string, error) {
	pods := c.client.CoreV1().Pods(pod.Namespace)
	if old, err := pods.Get(ctx, pod.Name, metav1.GetOptions{}); err == nil && old.Status.Phase == corev1.PodFailed {
		// A failed attempt is retried with a fresh pod; its name is stable, so the old one goes first.
		if err := c.removePod(ctx, pod.Namespace, pod.Name, timeout); err != nil {
			return podNeverRan, "", err
		}
	}
	_, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return podNeverRan, "", fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	outcome, msg := podNeverRan, ""
	err = wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(pollCtx context.Context) (bool, error) {
		if settled != nil && settled(pollCtx) {
			return true, nil
		}
		p, err := pods.Get(pollCtx, pod.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return false, fmt.Errorf("pod %s/%s was deleted while Bootyard waited for it", pod.Namespace, pod.Name)
		case err != nil:
			// A failed look (API hiccup, the client's rate limiter at the deadline) is not
			// an answer about the pod: look again until the timeout.
			c.log.Debug("look at helper pod", slog.String("pod", pod.Namespace+"/"+pod.Name), slog.Any("err", err))
			return false, nil
		}
		outcome, msg = outcomeOf(p)
		return outcome == podFailed || outcome == want || outcome == podSucceeded, nil
	})
	if ctx.Err() != nil {
		return outcome, msg, ctx.Err()
	}
	if err != nil && !wait.Interrupted(err) {
		return outcome, msg, err
	}
	return outcome, msg, nil
}

func outcomeOf(p *corev1.Pod) (podOutcome, string) {
	switch p.Status.Phase {
	case corev1.PodRunning:
		return podRunning, ""
	case corev1.PodSucceeded:
		return podSucceeded, ""
	case corev1.PodFailed:
		msg := p.Status.Message
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				msg = fmt.Sprintf("exit status %d", t.ExitCode)
				if t.Reason != "" {
					msg += " (" + t.Reason + ")"
				}
				if tail := lastLines(t.Message, terminationTailLines); tail != "" {
					msg += ": " + tail
				}
			}
		}
		return podFailed, msg
	}
	return podNeverRan, ""
}

// terminationTailLines is how much of a failed helper's output goes into the node's
// failure reason: the lines that say what failed, not the whole log.
const terminationTailLines = 8

// lastLines is the last n non-empty lines of s, joined with " | " so the reason stays one line.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// removePod deletes a pod without grace and waits until the API no longer has it.
func (c *Controller) removePod(ctx context.Context, namespace, name string, timeout time.Duration) error {
	pods := c.client.CoreV1().Pods(namespace)
	err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s/%s: %w", namespace, name, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(pollCtx context.Context) (bool, error) {
		_, err := pods.Get(pollCtx, name, metav1.GetOptions{})
		// Any other answer, an error included, means: not gone yet, look again.
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", namespace, name, err)
	}
	return nil
}
