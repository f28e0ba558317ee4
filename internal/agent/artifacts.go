package agent

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/raibid-labs/raibid-ci/internal/ci"
	"github.com/raibid-labs/raibid-ci/internal/pipeline"
	"github.com/raibid-labs/raibid-ci/internal/safefs"
)

// PackagePublisher puts artifacts into the forge's package registry
// (publish: gitea).
type PackagePublisher interface {
	PutPackage(ctx context.Context, owner, pkg, version, file string, body io.Reader, size int64) error
}

// uploader sends one job's artifacts to the server with the run's upload
// token (its hash is on the job; the token stays in this process, never in
// a step's environment).
type uploader struct {
	a     *Agent
	job   *ci.Job
	ws    string
	token string
	sink  *logSink
	// shown are the cache directories steps see inside the workspace
	// (buildSetup.Shown): a pattern under one is looked for there.
	shown map[string]string
}

// place is where a workspace-relative path lives on the agent's side: the
// directory it is beneath and its path there. A path under a shown cache
// directory (target/… with cargo's cache) is in that directory.
func (u *uploader) place(p string) (dir, rel string) {
	for at, src := range u.shown {
		if p == at {
			return src, "."
		}
		if rest, ok := strings.CutPrefix(p, at+"/"); ok {
			return src, rest
		}
	}
	return u.ws, p
}

// newUploadToken makes a run's upload token.
func newUploadToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// afterStep uploads the step's artifacts, and publishes them when asked.
func (u *uploader) afterStep(s pipeline.Step) error {
	for _, spec := range s.Artifacts {
		files, err := u.match(spec.Path)
		if err != nil {
			return fmt.Errorf("artifact %s: %w", spec.Name, err)
		}
		if len(files) == 0 {
			u.sink.Line(s.Name, "system", fmt.Sprintf("artifact %s: nothing matches %s", spec.Name, spec.Path))
			continue
		}
		name := spec.Name
		if len(files) > 1 && !strings.HasSuffix(name, ".tar.gz") {
			name += ".tar.gz"
		}
		open := func() (io.ReadCloser, int64, error) { return u.open(files) }
		a, err := u.upload(s.Name, name, open)
		if err != nil {
			return err
		}
		u.sink.Line(s.Name, "system", fmt.Sprintf("artifact %s: %d bytes, sha256 %s", a.Name, a.Size, a.SHA256))
		if s.Publish == "gitea" {
			if pr := u.job.PullRequest; pr != nil && pr.FromFork {
				// A fork's author wrote this pipeline: nothing is published,
				// signed or written with raibid's forge token on its behalf.
				u.sink.Line(s.Name, "system", fmt.Sprintf("publish %s skipped: pull request #%d comes from a fork", name, pr.Number))
				continue
			}
			if err := u.publish(name, open); err != nil {
				return err
			}
		}
	}
	return nil
}

// match lists the regular files of the workspace a pattern names (a
// directory stands for the files under it), sorted. Symbolic links are
// never followed: a build could point one at the agent's own files.
func (u *uploader) match(pattern string) ([]string, error) {
	dir, rel := u.place(pattern)
	prefix := strings.TrimSuffix(strings.TrimSuffix(pattern, rel), "/") // the shown dir's name, or ""
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	matches, err := doublestar.Glob(root.FS(), rel, doublestar.WithNoFollow())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, m := range matches {
		_ = fs.WalkDir(root.FS(), m, func(p string, d fs.DirEntry, err error) error {
			// The worktree's .git (a file naming the mirror's host path) is
			// the agent's, never an artifact.
			if err == nil && d.Type().IsRegular() && p != ".git" && !strings.HasPrefix(p, ".git/") {
				if prefix != "" {
					p = path.Join(prefix, p)
				}
				seen[p] = true
			}
			return nil
		})
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// open streams one file as it is, or several as a tar.gz. Each file is
// opened beneath the workspace with no link on its way (safefs), and one
// with other hard links that is not the build's is refused: the agent reads
// as root what a build chose.
func (u *uploader) open(files []string) (io.ReadCloser, int64, error) {
	openOne := func(p string) (*os.File, int64, error) {
		f, err := safefs.OpenBeneath(u.place(p))
		if err != nil {
			return nil, 0, err
		}
		if err := safefs.Readable(f, u.buildUID()); err != nil {
			f.Close()
			return nil, 0, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, st.Size(), nil
	}
	if len(files) == 1 {
		f, size, err := openOne(files[0])
		if err != nil {
			return nil, 0, err
		}
		return f, size, nil
	}
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		tw := tar.NewWriter(zw)
		err := func() error {
			for _, p := range files {
				f, size, err := openOne(p)
				if err != nil {
					return err
				}
				st, _ := f.Stat()
				err = tw.WriteHeader(&tar.Header{Name: p, Mode: 0o644, Size: size, ModTime: st.ModTime(), Typeflag: tar.TypeReg})
				if err == nil {
					_, err = io.CopyN(tw, f, size)
				}
				f.Close()
				if err != nil {
					return err
				}
			}
			if err := tw.Close(); err != nil {
				return err
			}
			return zw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return pr, -1, nil
}

// buildUID is the user whose files a build makes (-1: the agent's own,
// unsandboxed, when any owner goes).
func (u *uploader) buildUID() int {
	if sb := u.a.opts.Sandbox; sb != nil && os.Geteuid() == 0 {
		return sb.UID()
	}
	return -1
}

// upload PUTs an artifact to the server and returns what the server
// recorded (name, size, sha256).
func (u *uploader) upload(step, name string, open func() (io.ReadCloser, int64, error)) (ci.Artifact, error) {
	if u.a.opts.ServerURL == "" {
		return ci.Artifact{}, errors.New("artifacts need the server's URL (--server-url) and this agent has none")
	}
	body, size, err := open()
	if err != nil {
		return ci.Artifact{}, fmt.Errorf("artifact %s: %w", name, err)
	}
	defer body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	url := strings.TrimRight(u.a.opts.ServerURL, "/") + "/jobs/" + u.job.ID + "/artifacts/" + name + "?step=" + step
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		return ci.Artifact{}, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Authorization", "Bearer "+u.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ci.Artifact{}, fmt.Errorf("artifact %s: upload: %w", name, err)
	}
	defer resp.Body.Close()
	var out struct {
		ci.Artifact
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out)
	if resp.StatusCode != http.StatusCreated {
		msg := out.Error
		if msg == "" {
			msg = resp.Status
		}
		return ci.Artifact{}, fmt.Errorf("artifact %s: %s", name, msg)
	}
	return out.Artifact, nil
}

// publish puts the artifact into Gitea's generic package registry: package
// the repository's name, version the tag (for a tag) or the commit. A
// matrix's members publish into the same version under file names of their
// own (publishName), as a release holds one file per platform.
func (u *uploader) publish(name string, open func() (io.ReadCloser, int64, error)) error {
	name = publishName(name, u.job.Matrix)
	if u.a.opts.Packages == nil {
		return errors.New("publish: gitea needs the agent's --gitea-url and Gitea token")
	}
	owner, pkg, _ := strings.Cut(u.job.Repo, "/")
	version := u.job.Tag
	if version == "" {
		version = u.job.Commit
	}
	body, size, err := open()
	if err != nil {
		return err
	}
	defer body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := u.a.opts.Packages.PutPackage(ctx, owner, pkg, version, name, body, size); err != nil {
		return fmt.Errorf("publish %s: %w", name, err)
	}
	u.sink.Line("publish", "system", fmt.Sprintf("published %s to Gitea's packages as %s/%s %s", name, owner, pkg, version))
	return nil
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// publishName is the file name a matrix member publishes name under: the
// combination's values (in the axes' order by name) before the extension,
// app.tar.gz → app-x86_64-stable.tar.gz. Every member uploading the same
// name into one version would be refused by Gitea (409) after the first.
func publishName(name string, matrix map[string]string) string {
	if len(matrix) == 0 {
		return name
	}
	keys := make([]string, 0, len(matrix))
	for k := range matrix {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	suffix := ""
	for _, k := range keys {
		suffix += "-" + strings.Trim(unsafeFileChars.ReplaceAllString(matrix[k], "_"), "-")
	}
	base, ext := name, ""
	if i := strings.Index(name[1:], "."); i >= 0 {
		base, ext = name[:i+1], name[i+1:]
	}
	return base + suffix + ext
}
