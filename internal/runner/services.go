package runner

import (
	"context"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/raibid-labs/raibid-ci/internal/pipeline"
)

// runningService is a started service: stop ends it and waits.
type runningService struct {
	svc    pipeline.Service
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
		step := pipeline.Step{Name: svc.LogStep(), Run: svc.Run, Env: maps.Clone(svc.Env)}
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
		env = append(env, pipeline.ServiceEnv(svc.Name)+"="+strconv.Itoa(svc.Port))
		ctx, cancel := context.WithCancel(r.pctx)
		rs := &runningService{svc: svc, cancel: cancel, exited: make(chan struct{})}
		if sidecar {
			// A sidecar of the pod: started by Kubernetes, not here; it
			// never exits from here, ready waits for its port only.
			r.o.line(step.Name, "system", "sidecar "+svc.Image)
			rs.exited = nil
		} else {
			r.o.line(step.Name, "system", "$ "+svc.Run)
			go func() {
				defer close(rs.exited)
				// The readiness check looks at what this process listens on.
				started := func(pid int) { rs.pid.Store(int64(pid)) }
				rs.code, rs.err = runStep(ctx, step, r.p.Env, r.o, r.counter, started)
			}()
		}
		started = append(started, rs)
		if err := rs.ready(r.pctx); err != nil {
			return fail(step.Name, err)
		}
		r.o.line(step.Name, "system", fmt.Sprintf("ready: port %d accepts connections ($%s)", svc.Port, pipeline.ServiceEnv(svc.Name)))
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
		timeout = pipeline.DefaultServiceTimeout
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
