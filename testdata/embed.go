// Package testdata holds the project's hand-written mail fixtures.
//
// The messages in mail/ are stored byte for byte (CRLF line endings, see
// .gitattributes) and embedded in Mail, so that packages anywhere in the
// module can use them by importing "mailfs/testdata". Most code should use
// mailgen.Fixtures instead of reading Mail directly.
package testdata

import "embed"

// Mail holds the fixture messages as mail/*.eml.
//
//go:embed mail/*.eml
var Mail embed.FS
