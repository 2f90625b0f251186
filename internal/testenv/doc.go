// Package testenv holds small helpers shared by mailfs tests: the policy
// for skipping tests whose prerequisites are missing (skips turn into
// failures under CI), and access to the shared e-mail corpus that lives
// outside the module.
//
// Environment variables:
//
//   - CI=true or MAILFS_TEST_DISALLOW_SKIP=1: SkipOrFail fails instead of
//     skipping.
//   - MAILFS_CORPUS: directory of the shared corpus (MANIFEST.tsv plus .eml
//     files). A relative path is taken relative to the module root. The
//     default is ../shared/corpora/shared relative to the module root.
//   - MAILFS_REQUIRE_CORPUS=1: Corpus fails instead of skipping when the
//     corpus directory is missing.
package testenv
