package pipeline

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
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

// ServiceEnv is the variable a service's port is exported to steps as:
// RAIBID_SERVICE_<NAME>_PORT, the name in upper case with anything but
// letters and digits as _.
func ServiceEnv(name string) string {
	return "RAIBID_SERVICE_" + strings.ToUpper(nonAlnum.ReplaceAllString(name, "_")) + "_PORT"
}

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9]+`)
