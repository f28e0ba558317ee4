package launcher

import (
	"slices"
	"testing"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	argv := []string{"/bin/bash", "-c", "echo 'a b'\nexit 0", ""}
	env := []string{"PATH=/bin", "EMPTY=", "MULTI=line1\nline2"}
	gotArgv, gotEnv, ok := decode(Encode(argv, env))
	if !ok || !slices.Equal(gotArgv, argv) || !slices.Equal(gotEnv, env) {
		t.Fatalf("decode(Encode) = %q %q %v", gotArgv, gotEnv, ok)
	}
	if _, gotEnv, ok := decode(Encode(argv, nil)); !ok || len(gotEnv) != 0 {
		t.Fatalf("no environment: %q %v", gotEnv, ok)
	}
}

func TestDecodeRefusesWhatEncodeNeverWrites(t *testing.T) {
	for name, b := range map[string]string{
		"empty":           "",
		"no count":        "\x00/bin/sh\x00",
		"zero arguments":  "0\x00PATH=/bin\x00",
		"count too large": "3\x00/bin/sh\x00-c\x00",
		"not a number":    "x\x00/bin/sh\x00",
		"unterminated":    "1\x00/bin/sh",
	} {
		if argv, env, ok := decode([]byte(b)); ok {
			t.Errorf("%s: decoded %q %q", name, argv, env)
		}
	}
}
