package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Image is a container image made here, without a registry: layers are
// directory trees (or tar files already made), packed as an OCI image
// layout archive that `ctr images import` reads.
type Image struct {
	// Ref is the image's full name (docker.io/raibid/raibid-agent:node).
	Ref string
	// Layers are, bottom first, directories to pack or .tar files.
	Layers     []string
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    map[string]string `json:"platform,omitempty"`
}

// WriteOCIArchive packs img into the OCI image layout archive out.
func (img Image) WriteOCIArchive(work, out string) error {
	blobs := filepath.Join(work, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	// put stores a blob and returns its descriptor.
	put := func(mediaType, from string) (descriptor, error) {
		f, err := os.Open(from)
		if err != nil {
			return descriptor{}, err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return descriptor{}, err
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if err := os.Rename(from, filepath.Join(blobs, sum)); err != nil {
			return descriptor{}, err
		}
		return descriptor{MediaType: mediaType, Digest: "sha256:" + sum, Size: n}, nil
	}
	putJSON := func(mediaType string, v any) (descriptor, error) {
		tmp := filepath.Join(work, "tmp.json")
		b, _ := json.Marshal(v)
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return descriptor{}, err
		}
		return put(mediaType, tmp)
	}
	var layers []descriptor
	var diffIDs []string
	for i, l := range img.Layers {
		tarFile := filepath.Join(work, fmt.Sprintf("layer%d.tar", i))
		if st, err := os.Stat(l); err == nil && st.IsDir() {
			// GNU tar keeps links, modes and owners as a rootfs needs them.
			cmd := exec.Command("tar", "--numeric-owner", "--xattrs", "-C", l, "-cf", tarFile, ".")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("tar %s: %v: %s", l, err, out)
			}
		} else if err := copyFile(l, tarFile); err != nil {
			return err
		}
		d, err := put("application/vnd.oci.image.layer.v1.tar", tarFile)
		if err != nil {
			return err
		}
		layers = append(layers, d)
		diffIDs = append(diffIDs, d.Digest) // uncompressed: the digest is the diff id
	}
	config := map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"Entrypoint": img.Entrypoint, "Cmd": img.Cmd, "Env": img.Env, "WorkingDir": img.WorkingDir},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	cfg, err := putJSON("application/vnd.oci.image.config.v1+json", config)
	if err != nil {
		return err
	}
	manifest, err := putJSON("application/vnd.oci.image.manifest.v1+json",
		map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": layers})
	if err != nil {
		return err
	}
	manifest.Annotations = map[string]string{"io.containerd.image.name": img.Ref, "org.opencontainers.image.ref.name": img.Ref}
	manifest.Platform = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []descriptor{manifest}})
	if err := os.WriteFile(filepath.Join(work, "index.json"), index, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	os.Remove(filepath.Join(work, "tmp.json"))
	cmd := exec.Command("tar", "-C", work, "-cf", out, "oci-layout", "index.json", "blobs")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tar %s: %v: %s", out, err, b)
	}
	return nil
}

// SingleFileLayer is a directory holding one file at path (mode 0755): a
// layer that adds a binary to an image.
func SingleFileLayer(dir, from, path string) error {
	dst := filepath.Join(dir, path)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	if err := copyFile(from, dst); err != nil {
		return err
	}
	return os.Chmod(dst, 0o755)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
