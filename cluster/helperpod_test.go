package cluster

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestHelperPod_IsPrivilegedPinnedToTheNodeAndRunsTheScriptInTheHostNamespaces(t *testing.T) {
	tests := []struct {
		purpose  helperPurpose
		script   string
		wantRuns []string // what the host must be told to do
	}{
		{purposeNetboot, netbootScript, []string{"efibootmgr --bootnext", "seek=510", "systemctl reboot"}},
		{purposeUninstall, uninstallPodScript, []string{"$" + uninstallEnvVar, "systemd-run --quiet --wait", "exit \"$rc\""}},
	}
	for _, tt := range tests {
		t.Run(string(tt.purpose), func(t *testing.T) {
			p := helperPod("bootyard-system", "busybox:1.37", tt.purpose, "cp-2", "cp-2.lab", 3, tt.script)
			if p.Namespace != "bootyard-system" || p.Spec.NodeName != "cp-2.lab" {
				t.Errorf("pod %s/%s on node %q, want bootyard-system on cp-2.lab", p.Namespace, p.Name, p.Spec.NodeName)
			}
			if !p.Spec.HostPID {
				t.Error("hostPID is off: nsenter --target 1 would enter the container, not the host")
			}
			if p.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy %s: a reboot or uninstall must run once", p.Spec.RestartPolicy)
			}
			if !slices.ContainsFunc(p.Spec.Tolerations, func(tol corev1.Toleration) bool {
				return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
			}) {
				t.Errorf("tolerations %v do not tolerate every taint", p.Spec.Tolerations)
			}
			if len(p.Spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(p.Spec.Containers))
			}
			ctr := p.Spec.Containers[0]
			if ctr.SecurityContext == nil || ctr.SecurityContext.Privileged == nil || !*ctr.SecurityContext.Privileged {
				t.Error("container is not privileged")
			}
			wantPrefix := []string{"nsenter", "--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--", "sh", "-c"}
			if len(ctr.Command) != len(wantPrefix)+1 || !slices.Equal(ctr.Command[:len(wantPrefix)], wantPrefix) {
				t.Fatalf("command %q, want %q and the script", ctr.Command, wantPrefix)
			}
			for _, w := range tt.wantRuns {
				if !strings.Contains(ctr.Command[len(wantPrefix)], w) {
					t.Errorf("script does not contain %q", w)
				}
			}
			if ctr.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
				t.Errorf("termination message policy %q: a failure would lose its log tail", ctr.TerminationMessagePolicy)
			}
			if p.Labels[labelManagedBy] != managedBy || p.Labels[labelNode] != "cp-2" || p.Labels[labelPurpose] != string(tt.purpose) {
				t.Errorf("labels %v", p.Labels)
			}
		})
	}
}

func TestHelperPodName_IsAValidNameForLongNodeNames(t *testing.T) {
	long := strings.Repeat("a", 60)
	for _, name := range []string{helperPodName(purposeNetboot, "cp-1", 2), helperPodName(purposeUninstall, long, 12)} {
		if len(name) > 63 || strings.HasSuffix(name, "-") {
			t.Errorf("pod name %q (%d chars) is not a valid DNS label", name, len(name))
		}
	}
	if a, b := helperPodName(purposeNetboot, "cp-1", 1), helperPodName(purposeNetboot, "cp-1", 2); a == b {
		t.Errorf("generations 1 and 2 share the pod name %q: a later deletion would adopt an old pod", a)
	}
}

func TestHelperPodScripts_ParseAsShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine: cannot syntax-check the helper scripts")
	}
	for name, script := range map[string]string{"netboot": netbootScript, "uninstall pod": uninstallPodScript, "uninstall host": uninstallHostScript} {
		// -n reads without executing: these scripts reboot and uninstall the host.
		if out, err := exec.Command(sh, "-n", "-c", script).CombinedOutput(); err != nil {
			t.Errorf("%s script: %v\n%s", name, err, out)
		}
	}
}

func TestEFINetworkEntry_PicksTheFirstNetworkEntry(t *testing.T) {
	awk, err := exec.LookPath("awk")
	if err != nil {
		t.Skip("no awk on this machine: cannot run the efibootmgr filter")
	}
	tests := []struct {
		name, listing, want string
	}{
		{"OVMF with PXE after the disk", `BootCurrent: 0001
Timeout: 0 seconds
BootOrder: 0001,0003,0004
Boot0001* UEFI QEMU HARDDISK QM00001
Boot0003* UEFI PXEv4 (MAC:525400123456)
Boot0004* UEFI PXEv6 (MAC:525400123456)
`, "0003"},
		{"vendor firmware naming the NIC", `BootOrder: 0000,000A
Boot0000* ubuntu	HD(1,GPT,...)
Boot000A* Network Card: IBA CL Slot 0100 v2.0.41
`, "000A"},
		{"HTTP boot entry", "Boot0007* UEFI HTTPv4 (MAC:001122334455)\n", "0007"},
		{"no network entry", "Boot0001* Linux Boot Manager\nBoot0002* UEFI Shell\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(awk, efiNetworkEntryAWK)
			cmd.Stdin = strings.NewReader(tt.listing)
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("entry %q, want %q", got, tt.want)
			}
		})
	}
}
