package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fakeTB records how a helper ended the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Skip(args ...any)  { f.skip = fmt.Sprint(args...); runtime.Goexit() }
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func run(fn func(testing.TB)) *fakeTB {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		ci, disallow string
		wantFail     bool
	}{
		{"", "", false},
		{"false", "0", false},
		{"true", "", true},
		{"", "1", true},
	} {
		t.Setenv("CI", tc.ci)
		t.Setenv("MAILFS_TEST_DISALLOW_SKIP", tc.disallow)
		f := run(func(tb testing.TB) { SkipOrFail(tb, "no %s", "dovecot") })
		if tc.wantFail {
			if f.fatal != "no dovecot (skips are not allowed under CI)" || f.skip != "" {
				t.Errorf("CI=%q disallow=%q: fatal=%q skip=%q, want failure", tc.ci, tc.disallow, f.fatal, f.skip)
			}
		} else if f.skip != "no dovecot" || f.fatal != "" {
			t.Errorf("CI=%q disallow=%q: fatal=%q skip=%q, want skip", tc.ci, tc.disallow, f.fatal, f.skip)
		}
	}
}

func TestModuleRoot(t *testing.T) {
	root := ModuleRoot()
	if root == "" {
		t.Fatal("ModuleRoot found no go.mod")
	}
	wd, _ := os.Getwd()
	if !strings.HasPrefix(wd, root) {
		t.Errorf("module root %q is not an ancestor of %q", root, wd)
	}
}

func writeCorpus(t *testing.T, files map[string]string, corrupt string) string {
	t.Helper()
	dir := t.TempDir()
	var m strings.Builder
	m.WriteString("file\tsize_bytes\tsha256\teol\tbare_lf\tprimary_tag\ttags\torigin\tsource_path\n")
	for _, name := range []string{"a.eml", "b.eml"} {
		data := files[name]
		sum := sha256.Sum256([]byte(data))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if name == corrupt {
			sum[0] ^= 1
		}
		fmt.Fprintf(&m, "%s\t%d\t%s\tlf\tyes\tbare-lf\tbare-lf,multipart\ttest\tx/%s\n", name, len(data), hex.EncodeToString(sum[:]), name)
	}
	m.WriteString("README.md\t1\t00\tnone\tno\t\t\tx\tx\n")
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST.tsv"), []byte(m.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCorpusFromEnv(t *testing.T) {
	files := map[string]string{"a.eml": "Subject: a\n\nA\n", "b.eml": "Subject: b\r\n\r\nB"}
	dir := writeCorpus(t, files, "")
	t.Setenv("MAILFS_CORPUS", dir)
	if got := CorpusDir(); got != dir {
		t.Fatalf("CorpusDir() = %q, want %q", got, dir)
	}
	got := Corpus(t)
	if len(got) != 2 {
		t.Fatalf("Corpus returned %d files, want 2", len(got))
	}
	for _, f := range got {
		if string(f.Data) != files[f.Name] {
			t.Errorf("%s: data %q, want %q", f.Name, f.Data, files[f.Name])
		}
		if !f.BareLF || f.EOL != "lf" || f.PrimaryTag != "bare-lf" || !f.HasTag("multipart") || f.HasTag("bom") {
			t.Errorf("%s: bad metadata %+v", f.Name, f)
		}
	}
}

func TestCorpusChecksum(t *testing.T) {
	dir := writeCorpus(t, map[string]string{"a.eml": "x\n", "b.eml": "y\n"}, "b.eml")
	t.Setenv("MAILFS_CORPUS", dir)
	f := run(func(tb testing.TB) { Corpus(tb) })
	if !strings.Contains(f.fatal, "b.eml: sha256") {
		t.Errorf("corrupt corpus: fatal=%q skip=%q, want sha256 failure", f.fatal, f.skip)
	}
}

func TestCorpusMissing(t *testing.T) {
	t.Setenv("MAILFS_CORPUS", filepath.Join(t.TempDir(), "absent"))
	if got := CorpusDir(); got != "" {
		t.Errorf("CorpusDir() = %q for a missing dir", got)
	}
	t.Setenv("MAILFS_REQUIRE_CORPUS", "")
	if f := run(func(tb testing.TB) { Corpus(tb) }); f.skip == "" || f.fatal != "" {
		t.Errorf("missing corpus: fatal=%q skip=%q, want skip", f.fatal, f.skip)
	}
	t.Setenv("MAILFS_REQUIRE_CORPUS", "1")
	if f := run(func(tb testing.TB) { Corpus(tb) }); f.fatal == "" {
		t.Errorf("missing corpus with MAILFS_REQUIRE_CORPUS=1: skip=%q, want failure", f.skip)
	}
}

// TestSharedCorpus checks the real shared corpus when it is present.
func TestSharedCorpus(t *testing.T) {
	files := Corpus(t)
	if len(files) == 0 {
		t.Fatal("shared corpus lists no .eml files")
	}
	seen := make(map[string]bool)
	for _, f := range files {
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
	}
	t.Logf("%d corpus files in %s", len(files), CorpusDir())
}
