package pipeline

import (
	"context"
	"fmt"
	"maps"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
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
	Name string
	Run  string
	// Port is where the service listens; with AutoPort the agent picks a
	// free one per job (the service gets it as $PORT), so two jobs' services
	// never meet on one port.
	Port     int
	AutoPort bool
	Timeout  time.Duration // to accept connections; default DefaultServiceTimeout
	Env      map[string]string
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
				if v.Kind == yaml.ScalarNode && v.Value == "auto" {
					s.AutoPort = true
					return nil
				}
				p, err := strconv.Atoi(v.Value)
				if err != nil || v.Kind != yaml.ScalarNode || p < 1 || p > 65535 {
					return f.At(v, field, "must be a TCP port, 1 to 65535, or auto")
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
		for what, missing := range map[string]bool{"name": s.Name == "", "run": s.Run == "", "port": s.Port == 0 && !s.AutoPort} {
			if missing {
				return nil, f.At(sn, prefix+"."+what, "is missing")
			}
		}
		if s.AutoPort && s.Image != "" {
			return nil, f.At(sn, prefix+".port", "auto cannot go with image: the image decides its port")
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
	// pid is the service's process (its sandbox), once started; 0 for a
	// sidecar, which is not ours to watch.
	pid atomic.Int64
	// stopping marks an exit we asked for.
	stopping atomic.Bool
}

// ServiceEnv is the variable a service's port is exported to steps as:
// RAIBID_SERVICE_<NAME>_PORT, the name in upper case with anything but
// letters and digits as _.
func ServiceEnv(name string) string {
	return "RAIBID_SERVICE_" + strings.ToUpper(nonAlnum.ReplaceAllString(name, "_")) + "_PORT"
}

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]+`)

// startServices starts every service and waits until each listens on its
// port — itself, not another process that holds the port. On an error the
// ones started are stopped. It returns the ports as steps' variables.
func (r *runner) startServices() ([]*runningService, []string, error) {
	var started []*runningService
	var env []string
	fail := func(step string, err error) ([]*runningService, []string, error) {
		r.o.line(step, "system", err.Error())
		stopServices(started)
		return nil, nil, err
	}
	for _, svc := range r.p.Services {
		step := Step{Name: svc.LogStep(), Run: svc.Run, Env: maps.Clone(svc.Env)}
		sidecar := r.o.Sidecars && svc.Image != ""
		if svc.AutoPort {
			port, err := freeLocalPort()
			if err != nil {
				return fail(step.Name, fmt.Errorf("service %s: no free port: %w", svc.Name, err))
			}
			svc.Port = port
		}
		if !sidecar && listening(svc.Port) {
			return fail(step.Name, fmt.Errorf("service %s: port %d is already in use on this machine (another job's service?): use port: auto", svc.Name, svc.Port))
		}
		if step.Env == nil {
			step.Env = map[string]string{}
		}
		step.Env["PORT"] = strconv.Itoa(svc.Port)
		env = append(env, ServiceEnv(svc.Name)+"="+strconv.Itoa(svc.Port))
		ctx, cancel := context.WithCancel(r.pctx)
		rs := &runningService{svc: svc, cancel: cancel, exited: make(chan struct{})}
		if sidecar {
			// A sidecar of the pod: started by Kubernetes, not here; it
			// never exits from here, ready waits for its port only.
			r.o.line(step.Name, "system", "sidecar "+svc.Image)
			rs.exited = nil
		} else {
			r.o.line(step.Name, "system", "$ "+svc.Run)
			step.started = func(pid int) { rs.pid.Store(int64(pid)) }
			go func() {
				defer close(rs.exited)
				rs.code, rs.err = runStep(ctx, step, r.p.Env, r.o, r.counter)
			}()
		}
		started = append(started, rs)
		if err := rs.ready(r.pctx); err != nil {
			return fail(step.Name, err)
		}
		r.o.line(step.Name, "system", fmt.Sprintf("ready: port %d accepts connections ($%s)", svc.Port, ServiceEnv(svc.Name)))
	}
	return started, env, nil
}

// freeLocalPort is a loopback TCP port nothing listens on now.
func freeLocalPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ready waits until the service itself listens on its port, the service
// exits, or its timeout passes.
func (rs *runningService) ready(ctx context.Context) error {
	timeout := rs.svc.Timeout
	if timeout <= 0 {
		timeout = DefaultServiceTimeout
	}
	deadline := time.Now().Add(timeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(rs.svc.Port))
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			pid := int(rs.pid.Load())
			if rs.exited == nil || pid == 0 || listensWithin(rs.svc.Port, pid) {
				return nil
			}
			// Someone else took the port after we looked: not our service.
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

// watchServices calls died with the first service that exits while the
// steps run (not when stopServices ends it); it returns when done closes.
func watchServices(list []*runningService, done <-chan struct{}, died func(*runningService)) {
	for _, rs := range list {
		if rs.exited == nil {
			continue
		}
		go func() {
			select {
			case <-done:
			case <-rs.exited:
				if !rs.stopping.Load() {
					died(rs)
				}
			}
		}()
	}
}

// stopServices stops the services (SIGTERM, then SIGKILL after the kill
// grace, as a cancelled step) and waits until every one has exited.
func stopServices(list []*runningService) {
	for _, rs := range list {
		rs.stopping.Store(true)
		rs.cancel()
	}
	for _, rs := range list {
		if rs.exited != nil {
			<-rs.exited
		}
	}
}
