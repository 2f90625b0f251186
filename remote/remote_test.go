package remote

import (
	"slices"
	"testing"
)

func TestSortFlags(t *testing.T) {
	got := []string{"$Junk", `\Flagged`, "Work", `\Seen`, `\Draft`, `\answered`}
	SortFlags(got)
	want := []string{`\Seen`, `\answered`, `\Flagged`, `\Draft`, "$Junk", "Work"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
