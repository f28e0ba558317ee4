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
	f.String("forge-secret", "raibid-secrets", "with --executor kubernetes: Secret whose key \"gitea-token\" agents get as their Gitea token")
	f.String("agent-config-map", "raibid-config", "with --executor kubernetes: ConfigMap passed to agents as environment")
	f.String("agent-service-account", "raibid-agent", "with --executor kubernetes: the agents' service account")
	f.String("agent-priority-class", "raibid-agent", "with --executor kubernetes: the agents' PriorityClass (empty: none)")
	f.String("cache-pvc", "raibid-cache", "with --executor kubernetes: PVC mounted as the agents' build cache (empty: none)")
	f.Int("max-agents", 6, "with --executor kubernetes: agents at most (PUT /scale changes it)")
}

var kubeFlagNames = map[string]bool{"executor": true, "namespace": true, "scaled-job": true, "agent-image": true,
	"agent-redis-url": true, "redis-secret": true, "forge-secret": true, "agent-config-map": true, "agent-service-account": true, "agent-priority-class": true,
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

// kubeOptions fills the server's executor, scaler and pod lister from k;
// redisURL is the server's (agents get it without its password).
func kubeOptions(k KubeConfig, redisURL string, opts *server.Options, log *slog.Logger) error {
	if k.Executor == executorNone || k.Executor == "" {
		return nil
	}
	c, err := kube.Connect()
	if err != nil {
		return err
	}
	opts.Pods = &kube.PodLister{Client: c, Namespace: k.Namespace}
	if k.Executor == executorKEDA {
		opts.Scaler = &kube.ScaledJobScaler{Client: c, Namespace: k.Namespace, Name: k.ScaledJob, Default: k.MaxAgents}
		log.Info("agents from a KEDA ScaledJob", "namespace", k.Namespace, "scaled_job", k.ScaledJob)
		return nil
	}
	agentRedis := k.AgentRedisURL
	if agentRedis == "" {
		u, err := url.Parse(redisURL)
		if err != nil {
			return &UsageError{fmt.Errorf("--redis-url: %w", err)}
		}
		u.User = nil // the password reaches agents from the Secret, never the Job spec
		agentRedis = u.String()
	}
	ex, err := kube.NewExecutor(c, kube.ExecutorOptions{Namespace: k.Namespace, Image: k.AgentImage, RedisURL: agentRedis,
		RedisSecret: k.RedisSecret, ForgeSecret: k.ForgeSecret, ConfigMap: k.ConfigMap, ServiceAccount: k.ServiceAccount, PriorityClass: k.PriorityClass, CachePVC: k.CachePVC, Log: log})
	if err != nil {
		return &UsageError{err}
	}
	opts.Executor = ex
	limit := &agentCap{}
	limit.n.Store(int64(k.MaxAgents))
	opts.Scaler = limit
	log.Info("agents as Kubernetes Jobs", "namespace", k.Namespace, "image", k.AgentImage, "max_agents", k.MaxAgents)
	return nil
}

// agentCap is the executor's "at most this many agents", set by PUT /scale.
type agentCap struct{ n atomic.Int64 }

func (c *agentCap) MaxAgents(context.Context) (int, error) { return int(c.n.Load()), nil }

func (c *agentCap) SetMaxAgents(_ context.Context, n int) error { c.n.Store(int64(n)); return nil }
