package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/raibid-labs/raibid-ci/internal/kube"
	"github.com/raibid-labs/raibid-ci/internal/server"
)

// Executors: where agents come from.
const (
	executorNone       = "none"       // elsewhere: raibid up's pool, raibid agent processes
	executorKEDA       = "keda"       // a KEDA ScaledJob; the server scales it and lists its pods
	executorKubernetes = "kubernetes" // the server creates one Job per queued job
)

// kubeFlagGroup marks the Kubernetes-only flags, which --help lists apart.
const kubeFlagGroup = "kubernetes"

func addKubeFlags(f *pflag.FlagSet) {
	defer f.VisitAll(func(fl *pflag.Flag) {
		if kubeFlagNames[fl.Name] {
			_ = f.SetAnnotation(fl.Name, "group", []string{kubeFlagGroup})
		}
	})
	f.String("executor", executorNone, "where agents come from: none (started elsewhere), keda (a ScaledJob: --scaled-job), kubernetes (the server creates a Job per queued job)")
	f.String("namespace", "ci", "Kubernetes namespace of the agents")
	f.String("scaled-job", "raibid-agent", "with --executor keda: the agent ScaledJob whose maxReplicaCount PUT /scale sets")
	f.String("agent-image", "", "with --executor kubernetes: the agent image, pinned (registry/raibid-agent:1.2.3)")
	f.String("agent-redis-url", "", "with --executor kubernetes: Redis as agents reach it, without password (default: --redis-url without its password)")
	f.String("redis-secret", "redis-auth", "with --executor kubernetes: Secret whose key \"password\" is the Redis password")
	f.String("agent-config-map", "raibid-config", "with --executor kubernetes: ConfigMap passed to agents as environment")
	f.String("agent-service-account", "raibid-agent", "with --executor kubernetes: the agents' service account")
	f.String("cache-pvc", "raibid-cache", "with --executor kubernetes: PVC mounted as the agents' build cache (empty: none)")
	f.Int("max-agents", 6, "with --executor kubernetes: agents at most (PUT /scale changes it)")
}

var kubeFlagNames = map[string]bool{"executor": true, "namespace": true, "scaled-job": true, "agent-image": true,
	"agent-redis-url": true, "redis-secret": true, "agent-config-map": true, "agent-service-account": true,
	"cache-pvc": true, "max-agents": true}

// groupKubeFlags makes cmd's help list the Kubernetes-only flags under a
// heading of their own, after the flags everyone uses.
func groupKubeFlags(cmd *cobra.Command) {
	cmd.SetUsageFunc(func(c *cobra.Command) error {
		plain, kube := pflag.NewFlagSet("", pflag.ContinueOnError), pflag.NewFlagSet("", pflag.ContinueOnError)
		c.LocalFlags().VisitAll(func(fl *pflag.Flag) {
			if fl.Hidden {
				return
			}
			if g := fl.Annotations["group"]; len(g) == 1 && g[0] == kubeFlagGroup {
				kube.AddFlag(fl)
			} else {
				plain.AddFlag(fl)
			}
		})
		out := c.OutOrStderr()
		fmt.Fprintf(out, "Usage:\n  %s\n\nFlags:\n%s", c.UseLine(), plain.FlagUsages())
		if kube.HasFlags() {
			fmt.Fprintf(out, "\nKubernetes flags (--executor keda|kubernetes; nothing else uses them):\n%s", kube.FlagUsages())
		}
		if c.HasAvailableInheritedFlags() {
			fmt.Fprintf(out, "\nGlobal Flags:\n%s", c.InheritedFlags().FlagUsages())
		}
		return nil
	})
}

// kubeOptions fills the server's executor, scaler and pod lister from flags.
func kubeOptions(cmd *cobra.Command, opts *server.Options, log *slog.Logger) error {
	f := cmd.Flags()
	mode, _ := f.GetString("executor")
	if mode == executorNone || mode == "" {
		return nil
	}
	if mode != executorKEDA && mode != executorKubernetes {
		return &UsageError{fmt.Errorf("--executor %q: use none, keda or kubernetes", mode)}
	}
	ns, _ := f.GetString("namespace")
	c, err := kube.Connect()
	if err != nil {
		return err
	}
	opts.Pods = &kube.PodLister{Client: c, Namespace: ns}
	if mode == executorKEDA {
		name, _ := f.GetString("scaled-job")
		opts.Scaler = &kube.ScaledJobScaler{Client: c, Namespace: ns, Name: name}
		log.Info("agents from a KEDA ScaledJob", "namespace", ns, "scaled_job", name)
		return nil
	}
	image, _ := f.GetString("agent-image")
	agentRedis, _ := f.GetString("agent-redis-url")
	if agentRedis == "" {
		raw, _ := f.GetString("redis-url")
		u, err := url.Parse(raw)
		if err != nil {
			return &UsageError{fmt.Errorf("--redis-url: %w", err)}
		}
		u.User = nil // the password reaches agents from the Secret, never the Job spec
		agentRedis = u.String()
	}
	secretName, _ := f.GetString("redis-secret")
	cm, _ := f.GetString("agent-config-map")
	sa, _ := f.GetString("agent-service-account")
	pvc, _ := f.GetString("cache-pvc")
	maxAgents, _ := f.GetInt("max-agents")
	ex, err := kube.NewExecutor(c, kube.ExecutorOptions{Namespace: ns, Image: image, RedisURL: agentRedis,
		RedisSecret: secretName, ConfigMap: cm, ServiceAccount: sa, CachePVC: pvc, Log: log})
	if err != nil {
		return &UsageError{err}
	}
	opts.Executor = ex
	limit := &agentCap{}
	limit.n.Store(int64(maxAgents))
	opts.Scaler = limit
	log.Info("agents as Kubernetes Jobs", "namespace", ns, "image", image, "max_agents", maxAgents)
	return nil
}

// agentCap is the executor's "at most this many agents", set by PUT /scale.
type agentCap struct{ n atomic.Int64 }

func (c *agentCap) MaxAgents(context.Context) (int, error) { return int(c.n.Load()), nil }

func (c *agentCap) SetMaxAgents(_ context.Context, n int) error { c.n.Store(int64(n)); return nil }
