package pipeline

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/raibid-labs/raibid-ci/internal/yamlfile"
)

// DefaultServiceTimeout is how long a service has to accept connections.
const DefaultServiceTimeout = time.Minute

// Service is a process a job's steps need (a database, a cache): started
// in the job's sandbox before the first step, waited for until its port
// accepts connections, stopped after the last step. Its output is a log
// section of its own ("service NAME").
type Service struct {
	Name    string
	Run     string
	Port    int
	Timeout time.Duration // to accept connections; default DefaultServiceTimeout
	Env     map[string]string
	// Image is for executors with an image runtime (a sidecar container);
	// agents without one run Run.
	Image string
}

// LogStep is the step name a service's output is logged under.
func (s Service) LogStep() string { return "service " + s.Name }

// parseServices reads `services: [{name, run, port, timeout, env, image}]`.
func parseServices(f *yamlfile.File, n *yaml.Node) ([]Service, error) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, f.At(n, "services", "must be a non-empty list of {name, run, port}")
	}
	var out []Service
	seen := map[string]bool{}
	for i, sn := range n.Content {
		prefix := fmt.Sprintf("services[%d]", i)
		if sn.Kind != yaml.MappingNode {
			return nil, f.At(sn, prefix, "must be a mapping with name, run and port")
		}
		var s Service
		err := f.Fields(sn, prefix+".", func(k, v *yaml.Node, field string) error {
			switch k.Value {
			case "name":
				name, ok := yamlfile.String(v)
				if !ok || !stepNamePattern.MatchString(name) {
					return f.At(v, field, "must be a short name (letters, digits, space, _.:/-)")
				}
				if seen[name] {
					return f.At(v, field, "%q is already the name of a service", name)
				}
				s.Name = name
			case "run":
				run, ok := yamlfile.String(v)
				if !ok || run == "" {
					return f.At(v, field, "must be a non-empty command string")
				}
				s.Run = run
			case "port":
				p, err := strconv.Atoi(v.Value)
				if err != nil || v.Kind != yaml.ScalarNode || p < 1 || p > 65535 {
					return f.At(v, field, "must be a TCP port, 1 to 65535")
				}
				s.Port = p
			case "timeout":
				d, err := yamlfile.Duration(v)
				if err != nil {
					return f.At(v, field, "%v", err)
				}
				s.Timeout = d
			case "env":
				env, err := envMap(f, v, field)
				if err != nil {
					return err
				}
				s.Env = env
			case "image":
				img, ok := yamlfile.String(v)
				if !ok {
					return f.At(v, field, "must be a string")
				}
				s.Image = img
			default:
				return f.At(k, field, "unknown field (allowed: name, run, port, timeout, env, image)")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for what, missing := range map[string]bool{"name": s.Name == "", "run": s.Run == "", "port": s.Port == 0} {
			if missing {
				return nil, f.At(sn, prefix+"."+what, "is missing")
			}
		}
		seen[s.Name] = true
		out = append(out, s)
	}
	return out, nil
}

// runningService is a started service: stop ends it and waits.
type runningService struct {
	svc    Service
	cancel context.CancelFunc
	exited chan struct{}
	code   int
	err    error
}

// startServices starts every service and waits until each accepts
// connections on its port. On an error the ones started are stopped.
func (r *runner) startServices() ([]*runningService, error) {
	var started []*runningService
	for _, svc := range r.p.Services {
		ctx, cancel := context.WithCancel(r.pctx)
		rs := &runningService{svc: svc, cancel: cancel, exited: make(chan struct{})}
		step := Step{Name: svc.LogStep(), Run: svc.Run, Env: svc.Env}
		if r.o.Sidecars && svc.Image != "" {
			// A sidecar of the pod: started by Kubernetes, not here; it
			// never exits from here, ready waits for its port only.
			r.o.line(step.Name, "system", "sidecar "+svc.Image)
			rs.exited = nil
		} else {
			r.o.line(step.Name, "system", "$ "+svc.Run)
			go func() {
				defer close(rs.exited)
				rs.code, rs.err = runStep(ctx, step, r.p.Env, r.o, r.counter)
			}()
		}
		started = append(started, rs)
		if err := rs.ready(r.pctx); err != nil {
			r.o.line(step.Name, "system", err.Error())
			stopServices(started)
			return nil, err
		}
		r.o.line(step.Name, "system", fmt.Sprintf("ready: port %d accepts connections", svc.Port))
	}
	return started, nil
}

// ready waits until the service's port accepts connections, the service
// exits, or its timeout passes.
func (rs *runningService) ready(ctx context.Context) error {
	timeout := rs.svc.Timeout
	if timeout <= 0 {
		timeout = DefaultServiceTimeout
	}
	deadline := time.Now().Add(timeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(rs.svc.Port))
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-rs.exited:
			return fmt.Errorf("service %s exited (code %d) before it accepted connections on port %d", rs.svc.Name, rs.code, rs.svc.Port)
		case <-ctx.Done():
			return fmt.Errorf("service %s: %w", rs.svc.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s did not accept connections on port %d within %s", rs.svc.Name, rs.svc.Port, timeout)
		}
	}
}

// stopServices stops the services (SIGTERM, then SIGKILL after the kill
// grace, as a cancelled step) and waits until every one has exited.
func stopServices(list []*runningService) {
	for _, rs := range list {
		rs.cancel()
	}
	for _, rs := range list {
		if rs.exited != nil {
			<-rs.exited
		}
	}
}
