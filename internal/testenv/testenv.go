package testenv

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// SkipAllowed reports whether tests may skip when a prerequisite is
// missing. It is false under CI (CI=true) or when
// MAILFS_TEST_DISALLOW_SKIP=1.
func SkipAllowed() bool {
	if v, _ := strconv.ParseBool(os.Getenv("CI")); v {
		return false
	}
	if v, _ := strconv.ParseBool(os.Getenv("MAILFS_TEST_DISALLOW_SKIP")); v {
		return false
	}
	return true
}

// SkipOrFail skips the test with the formatted message, or fails it when
// skips are not allowed (see SkipAllowed).
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if !SkipAllowed() {
		t.Fatalf("%s (skips are not allowed under CI)", msg)
	}
	t.Skip(msg)
}

// ModuleRoot returns the directory holding go.mod, found by walking up from
// the working directory, or "" if there is none.
func ModuleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && fi.Mode().IsRegular() {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// DefaultCorpus is the corpus location relative to the module root.
const DefaultCorpus = "../shared/corpora/shared"

// CorpusDir returns the directory of the shared e-mail corpus: MAILFS_CORPUS
// if set, else DefaultCorpus; a relative path is resolved against the module
// root. It returns "" if the directory does not exist.
func CorpusDir() string {
	dir := os.Getenv("MAILFS_CORPUS")
	if dir == "" {
		dir = DefaultCorpus
	}
	if !filepath.IsAbs(dir) {
		root := ModuleRoot()
		if root == "" {
			return ""
		}
		dir = filepath.Join(root, dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return ""
	}
	return dir
}

// CorpusFile is one message of the shared corpus with its manifest entry.
type CorpusFile struct {
	Name       string   // file name, e.g. "eml-format__cc.eml"
	Data       []byte   // exact bytes of the file
	EOL        string   // "crlf", "lf", "mixed" or "none"
	BareLF     bool     // at least one line ends in LF without CR
	PrimaryTag string   // most notable tag
	Tags       []string // all tags
	Origin     string   // project the file comes from
}

// HasTag reports whether f carries the tag.
func (f CorpusFile) HasTag(tag string) bool {
	for _, t := range f.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Corpus reads every .eml file listed in the corpus MANIFEST.tsv, in
// manifest order, and checks its size and SHA-256. A mismatch or an
// unreadable manifest fails the test. A missing corpus directory skips the
// test, or fails it when MAILFS_REQUIRE_CORPUS=1.
func Corpus(t testing.TB) []CorpusFile {
	t.Helper()
	dir := CorpusDir()
	if dir == "" {
		msg := "testenv: shared corpus not found (set MAILFS_CORPUS or provide " + DefaultCorpus + " beside the module root)"
		if v, _ := strconv.ParseBool(os.Getenv("MAILFS_REQUIRE_CORPUS")); v {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	files, err := readCorpus(dir)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readCorpus(dir string) ([]CorpusFile, error) {
	manifest, err := os.ReadFile(filepath.Join(dir, "MANIFEST.tsv"))
	if err != nil {
		return nil, fmt.Errorf("testenv: read corpus manifest: %w", err)
	}
	var (
		files []CorpusFile
		col   map[string]int
	)
	sc := bufio.NewScanner(bytes.NewReader(manifest))
	for line := 0; sc.Scan(); {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if text == "" {
			continue
		}
		fields := strings.Split(text, "\t")
		if col == nil {
			col = make(map[string]int, len(fields))
			for i, name := range fields {
				col[name] = i
			}
			for _, need := range []string{"file", "size_bytes", "sha256"} {
				if _, ok := col[need]; !ok {
					return nil, fmt.Errorf("testenv: corpus manifest: header lacks column %q", need)
				}
			}
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(fields) {
				return fields[i]
			}
			return ""
		}
		name := get("file")
		if !strings.HasSuffix(name, ".eml") {
			continue
		}
		if name != filepath.Base(name) {
			return nil, fmt.Errorf("testenv: corpus manifest line %d: bad file name %q", line, name)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("testenv: corpus: %w", err)
		}
		if size, err := strconv.Atoi(get("size_bytes")); err != nil || size != len(data) {
			return nil, fmt.Errorf("testenv: corpus file %s: size %d, manifest says %q", name, len(data), get("size_bytes"))
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, get("sha256")) {
			return nil, fmt.Errorf("testenv: corpus file %s: sha256 %s, manifest says %s", name, got, get("sha256"))
		}
		f := CorpusFile{
			Name:       name,
			Data:       data,
			EOL:        get("eol"),
			BareLF:     get("bare_lf") == "yes",
			PrimaryTag: get("primary_tag"),
			Origin:     get("origin"),
		}
		if tags := get("tags"); tags != "" {
			f.Tags = strings.Split(tags, ",")
		}
		files = append(files, f)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testenv: corpus manifest: %w", err)
	}
	if col == nil {
		return nil, fmt.Errorf("testenv: corpus manifest %s is empty", filepath.Join(dir, "MANIFEST.tsv"))
	}
	return files, nil
}
