package runner

import (
	"os"
	"strings"
)

// PassedEnv names the agent's variables a step inherits: where the tools
// are, language, time zone and proxies. Nothing else of the agent's
// environment reaches a step — not its tokens, not a Redis URL, not a
// Kubernetes Secret mounted as a variable — whatever its name. Operators add
// names with `raibid agent --pass-env`.
var PassedEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ",
	"LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES",
	"RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO_HOME",
	"GOROOT", "GOPATH", "GOTOOLCHAIN", "GOPROXY", "GOFLAGS", "GOCACHE", "GOMODCACHE",
	"JAVA_HOME", "NODE_PATH", "PYENV_ROOT",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
}

// StepEnv is what a step sees of the agent's environment — the variables
// named by PassedEnv and pass — followed by extra (the job's, the pipeline's
// and the step's variables, later ones winning).
func StepEnv(pass []string, extra ...[]string) []string {
	allowed := map[string]bool{}
	for _, n := range PassedEnv {
		allowed[n] = true
	}
	for _, n := range pass {
		allowed[n] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if allowed[name] {
			env = append(env, kv)
		}
	}
	for _, e := range extra {
		env = append(env, e...)
	}
	return env
}
