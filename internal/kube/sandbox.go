package kube

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Where agent pods find the pipeline secrets' key (Secret SecretsKeySecret,
// key "key"), a file the build user cannot read.
const (
	SecretsKeySecret = "raibid-secrets-key"
	SecretsKeyDir    = "/run/raibid/secrets-key"
)

// AgentSecurityContext is what an agent container needs to run each step in
// its bubblewrap sandbox: root with CAP_SYS_ADMIN for the namespaces and
// mounts, SETUID/SETGID to drop to the build user, CHOWN/FOWNER/DAC_OVERRIDE
// to hand the workspace to that user and take it back; no other capability,
// and no AppArmor profile that forbids mount. deploy/'s ScaledJob holds the
// same (a test compares them).
//
// Seccomp is Unconfined: the runtime's default profile refuses pivot_root
// even with CAP_SYS_ADMIN, and bubblewrap cannot build a sandbox without it
// (found on a real node, test/cluster's node test: "bwrap: pivot_root:
// Operation not permitted"). The steps themselves run with no capability,
// no_new_privs and an empty bounding set (internal/sandbox).
func AgentSecurityContext() *corev1.SecurityContext {
	root, nonRoot := int64(0), false
	return &corev1.SecurityContext{
		RunAsUser:    &root,
		RunAsNonRoot: &nonRoot,
		Capabilities: &corev1.Capabilities{
			Drop: []corev1.Capability{"ALL"},
			Add:  []corev1.Capability{"SYS_ADMIN", "SETUID", "SETGID", "CHOWN", "FOWNER", "DAC_OVERRIDE"},
		},
		AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined},
		SeccompProfile:  &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
	}
}

// hardenAgentPod keeps credentials a build could reach out of an agent pod:
// no service account token (agents talk to Redis, never to the API server)
// and the secrets key as a 0400 file of root's, the agent's only reader.
func hardenAgentPod(spec *corev1.PodSpec, c *corev1.Container) {
	no := false
	mode := int32(0o400)
	optional := true
	spec.AutomountServiceAccountToken = &no
	c.SecurityContext = AgentSecurityContext()
	c.Env = append(c.Env, corev1.EnvVar{Name: "RAIBID_SECRETS_KEY_FILE", Value: SecretsKeyDir + "/key"})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "secrets-key", MountPath: SecretsKeyDir, ReadOnly: true})
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "secrets-key", VolumeSource: corev1.VolumeSource{
		Secret: &corev1.SecretVolumeSource{SecretName: SecretsKeySecret, DefaultMode: &mode, Optional: &optional}}})
}

// CheckBuildIsolation lists what in an agent pod would let a build reach a
// credential: a mounted service account token, a container that cannot
// sandbox its steps or is told not to, a Secret-sourced variable that steps
// inherit by name, a Secret file the build user could read. config is the
// environment the pod gets from ConfigMaps. It serves the deploy tree's
// tests and the executor's.
func CheckBuildIsolation(spec corev1.PodSpec, config map[string]string, passedEnv []string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		bad("the pod mounts a service account token (automountServiceAccountToken must be false)")
	}
	passed := map[string]bool{}
	for _, n := range passedEnv {
		passed[n] = true
	}
	env := map[string]string{}
	for k, v := range config {
		env[k] = v
	}
	for _, c := range spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				env[e.Name] = e.Value
			} else if e.ValueFrom.SecretKeyRef != nil && passed[e.Name] {
				bad("container %s: Secret-sourced %s is a variable steps inherit", c.Name, e.Name)
			}
		}
		args := strings.Join(c.Args, " ")
		if strings.Contains(args, "--sandbox=off") || strings.Contains(args, "--sandbox off") || strings.Contains(args, "--pass-env") {
			bad("container %s: arguments turn the sandbox off or pass variables to steps: %s", c.Name, args)
		}
		sc := c.SecurityContext
		caps := map[corev1.Capability]bool{}
		if sc != nil && sc.Capabilities != nil {
			for _, a := range sc.Capabilities.Add {
				caps[a] = true
			}
		}
		if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || !caps["SYS_ADMIN"] || !caps["SETUID"] || !caps["SETGID"] {
			bad("container %s: cannot sandbox steps as the build user (needs root with SYS_ADMIN, SETUID, SETGID)", c.Name)
		}
	}
	if v := env["RAIBID_SANDBOX"]; v != "" && v != "bwrap" {
		bad("RAIBID_SANDBOX=%s turns the sandbox off", v)
	}
	if env["RAIBID_PASS_ENV"] != "" {
		bad("RAIBID_PASS_ENV passes the agent's variables to steps")
	}
	if u := env["RAIBID_BUILD_USER"]; u == "root" || u == "0" {
		bad("RAIBID_BUILD_USER=%s runs steps as root", u)
	}
	for _, v := range spec.Volumes {
		if v.Secret == nil {
			continue
		}
		if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o077 != 0 {
			bad("Secret volume %s is readable by users other than root (defaultMode must be 0400)", v.Name)
		}
		for _, it := range v.Secret.Items {
			if it.Mode != nil && *it.Mode&0o077 != 0 {
				bad("Secret volume %s item %s is readable by the build user", v.Name, it.Key)
			}
		}
	}
	return problems
}
